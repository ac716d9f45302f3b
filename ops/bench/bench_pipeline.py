#!/usr/bin/env python3
"""Pipeline benchmarks on this machine, Kafka + workers + embedded ClickHouse together, each figure
beside its baselines from the same run (a bare aiokafka consumer, a no-op Faust agent and
`rate()` alone over the same topic and events):

  P2-batched  sustained events/s from Kafka to exact totals in ClickHouse, 1M events of the
              realistic mix from the project's producer (batched records), one worker.
              Targets: >= 30,000 events/s and >= 50% of rate() alone on the same events.
  P2-single   the same with one event per record. Target: >= 80% of a no-op Faust agent.
  scale       single-event records: --raters rating workers + 1 sink vs 1 `all` worker. Target: >= 1.3x.
  P3          produced -> visible in the 1-minute rollup, p50/p99, batched, at half P2-batched.
              Target: p99 <= 2 s.
  P4          worker RSS with 1,000,000 active window keys. Target: <= 1 GiB.

    python ops/bench/bench_pipeline.py [--events 1000000] [--only p2,p3,labels,single,scale,p4] [--json OUT]

The broker is the project's own (ops/kafka/kafka.sh, started here on free ports) unless
--bootstrap is given; the worker is `meterstream worker` in a subprocess, as users run it.
Every figure is taken only after the totals in ClickHouse equal the oracle's, Decimal-exact.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402
from common import RESULTS, header, rss_kib, write  # noqa: E402

from pricing import load_catalog  # noqa: E402
from streams.harness.expected import as_rows, diff, expected_totals, normalize  # noqa: E402
from streams.harness.generate import generate  # noqa: E402
from streams.harness.stack import Broker, Stack  # noqa: E402

TARGET_EPS, TARGET_RATE_SHARE, TARGET_NOOP_SHARE, TARGET_SCALE = 30_000, 0.5, 0.8, 1.3
TARGET_P99_S, TARGET_RSS_GIB = 2.0, 1.0


def produce(stack: Stack, lines: list[bytes], batch: bool = True) -> float:
    """Publish the lines with the project's producer (batched records unless `batch` is False);
    return events/s."""
    from streams.producer import publish

    t = time.perf_counter()
    publish(stack.bootstrap, stack.events_topic, lines, batch=batch)
    stack.produced.extend(lines)
    return len(lines) / (time.perf_counter() - t)


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    """A bare aiokafka consumer reading the whole topic once: messages/s."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        got, t0 = 0, None
        while got < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if t0 is None and batches:
                t0 = time.perf_counter()
            for msgs in batches.values():
                for m in msgs:  # touch each message as a consumer would
                    got += len(m.value) > 0
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


def wait_exact(stack: Stack, ports: list[int], exp: Any, n: int, timeout: float) -> dict[str, float]:
    """Poll the workers until they handled n inputs and ClickHouse holds exactly the expected
    ledger; return the times (monotonic) of first progress, all handled, totals exact."""
    t_first = t_handled = None
    last: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled = 0
        for port in ports:
            try:
                handled += stack.handled(port)
            except OSError:
                pass
        now = time.monotonic()
        if handled and t_first is None:
            t_first = now
        if handled >= n and t_handled is None:
            t_handled = now
        if t_handled is not None:
            # tables are written one after another (ClickHouse has no multi-table transaction),
            # and reads do not wait for a whole batch: poll until every total is there
            row = stack.query("SELECT count() AS n FROM ledger FINAL")[0]
            if int(row["n"]) == exp.counted:
                got = normalize(stack.report("user", "total"), "user", "total")
                last = diff(got, as_rows(exp, "user", "total"))
                if not last and stack.count_rejected() == exp.rejected:
                    return {"first": t_first, "handled": t_handled, "exact": time.monotonic()}
        time.sleep(0.25 if t_handled is None else 0.5)
    raise SystemExit(f"worker did not reach exact totals within {timeout:.0f}s; last diff: {last[:5]}")


def noop_agent(bootstrap: str, topic: str, n: int, tmp: Path) -> float:
    """Messages/s of a Faust agent that only counts (ops/bench/noop_agent.py) over the topic."""
    import os
    import subprocess

    out = tmp / f"noop-{topic}.json"
    env = {**os.environ, "NOOP_BOOTSTRAP": bootstrap, "NOOP_TOPIC": topic, "NOOP_N": str(n), "NOOP_OUT": str(out)}
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("noop_agent.py")),
            "worker",
            "--loglevel",
            "error",
            "--without-web",
        ],
        env=env,
        cwd=tmp,
        timeout=3600,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return float(orjson.loads(out.read_bytes())["messages_per_s"])


def rate_alone(lines: list[bytes], now: dt.datetime) -> float:
    """Events/s of validate + price (pricing.rating.rate) alone on the same lines, one core."""
    from pricing.rating import rate

    catalog = load_catalog()
    for line in lines[:2000]:  # warm up: tokenizers and price plans load on first use
        rate(line, catalog, now=now)
    t = time.perf_counter()
    for line in lines:
        rate(line, catalog, now=now)
    return len(lines) / (time.perf_counter() - t)


def p2_throughput(
    bootstrap: str,
    tmp: Path,
    args: argparse.Namespace,
    now: dt.datetime,
    *,
    name: str,
    batch: bool,
    roles: list[str],
    baselines: bool = True,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Events produced up front (batched records or one per event), then worker processes of the
    given roles started together; sustained = events / (first progress -> totals exact)."""
    n = args.events if batch else args.single_events
    print(
        f"\n{name}: {n:,} events, {'batched' if batch else 'single-event'} records, {args.partitions} "
        f"partitions, workers: {' + '.join(roles)}"
    )
    stack = Stack(bootstrap, tmp / name, partitions=args.partitions, extra_env=env)
    try:
        t = time.perf_counter()
        lines = [
            line for _, line in generate(n, seed=args.seed, now=now, users=args.users, tenants=3, duplicate_rate=0.01)
        ]
        print(f"  generated in {time.perf_counter() - t:.1f}s; producing ...")
        produce_eps = produce(stack, lines, batch=batch)
        records = stack.records()
        print(f"  produced at {produce_eps:,.0f} events/s in {records:,} records; computing the oracle ...")
        exp = expected_totals(lines, load_catalog(), partitions=args.partitions, now=now + dt.timedelta(minutes=5))
        result: dict[str, Any] = {
            "events": len(lines),
            "records": records,
            "batched": batch,
            "roles": roles,
            "counted": exp.counted,
            "duplicates": exp.duplicates,
            "rejected": exp.rejected,
            "produce_events_per_s": round(produce_eps),
        }
        if baselines:
            result["raw_consume_per_s"] = round(asyncio.run(raw_consume(bootstrap, stack.events_topic, records)))
            result["noop_faust_messages_per_s"] = round(noop_agent(bootstrap, stack.events_topic, records, tmp))
            result["rate_alone_events_per_s"] = round(rate_alone(lines, now + dt.timedelta(minutes=5)))
            print(
                f"  baselines: bare aiokafka {result['raw_consume_per_s']:,} records/s; no-op Faust agent "
                f"{result['noop_faust_messages_per_s']:,} records/s; rate() alone "
                f"{result['rate_alone_events_per_s']:,} events/s; starting the workers ..."
            )
        ports = [stack.start_worker(role=r) for r in roles]
        times = wait_exact(stack, ports, exp, len(lines), timeout=args.timeout)
        sustained = len(lines) / (times["exact"] - times["first"])
        rating = len(lines) / max(times["handled"] - times["first"], 1e-9)
        rss = {f"{stack.roles[p]}:{p}": round(rss_kib(stack.workers[p].pid)["VmHWM"] / 1024) for p in ports}
        result.update(
            {
                "sustained_events_per_s": round(sustained),
                "rating_events_per_s": round(rating),
                "sustained_records_per_s": round(sustained * records / len(lines)),
                "seconds_to_exact": round(times["exact"] - times["first"], 2),
                "peak_rss_mib": rss,
                "totals_diff": 0,
            }
        )
        if baselines:
            result["share_of_rate_alone"] = round(sustained / result["rate_alone_events_per_s"], 4)
            result["share_of_noop_faust"] = round(
                result["sustained_records_per_s"] / result["noop_faust_messages_per_s"], 4
            )
        print(
            f"  sustained {sustained:,.0f} events/s to exact totals ({result['sustained_records_per_s']:,} records/s); "
            f"rating alone {rating:,.0f}/s; peak RSS {rss} MiB"
        )
        if "p3" in args.only and name == "p2_batched":
            sink = next(p for p in ports if stack.roles[p] in ("all", "sink"))
            result["p3"] = p3_freshness(stack, sink, args, sustained)
        return result
    finally:
        stack.stop()


def probe(i: int, ts: dt.datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"probe-{i}",
            "ts": ts.isoformat(timespec="milliseconds"),
            "tenant_id": "bench",
            "user_id": f"probe-{i:06d}",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }
    )


def p3_freshness(stack: Stack, port: int, args: argparse.Namespace, sustained: float) -> dict[str, Any]:
    rate = args.freshness_rate or max(1, int(sustained / 2))
    print(f"\nP3 freshness: {rate:,} events/s for {args.freshness_seconds}s, {args.probes_per_s} probes/s")
    filler = itertools.cycle(
        [
            line
            for _, line in generate(
                20_000,
                seed=args.seed + 1,
                users=args.users,
                now=dt.datetime.now(dt.UTC),
                spread=dt.timedelta(seconds=1),
            )
        ]
    )
    from streams.producer import Producer

    producer = Producer(stack.bootstrap, stack.events_topic, linger_ms=args.linger_ms)  # batched records
    sent: dict[str, float] = {}

    start = time.time()
    tick = 0.05
    per_tick = rate * tick
    carry = 0.0
    k = 0
    total = 0
    while time.time() - start < args.freshness_seconds:
        t_tick = time.time()
        carry += per_tick
        n, carry = int(carry), carry - int(carry)
        for _ in range(n):
            line = next(filler)
            # fresh ids: the filler repeats, and a repeat would only be a duplicate
            line = line.replace(b'"event_id":"', f'"event_id":"f{total}-'.encode(), 1)
            producer.send(line)
            total += 1
        if int((t_tick - start) * args.probes_per_s) >= k + 1 or k == 0:
            now = dt.datetime.now(dt.UTC)
            producer.send(probe(k, now))
            sent[f"probe-{k:06d}"] = time.time()
            k += 1
            total += 1
        time.sleep(max(0.0, tick - (time.time() - t_tick)))
    producer.flush()
    producer.close()
    elapsed = time.time() - start
    deadline = time.monotonic() + 120
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = stack.query(
            "SELECT user_id, toUnixTimestamp64Milli(min(written_at)) AS w FROM rollup_user_minute "
            "WHERE tenant_id = 'bench' GROUP BY user_id"
        )
        if len(rows) >= len(sent):
            break
        time.sleep(1)
    lat = sorted((int(r["w"]) / 1000 - sent[r["user_id"]]) for r in rows if r["user_id"] in sent)
    if len(lat) < len(sent):
        raise SystemExit(f"only {len(lat)} of {len(sent)} probes became visible")

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, math.ceil(q * len(lat)) - 1)]

    result = {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(total / elapsed),
        "seconds": round(elapsed, 1),
        "probes": len(lat),
        "p50_s": round(pct(0.5), 3),
        "p99_s": round(pct(0.99), 3),
        "max_s": round(lat[-1], 3),
        "min_s": round(lat[0], 3),
    }
    print(
        f"  produced {total:,} at {result['achieved_rate_per_s']:,}/s; probes visible in the minute rollup: "
        f"p50 {result['p50_s']}s, p99 {result['p99_s']}s, max {result['max_s']}s"
    )
    return result


def p4_memory(bootstrap: str, tmp: Path, args: argparse.Namespace, now: dt.datetime) -> dict[str, Any]:
    users = math.ceil(args.keys / 4)  # each user: a minute, an hour, a day and a month window key
    print(f"\nP4 memory: {users:,} users x (minute, hour, day, month) = {users * 4:,} user-window keys")
    stack = Stack(bootstrap, tmp / "p4", partitions=args.partitions)
    try:
        ts = now.replace(second=0, microsecond=0).isoformat()
        lines = [
            orjson.dumps(
                {
                    "event_id": f"m{i}",
                    "ts": ts,
                    "tenant_id": "mem",
                    "user_id": f"u{i:07d}",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 100 + i % 1000, "output_tokens": 10},
                }
            )
            for i in range(users)
        ]
        produce(stack, lines)
        exp = expected_totals(lines, load_catalog(), partitions=args.partitions, now=now + dt.timedelta(minutes=5))
        port = stack.start_worker()
        wait_exact(stack, [port], exp, len(lines), timeout=args.timeout)
        health = stack.health(port)
        mem = rss_kib(stack.workers[port].pid)
        result = {
            "users": users,
            "window_keys": health["rollup_keys"],
            "state_keys": health["state_keys"],
            "rss_mib": round(mem["VmRSS"] / 1024),
            "peak_rss_mib": round(mem["VmHWM"] / 1024),
            "totals_diff": 0,
        }
        print(
            f"  window keys in memory {health['rollup_keys']:,}; state keys {health['state_keys']:,}; worker RSS {result['rss_mib']} MiB "
            f"(peak {result['peak_rss_mib']} MiB)"
        )
        return result
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="P2-batched: events")
    ap.add_argument("--single-events", type=int, default=100_000, help="P2-single and scale: events")
    ap.add_argument("--p2-roles", default="sink,rate", help="P2-batched: the workers' roles (e.g. all)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--raters", type=int, default=2, help="scale: rating workers beside one sink")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--keys", type=int, default=1_000_000, help="P4: active window keys")
    ap.add_argument("--freshness-seconds", type=int, default=60)
    ap.add_argument("--freshness-rate", type=int, default=0, help="P3 rate (default: half of P2's)")
    ap.add_argument("--probes-per-s", type=int, default=5)
    ap.add_argument("--linger-ms", type=float, default=50, help="P3: the producer's linger")
    ap.add_argument("--only", default="p2,p3,labels,single,scale,p4")
    ap.add_argument("--bootstrap", default=None, help="an existing broker (default: start our own)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, default=RESULTS / "pipeline.json")
    args = ap.parse_args(argv)
    args.only = set(args.only.split(","))
    report = header("pipeline: Kafka -> Faust worker -> ClickHouse (chDB), exact totals")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="ms-bench-") as d:
        tmp = Path(d)
        broker = None if args.bootstrap else Broker(tmp / "kafka").start()
        bootstrap = args.bootstrap or broker.bootstrap
        try:
            results: dict[str, Any] = {}
            if "p2" in args.only:
                results["p2"] = p2_throughput(
                    bootstrap, tmp, args, now, name="p2_batched", batch=True, roles=args.p2_roles.split(",")
                )
                if "p3" in results["p2"]:
                    results["p3"] = results["p2"].pop("p3")
            if "labels" in args.only:  # P2-batched again, the sink rolling up two label keys too
                results["p2_labels"] = p2_throughput(
                    bootstrap,
                    tmp,
                    args,
                    now,
                    name="p2_labels",
                    batch=True,
                    roles=args.p2_roles.split(","),
                    baselines=False,
                    env={"MS_ROLLUP_LABELS": "app,team"},
                )
                if "p2" in results:
                    results["p2_labels"]["share_of_p2_without"] = round(
                        results["p2_labels"]["sustained_events_per_s"] / results["p2"]["sustained_events_per_s"], 3
                    )
            if "single" in args.only or "scale" in args.only:
                results["p2_single"] = p2_throughput(
                    bootstrap, tmp, args, now, name="p2_single", batch=False, roles=["all"]
                )
            if "scale" in args.only:
                results["scale"] = p2_throughput(
                    bootstrap,
                    tmp,
                    args,
                    now,
                    name="scale",
                    batch=False,
                    roles=["sink"] + ["rate"] * args.raters,
                    baselines=False,
                )
                results["scale"]["speedup_vs_one_all_worker"] = round(
                    results["scale"]["sustained_events_per_s"] / results["p2_single"]["sustained_events_per_s"], 3
                )
            if "p4" in args.only:
                results["p4"] = p4_memory(bootstrap, tmp, args, now)
        finally:
            if broker:
                broker.remove()
    report.update(
        {
            "params": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items() if k != "json"},
            "results": results,
            "targets": {
                "p2_events_per_s": TARGET_EPS,
                "p2_share_of_rate_alone": TARGET_RATE_SHARE,
                "p2_single_share_of_noop_faust": TARGET_NOOP_SHARE,
                "scale_speedup": TARGET_SCALE,
                "p3_p99_s": TARGET_P99_S,
                "p4_rss_gib": TARGET_RSS_GIB,
            },
        }
    )
    print("\n  figure                                   value            target")

    def line(label: str, value: str, target: str, ok: bool) -> None:
        print(f"  {label:<40} {value:>14}    {target}: {'met' if ok else 'MISSED'}")

    if "p2" in results:
        r = results["p2"]
        line(
            "P2-batched sustained events/s",
            f"{r['sustained_events_per_s']:,}",
            f">= {TARGET_EPS:,}",
            r["sustained_events_per_s"] >= TARGET_EPS,
        )
        line(
            "P2-batched share of rate() alone",
            f"{r['share_of_rate_alone']:.1%}",
            ">= 50%",
            r["share_of_rate_alone"] >= TARGET_RATE_SHARE,
        )
    if "p2_single" in results:
        r = results["p2_single"]
        line(
            "P2-single share of a no-op Faust agent",
            f"{r['share_of_noop_faust']:.1%}",
            ">= 80%",
            r["share_of_noop_faust"] >= TARGET_NOOP_SHARE,
        )
    if "scale" in results:
        r = results["scale"]
        line(
            f"scale: {args.raters} raters + 1 sink vs 1 worker",
            f"{r['speedup_vs_one_all_worker']:.2f}x",
            ">= 1.3x",
            r["speedup_vs_one_all_worker"] >= TARGET_SCALE,
        )
    if "p3" in results:
        r = results["p3"]
        line("P3 freshness p50 / p99 (s)", f"{r['p50_s']} / {r['p99_s']}", "p99 <= 2 s", r["p99_s"] <= TARGET_P99_S)
    if "p4" in results:
        r = results["p4"]
        line(
            f"P4 worker RSS, {r['window_keys']:,} keys",
            f"{r['rss_mib']:,} MiB",
            "<= 1 GiB",
            r["rss_mib"] <= TARGET_RSS_GIB * 1024,
        )
    write(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
