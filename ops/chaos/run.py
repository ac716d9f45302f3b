#!/usr/bin/env python3
"""Fault injection against the real pipeline, checked against an oracle computed independently
from the produced events (streams/harness/expected.py: the pricing engine alone, no Kafka, no Faust, no
ClickHouse).

  R1  SIGKILL the worker at random points (default 10 times during 1M events)
  R2  restart the Kafka broker mid-stream
  R3  ClickHouse unavailable for 60 s (embedded engine: the worker's sink is made to fail)
  R4  10% duplicate event_ids from producers
  R5  the bad-input corpus (tests/data/bad_events.jsonl: 137 kinds; the 138th, an oversize line,
      is refused by the broker to the producer) interleaved with good traffic, and hostile Kafka
      records on every partition (tombstones, headers without a value or not UTF-8, empty and
      near-1 MiB values: streams/harness/hostile.py) between its halves
  R6  late events hours behind (and some beyond the allowed lateness)
  R7  an unkeyed round-robin producer: duplicates land on other partitions (canonical placement)
  R8  the sink process SIGKILLed 10 times, with rate, sink and alerts as separate processes
  R9  a rebalance storm: two rating workers, one of them SIGKILLed every 20 s for 5 minutes while
      the traffic is produced
  soak  30 minutes of traffic at half the sustained rate (docs/benchmarks.md: P2-batched), roles split; the
      RSS of each process is sampled every 10 s and its growth after a 5-minute warm-up reported
  short  all of them at once, small: ~100k events, 3 kills, 1 broker restart, a 10 s outage, then
      200 voids and 100 replacements (`meterstream correct`) through 2 more kills (CI)

    python ops/chaos/run.py                 # R1..R9, full size
    python ops/chaos/run.py --scenarios short
    python ops/chaos/run.py --scenarios R1 --events 200000 --kills 5

Each scenario prints events produced, counted, dead-lettered, duplicates dropped, the totals
diff against the oracle (must be 0), and spend alerts expected vs delivered; the exit code is 1
when any diff is not 0 or an alert is missing or repeated. Results: ops/bench/results/chaos.json
(all of R1..R9), else chaos-<scenarios>.json (e.g. chaos-R1.json, chaos-short.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ops" / "bench"))
sys.path.insert(0, str(REPO))

from common import RESULTS, header, rss_kib, write  # noqa: E402

from pricing import load_catalog  # noqa: E402
from streams.harness.expected import Oracle, as_rows, diff, expected_totals, normalize  # noqa: E402
from streams.harness.generate import generate  # noqa: E402
from streams.harness.hostile import hostile, write_raw  # noqa: E402
from streams.harness.stack import Broker, Stack, alerts_in_topic, budgets_for  # noqa: E402

CORPUS = REPO / "tests" / "data" / "bad_events.jsonl"


@dataclass
class Scenario:
    name: str
    what: str
    events: int
    kills: int = 0
    broker_restarts: int = 0
    outage_s: float = 0
    dup: float = 0.0
    bad: bool = False
    late: bool = False
    seed: int = 1
    unkeyed: bool = False  # a round-robin producer that ignores the event's key
    roles: tuple[str, ...] = ("all",)  # one worker process per role
    kill_role: str = "all"  # the process the SIGKILLs hit
    storm_s: float = 0  # a storm: traffic produced over this long, a kill every
    storm_every_s: float = 20  # ... this many seconds, alternating between kill_role processes
    soak: bool = False  # no kills: RSS sampled every 10 s over the storm's duration
    corrections: int = 0  # then: this many voids and half as many replacements, through 2 SIGKILLs


@dataclass
class Outcome:
    faults: list[str] = field(default_factory=list)
    worker_restarts: int = 0
    recoveries: int = 0
    rss: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # role -> (s, KiB)


def scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    n = args.events
    return {
        "R1": Scenario(
            "R1", f"SIGKILL the worker {args.kills} times at random points", n or 1_000_000, kills=args.kills, seed=101
        ),
        "R2": Scenario("R2", "restart the Kafka broker mid-stream", n or 200_000, broker_restarts=1, seed=102),
        "R3": Scenario(
            "R3",
            f"ClickHouse unavailable for {args.outage_s:.0f} s (sink writes fail)",
            n or 200_000,
            outage_s=args.outage_s,
            seed=103,
        ),
        "R4": Scenario("R4", "10% duplicate event_ids", n or 200_000, dup=0.10, seed=104),
        "R5": Scenario(
            "R5", "bad-input corpus (137 kinds) interleaved with good traffic", n or 100_000, bad=True, seed=105
        ),
        "R6": Scenario("R6", "late events hours behind, some beyond the lateness", n or 100_000, late=True, seed=106),
        "R7": Scenario(
            "R7",
            "unkeyed round-robin producer, 10% duplicates spread over partitions",
            n or 200_000,
            dup=0.10,
            unkeyed=True,
            seed=108,
        ),
        "R8": Scenario(
            "R8",
            f"the sink process SIGKILLed {args.kills} times, roles split (rate, sink, alerts)",
            n or 200_000,
            kills=args.kills,
            roles=("sink", "alerts", "rate"),
            kill_role="sink",
            seed=109,
        ),
        "R9": Scenario(
            "R9",
            f"a rebalance storm: two rating workers, one SIGKILLed every 20 s for "
            f"{args.storm_s:.0f} s while the traffic is produced (10% duplicates)",
            n or 1_000_000,
            dup=0.10,
            roles=("sink", "alerts", "rate", "rate"),
            kill_role="rate",
            storm_s=args.storm_s,
            seed=110,
        ),
        "soak": Scenario(
            "soak",
            f"{args.soak_s / 60:.0f} minutes at {args.soak_rate:,} events/s (half the "
            "sustained P2-batched rate), roles split, RSS sampled every 10 s",
            n or int(args.soak_rate * args.soak_s),
            dup=0.10,
            roles=("sink", "alerts", "rate"),
            storm_s=args.soak_s,
            soak=True,
            seed=111,
        ),
        "short": Scenario(
            "short",
            "all at once, small: 3 SIGKILLs, 1 broker restart, 10 s outage, 10% duplicates, bad corpus, late events, "
            "then 200 voids and 100 replacements through 2 SIGKILLs",
            n or 100_000,
            kills=3,
            broker_restarts=1,
            outage_s=10,
            dup=0.10,
            bad=True,
            late=True,
            seed=107,
            corrections=200,
        ),
    }


def traffic(sc: Scenario, now: dt.datetime) -> list[bytes]:
    late = sc.events // 200 if sc.late else 0
    lines = [
        line
        for _, line in generate(
            sc.events,
            seed=sc.seed,
            now=now,
            users=300,
            tenants=3,
            duplicate_rate=sc.dup,
            late=late,
            too_late=late // 10,
            bad=sc.events // 500 if sc.bad else 0,
            duplicate_window=100_000 if sc.soak else None,
        )
    ]
    if sc.bad:
        rnd = random.Random(sc.seed)
        corpus = [json.loads(x)["raw"] for x in CORPUS.read_text().splitlines() if x.strip()]
        for raw in corpus:
            if raw != "GENERATE_OVERSIZE":  # over the broker's message size: refused to the producer
                lines.insert(rnd.randrange(len(lines) // 10, len(lines)), raw.encode())
    return lines


class TrafficFile:
    """A soak's traffic on disk: its length, and chunks read in order."""

    def __init__(self, path: Path, count: int) -> None:
        self.path, self.count = path, count

    def __len__(self) -> int:
        return self.count

    def chunks(self, n: int) -> Any:
        size = -(-self.count // n)
        with self.path.open("rb") as f:
            chunk: list[bytes] = []
            for line in f:
                chunk.append(line.rstrip(b"\n"))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk


def traffic_file(sc: Scenario, now: dt.datetime, path: Path, partitions: int) -> tuple[TrafficFile, Any]:
    oracle = Oracle(load_catalog(), partitions=partitions, now=now + dt.timedelta(minutes=5))
    count = 0
    with path.open("wb") as f:
        for _, line in generate(
            sc.events, seed=sc.seed, now=now, users=300, tenants=3, duplicate_rate=sc.dup, duplicate_window=100_000
        ):
            f.write(line + b"\n")
            oracle.add(line)
            count += 1
    return TrafficFile(path, count), oracle.exp


def committed(stack: Stack) -> int:
    """Input offsets the worker group has committed (its progress, across kills)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=stack.bootstrap,
        request_timeout_ms=5000,
        **stack.security.kafka_python(bootstrap_timeout_ms=30_000),
    )
    try:
        group = stack.env["MS_APP_ID"]
        offsets = admin.list_group_offsets({group: None})[group]
        return sum(v.offset for tp, v in offsets.items() if tp.topic == stack.events_topic and v.offset > 0)
    finally:
        admin.close()


def progress(stack: Stack) -> int:
    from kafka.errors import KafkaError

    try:
        return committed(stack)
    except (KafkaError, OSError):  # the broker is restarting
        return -1


def fault_sink(stack: Stack, port: int, fail: bool) -> None:
    """Switch the sink's write failures; waits while the worker restarts (it may be recovering
    in place from an offset hole, streams/recovery.py)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            status, body = stack.post(port, "/fault/sink", {"fail": fail})
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        if status != 200:
            raise SystemExit(f"/fault/sink answered {status}: {body}")
        return


def recoveries(stack: Stack, port: int) -> int:
    """How often this worker process recovered in place (streams/recovery.py) so far."""
    try:
        return int(stack.health(port)["recoveries"]["count"])
    except (OSError, KeyError):
        return 0


def storm(sc: Scenario, stack: Stack, lines: Any, rnd: random.Random, out: Outcome) -> None:
    """Start the roles, produce the traffic over `storm_s` seconds and SIGKILL a `kill_role`
    process every `storm_every_s` (alternating, each restarted 0-2 s later); workers that exit
    by themselves are restarted and counted."""
    import threading

    for role in sc.roles:
        stack.start_worker(role=role)
    targets = [p for p, role in stack.roles.items() if role == sc.kill_role]
    chunks = 60
    size = -(-len(lines) // chunks)
    parts = (
        lines.chunks(chunks)
        if isinstance(lines, TrafficFile)
        else (lines[i : i + size] for i in range(0, len(lines), size))
    )

    def producer() -> None:
        from streams.producer import publish

        for i, part in enumerate(parts):
            publish(stack.bootstrap, stack.events_topic, part, security=stack.security)  # not kept in memory
            time.sleep(max(0.0, t0 + (i + 1) * sc.storm_s / chunks - time.monotonic()))

    t0 = time.monotonic()
    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    kills = 0
    while sc.soak and time.monotonic() - t0 < sc.storm_s:
        time.sleep(10)
        for p in stack.restart_exited():
            out.worker_restarts += 1
            out.faults.append(f"worker {p} exited by itself")
        at = round(time.monotonic() - t0)
        for p, proc in stack.workers.items():
            out.rss.setdefault(stack.roles[p], []).append((at, rss_kib(proc.pid)["VmRSS"]))
    while not sc.soak and time.monotonic() - t0 < sc.storm_s:
        time.sleep(max(0.0, t0 + (kills + 1) * sc.storm_every_s - time.monotonic()))
        for p in stack.restart_exited():
            out.worker_restarts += 1
            out.faults.append(f"worker {p} exited by itself")
        victim = targets[kills % len(targets)]
        stack.kill_worker(victim)
        kills += 1
        time.sleep(rnd.uniform(0, 2))
        stack.start_worker(victim)
    thread.join()
    if sc.soak:
        return
    out.faults.append(f"{kills} SIGKILLs of a rating worker, one every {sc.storm_every_s:.0f} s for {sc.storm_s:.0f} s")


def rss_growth(samples: dict[str, list[tuple[int, int]]], warmup_s: float) -> dict[str, Any]:
    """Per role: RSS at the end of the warm-up and at the end (each the mean of the 6 samples
    around it, a minute), its growth, the peak, and every sample."""
    out = {}
    for role, xs in samples.items():
        after = [kib for at, kib in xs if at >= warmup_s]
        if len(after) < 12:
            continue
        first, last = sum(after[:6]) / 6, sum(after[-6:]) / 6
        out[role] = {
            "after_warmup_mib": round(first / 1024),
            "end_mib": round(last / 1024),
            "growth_pct": round(100 * (last - first) / first, 2),
            "peak_mib": round(max(k for _, k in xs) / 1024),
            "samples": xs,
        }
    return out


def corrections(
    sc: Scenario, stack: Stack, exp: Any, port: int, tmp: Path, rnd: random.Random, out: Outcome, timeout: float
) -> None:
    """Void `sc.corrections` counted events and replace the usage of half as many (their input
    tokens halved: spend only falls, so no new alert is due), with `meterstream correct`, while
    the worker is SIGKILLed twice; the oracle moves by each difference (docs/fixing-the-past.md)."""
    import subprocess

    from pricing.rating import Rejection, rate
    from streams.analyst.past_reads import LEDGER_COLUMNS
    from streams.fixes.ledger import states
    from streams.harness.expected import adjust
    from streams.harness.stack import CLI

    rows = stack.query(
        f"SELECT {LEDGER_COLUMNS} FROM ledger FINAL WHERE adjustment = 0 AND usage LIKE '%input_tokens%' "
        f"ORDER BY event_id LIMIT {sc.corrections * 3}"
    )
    catalog = load_catalog()
    docs: list[dict[str, Any]] = []
    picked = [(k, st) for k, st in states(rows).items() if int((st.usage() or {}).get("input_tokens", 0)) > 1]
    for n, ((tenant, event_id), st) in enumerate(picked[: sc.corrections * 3 // 2]):
        base, current = st.base(), st.current()
        old = Decimal(str(current["cost"]))
        if n < sc.corrections:
            doc = {"action": "void"}
            delta, events = -old, -1
        else:
            usage = dict(st.usage() or {})
            usage["input_tokens"] = max(1, usage["input_tokens"] // 2)
            priced = rate(json.dumps(st.event(usage)).encode(), catalog, now=dt.datetime.now(dt.UTC))
            if isinstance(priced, Rejection):
                continue
            doc = {"action": "replace", "usage": usage}
            delta, events = Decimal(priced["cost"]) - old, 0
        docs.append(
            {
                "correction_id": f"chaos-{n}",
                "tenant_id": tenant,
                "event_id": event_id,
                "reason": "chaos",
                "author": "chaos",
                **doc,
            }
        )
        adjust(
            exp,
            tenant,
            base["user_id"],
            base["model"],
            base["labels"],
            base["currency"],
            int(st.own["ts_ms"]),
            delta,
            events,
        )
    path = tmp / f"{sc.name}-corrections.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    running = subprocess.Popen(
        [*CLI, "correct", str(path), "--timeout", str(int(timeout))],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    for _ in range(2):
        time.sleep(rnd.uniform(0.5, 2.5))
        stack.kill_worker(port)
        out.faults.append("SIGKILL while corrections are applied")
        time.sleep(rnd.uniform(0, 1))
        stack.start_worker(port)
    _, err = running.communicate(timeout=timeout + 60)
    if running.returncode != 0:
        raise SystemExit(f"{sc.name}: meterstream correct failed: {err.decode()[-2000:]}")
    voids = sum(d["action"] == "void" for d in docs)
    out.faults.append(f"{voids} voids and {len(docs) - voids} replacements")


def run(sc: Scenario, broker: Broker, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n{sc.name}: {sc.what} ({sc.events:,} events)")
    t_start = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rnd = random.Random(sc.seed)
    stack = Stack(
        broker.bootstrap,
        tmp / sc.name,
        partitions=args.partitions,
        extra_env={"MS_FAULT_INJECTION": "1", "MS_ROLLUP_LABELS": "app,team"},
    )
    out = Outcome()
    try:
        if sc.soak:  # too many to hold: written to a file, the oracle fed as it is written
            lines, exp = traffic_file(sc, now, tmp / f"{sc.name}-traffic.jsonl", args.partitions)
        else:
            lines = traffic(sc, now)
            exp = expected_totals(lines, load_catalog(), partitions=args.partitions, now=now + dt.timedelta(minutes=5))
        budgets, want_alerts = budgets_for(exp)
        budget_file = tmp / f"{sc.name}-budgets.json"
        budget_file.write_text(json.dumps(budgets))
        stack.cli("budgets", "set", "--file", str(budget_file))
        total = len(lines)
        if sc.storm_s:
            storm(sc, stack, lines, rnd, out)
        elif sc.unkeyed:
            stack.produce_unkeyed(lines, seed=sc.seed)
        elif sc.bad:  # the bad corpus, and between its halves hostile Kafka records on every partition
            half = len(lines) // 2
            stack.produce(lines[:half])
            bad = [r for p in range(args.partitions) for r, _ in hostile(p, lines[p])]
            write_raw(stack.bootstrap, stack.events_topic, bad)
            exp.rejected += len(bad)
            total += len(bad)
            stack.produce(lines[half:])
        else:
            stack.produce(lines)
        records = stack.records()  # progress points are in committed records
        # faults at progress points (committed input offsets), in order
        plan = sorted(
            [(rnd.uniform(0.05, 0.9), "kill") for _ in range(sc.kills)]
            + [(0.45 + 0.1 * i, "broker") for i in range(sc.broker_restarts)]
            + ([(0.3, "outage")] if sc.outage_s else [])
        )
        ports = dict(stack.roles.items()) if sc.storm_s else {stack.start_worker(role=role): role for role in sc.roles}
        port = next((p for p, role in ports.items() if role == sc.kill_role), 0)
        sink_port = next(p for p, role in ports.items() if role in ("sink", "all"))
        for at, kind in plan:
            deadline = time.monotonic() + args.timeout
            while progress(stack) < at * records:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{sc.name}: the worker did not reach {at:.0%} in {args.timeout:.0f}s")
                for p in ports:
                    if stack.workers[p].poll() is not None:  # died on its own: count it, restart it
                        out.worker_restarts += 1
                        out.faults.append(f"worker exited by itself (code {stack.workers[p].returncode})")
                        stack.workers.pop(p)
                        stack.start_worker(p)
                time.sleep(0.2)
            if kind == "kill":
                out.recoveries += recoveries(stack, port)
                stack.kill_worker(port)
                out.faults.append(f"SIGKILL at {at:.0%}")
                time.sleep(rnd.uniform(0, 2))
                stack.start_worker(port)
            elif kind == "broker":
                broker.stop()
                out.faults.append(f"broker stopped at {at:.0%}")
                time.sleep(5)
                broker.start()
            elif kind == "outage":
                fault_sink(stack, sink_port, True)
                out.faults.append(f"sink failing for {sc.outage_s:.0f} s from {at:.0%}")
                time.sleep(sc.outage_s)
                fault_sink(stack, sink_port, False)
        stack.wait_until_exact(exp, timeout=args.timeout)
        if sc.corrections:
            corrections(sc, stack, exp, port, tmp, rnd, out, args.timeout)
            stack.wait_until_exact(exp, timeout=args.timeout)
        out.recoveries += sum(recoveries(stack, p) for p in ports)
        if out.recoveries:
            out.faults.append(f"the worker recovered in place {out.recoveries} times (offset holes)")
        diffs = 0
        for by, window in (
            ("user", "total"),
            ("model", "total"),
            ("user", "minute"),
            ("model", "day"),
            ("label:app", "hour"),
            ("label:team", "total"),
        ):
            got = normalize(stack.report(by, window), by, window)
            d = diff(got, as_rows(exp, by, window))
            diffs += len(d)
            if d:
                print(f"  DIFF {by}/{window}: {d[:5]}")
        counted = int(stack.query("SELECT countIf(adjustment = 0) AS n FROM ledger FINAL")[0]["n"])
        dead = stack.count_rejected()
        delivered: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = alerts_in_topic(stack)
            if len(set(delivered)) >= len(want_alerts):
                break
            time.sleep(2)
        time.sleep(3)
        delivered = alerts_in_topic(stack)
        missing = sorted(set(want_alerts) - set(delivered))
        unexpected = sorted(set(delivered) - set(want_alerts))
        repeated = len(delivered) - len(set(delivered))
        result = {
            "scenario": sc.name,
            "what": sc.what,
            "produced": total,
            "counted": counted,
            "duplicates_dropped": total - counted - dead,
            "dead_lettered": dead,
            "oracle": {"counted": exp.counted, "duplicates": exp.duplicates, "rejected": exp.rejected},
            "totals_diff": diffs + abs(counted - exp.counted) + abs(dead - exp.rejected),
            "alerts_expected": len(want_alerts),
            "alerts_delivered": len(set(delivered)),
            "alerts_missing": missing,
            "alerts_unexpected": unexpected,
            "alerts_repeated": repeated,
            "faults": out.faults,
            "worker_restarts_unplanned": out.worker_restarts,
            "worker_recoveries_in_place": out.recoveries,
            "seconds": round(time.monotonic() - t_start, 1),
        }
        if out.rss:
            result["rss"] = rss_growth(out.rss, warmup_s=args.soak_warmup_s)
            result["rss_growth_ok"] = all(g["growth_pct"] <= 5 for g in result["rss"].values())
            for role, g in result["rss"].items():
                print(
                    f"  RSS {role}: {g['after_warmup_mib']} MiB after warm-up -> {g['end_mib']} MiB at the end "
                    f"({g['growth_pct']:+.1f}%), peak {g['peak_mib']} MiB"
                )
        print(
            f"  produced {total:,}; counted {counted:,} (oracle {exp.counted:,}); dead-lettered {dead:,} "
            f"(oracle {exp.rejected:,}); duplicates dropped {result['duplicates_dropped']:,}"
        )
        print(
            f"  totals diff vs oracle: {result['totals_diff']}; alerts expected {len(want_alerts)}, delivered "
            f"{result['alerts_delivered']} (missing {len(missing)}, unexpected {len(unexpected)}, repeated {repeated})"
        )
        print(f"  faults: {'; '.join(out.faults) or 'none'}; {result['seconds']}s")
        return result
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="R1,R2,R3,R4,R5,R6,R7,R8,R9", help="comma-separated: R1..R9, short")
    ap.add_argument("--events", type=int, default=0, help="events per scenario (default: per scenario)")
    ap.add_argument("--kills", type=int, default=10, help="R1's SIGKILLs")
    ap.add_argument("--outage-s", type=float, default=60)
    ap.add_argument("--storm-s", type=float, default=300, help="R9's storm")
    ap.add_argument("--soak-s", type=float, default=1800)
    ap.add_argument("--soak-rate", type=int, default=7_761, help="events/s: half of P2-batched (docs/benchmarks.md)")
    ap.add_argument("--soak-warmup-s", type=float, default=300)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to reach exact totals, per scenario")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    table = scenarios(args)
    unknown = [s for s in chosen if s not in table]
    if unknown:
        ap.error(f"unknown scenarios: {unknown}")
    report = header("chaos: fault injection against the real pipeline, oracle from the produced events")
    results = []
    with tempfile.TemporaryDirectory(prefix="ms-chaos-") as d:
        tmp = Path(d)
        broker = Broker(tmp / "kafka").start()
        try:
            for name in chosen:
                results.append(run(table[name], broker, tmp, args))
        finally:
            broker.remove()
    ok = all(
        r["totals_diff"] == 0
        and not r["alerts_missing"]
        and not r["alerts_unexpected"]
        and r.get("rss_growth_ok", True)
        and r["alerts_repeated"] == 0
        for r in results
    )
    print(f"\n  {'scenario':<7} {'produced':>10} {'counted':>10} {'dead':>7} {'dups':>8} {'diff':>5} {'alerts':>9}")
    for r in results:
        print(
            f"  {r['scenario']:<7} {r['produced']:>10,} {r['counted']:>10,} {r['dead_lettered']:>7,} "
            f"{r['duplicates_dropped']:>8,} {r['totals_diff']:>5} {r['alerts_delivered']:>4}/{r['alerts_expected']:<4}"
        )
    print(f"  {'all exact, every alert once' if ok else 'FAILED'}")
    report.update({"params": {**vars(args), "json": None}, "results": results, "ok": ok})
    every = ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9"]
    default = RESULTS / ("chaos.json" if chosen == every else f"chaos-{'-'.join(chosen)}.json")
    write(args.json or default, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
