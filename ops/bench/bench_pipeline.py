#!/usr/bin/env python3
"""Pipeline benchmarks on this machine, Kafka + worker + embedded ClickHouse together:

  P2 throughput  sustained events/s from Kafka to exact totals in ClickHouse (1M events of the
                 realistic mix), beside the raw consume rate of the same topic by a bare aiokafka
                 consumer, in the same run. Targets: >= 30,000 events/s and >= 50% of raw.
  P3 freshness   produced -> visible in the 1-minute rollup, p50/p99, at half the sustained rate
                 measured by P2. Target: p99 <= 5 s.
  P4 memory      worker RSS with 1,000,000 active window keys. Target: <= 1 GiB.

    python ops/bench/bench_pipeline.py [--events 1000000] [--only p2,p3,p4] [--json OUT]

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
from streams.expected import as_rows, diff, expected_totals, normalize  # noqa: E402
from streams.generate import generate  # noqa: E402
from streams.producer import make_producer  # noqa: E402
from streams.stack import Broker, Stack  # noqa: E402

TARGET_EPS, TARGET_RAW_SHARE, TARGET_P99_S, TARGET_RSS_GIB = 30_000, 0.5, 5.0, 1.0


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

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=16 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
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
            row = stack.query("SELECT count() AS n FROM ledger FINAL")[0]
            if int(row["n"]) == exp.counted:
                t_exact = time.monotonic()
                got = normalize(stack.report("user", "total"), "user", "total")
                want = as_rows(exp, "user", "total")
                if got != want:
                    raise SystemExit(f"totals differ from the oracle: {diff(got, want)[:5]}")
                if stack.count_rejected() != exp.rejected:
                    raise SystemExit("dead letters differ from the oracle")
                return {"first": t_first, "handled": t_handled, "exact": t_exact}
        time.sleep(0.25 if t_handled is None else 0.5)
    raise SystemExit(f"worker did not reach exact totals within {timeout:.0f}s")


def p2_throughput(bootstrap: str, tmp: Path, args: argparse.Namespace, now: dt.datetime) -> dict[str, Any]:
    print(f"\nP2 throughput: {args.events:,} events, {args.partitions} partitions")
    stack = Stack(bootstrap, tmp / "p2", partitions=args.partitions)
    try:
        t = time.perf_counter()
        lines = [line for _, line in generate(args.events, seed=args.seed, now=now, users=args.users,
                                              tenants=3, duplicate_rate=0.01)]
        print(f"  generated in {time.perf_counter() - t:.1f}s; producing ...")
        produce_eps = produce(stack, lines)
        print(f"  produced at {produce_eps:,.0f} events/s; computing the oracle ...")
        exp = expected_totals(lines, load_catalog(), partitions=args.partitions, now=now + dt.timedelta(minutes=5))
        raw = asyncio.run(raw_consume(bootstrap, stack.events_topic, len(lines)))
        print(f"  raw aiokafka consume: {raw:,.0f} messages/s; starting the worker ...")
        ports = [stack.start_worker() for _ in range(args.workers)]
        times = wait_exact(stack, ports, exp, len(lines), timeout=args.timeout)
        port = next(p for p in ports if stack.health(p)["store_open"])  # the one holding the sink
        sustained = len(lines) / (times["exact"] - times["first"])
        rating = len(lines) / max(times["handled"] - times["first"], 1e-9)
        mem = rss_kib(stack.workers[port].pid)
        result = {"events": len(lines), "workers": args.workers, "counted": exp.counted, "duplicates": exp.duplicates,
                  "rejected": exp.rejected, "produce_events_per_s": round(produce_eps),
                  "raw_consume_per_s": round(raw), "sustained_events_per_s": round(sustained),
                  "rating_events_per_s": round(rating), "share_of_raw": round(sustained / raw, 4),
                  "seconds_to_exact": round(times["exact"] - times["first"], 2),
                  "worker_rss_mib": round(mem["VmRSS"] / 1024), "worker_peak_rss_mib": round(mem["VmHWM"] / 1024),
                  "totals_diff": 0}
        print(f"  sustained {sustained:,.0f} events/s to exact totals ({result['share_of_raw']:.1%} of raw); "
              f"rating alone {rating:,.0f}/s; worker RSS {result['worker_rss_mib']} MiB")
        if "p3" in args.only:
            result["p3"] = p3_freshness(stack, port, args, sustained)
        return result
    finally:
        stack.stop()


def probe(i: int, ts: dt.datetime) -> bytes:
    return orjson.dumps({"event_id": f"probe-{i}", "ts": ts.isoformat(timespec="milliseconds"),
                         "tenant_id": "bench", "user_id": f"probe-{i:06d}", "provider": "openai",
                         "model": "gpt-4o", "usage": {"input_tokens": 100, "output_tokens": 10}})


def p3_freshness(stack: Stack, port: int, args: argparse.Namespace, sustained: float) -> dict[str, Any]:
    rate = args.freshness_rate or max(1, int(sustained / 2))
    print(f"\nP3 freshness: {rate:,} events/s for {args.freshness_seconds}s, {args.probes_per_s} probes/s")
    filler = itertools.cycle([line for _, line in generate(20_000, seed=args.seed + 1, users=args.users,
                                                           now=dt.datetime.now(dt.timezone.utc),
                                                           spread=dt.timedelta(seconds=1))])
    producer = make_producer(stack.bootstrap)
    sent: dict[str, float] = {}
    from streams.producer import event_key

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
            producer.send(stack.events_topic, key=event_key(line), value=line)
            total += 1
        if int((t_tick - start) * args.probes_per_s) >= k + 1 or k == 0:
            now = dt.datetime.now(dt.timezone.utc)
            line = probe(k, now)
            producer.send(stack.events_topic, key=event_key(line), value=line)
            sent[f"probe-{k:06d}"] = time.time()
            k += 1
            total += 1
        producer.flush() if n > 1000 else None
        time.sleep(max(0.0, tick - (time.time() - t_tick)))
    producer.flush()
    producer.close()
    elapsed = time.time() - start
    deadline = time.monotonic() + 120
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = stack.query("SELECT user_id, toUnixTimestamp64Milli(min(written_at)) AS w FROM rollup_user_minute "
                           "WHERE tenant_id = 'bench' GROUP BY user_id")
        if len(rows) >= len(sent):
            break
        time.sleep(1)
    lat = sorted((int(r["w"]) / 1000 - sent[r["user_id"]]) for r in rows if r["user_id"] in sent)
    if len(lat) < len(sent):
        raise SystemExit(f"only {len(lat)} of {len(sent)} probes became visible")

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, math.ceil(q * len(lat)) - 1)]

    result = {"target_rate_per_s": rate, "achieved_rate_per_s": round(total / elapsed), "seconds": round(elapsed, 1),
              "probes": len(lat), "p50_s": round(pct(0.5), 3), "p99_s": round(pct(0.99), 3),
              "max_s": round(lat[-1], 3), "min_s": round(lat[0], 3)}
    print(f"  produced {total:,} at {result['achieved_rate_per_s']:,}/s; probes visible in the minute rollup: "
          f"p50 {result['p50_s']}s, p99 {result['p99_s']}s, max {result['max_s']}s")
    return result


def p4_memory(bootstrap: str, tmp: Path, args: argparse.Namespace, now: dt.datetime) -> dict[str, Any]:
    users = math.ceil(args.keys / 4)  # each user: a minute, an hour, a day and a month window key
    print(f"\nP4 memory: {users:,} users x (minute, hour, day, month) = {users * 4:,} user-window keys")
    stack = Stack(bootstrap, tmp / "p4", partitions=args.partitions)
    try:
        ts = now.replace(second=0, microsecond=0).isoformat()
        lines = [orjson.dumps({"event_id": f"m{i}", "ts": ts, "tenant_id": "mem", "user_id": f"u{i:07d}",
                               "provider": "openai", "model": "gpt-4o",
                               "usage": {"input_tokens": 100 + i % 1000, "output_tokens": 10}})
                 for i in range(users)]
        produce(stack, lines)
        exp = expected_totals(lines, load_catalog(), partitions=args.partitions, now=now + dt.timedelta(minutes=5))
        port = stack.start_worker()
        wait_exact(stack, [port], exp, len(lines), timeout=args.timeout)
        health = stack.health(port)
        mem = rss_kib(stack.workers[port].pid)
        result = {"users": users, "window_keys": health["rollup_keys"], "state_keys": health["state_keys"],
                  "rss_mib": round(mem["VmRSS"] / 1024), "peak_rss_mib": round(mem["VmHWM"] / 1024),
                  "totals_diff": 0}
        print(f"  window keys in memory {health['rollup_keys']:,}; state keys {health['state_keys']:,}; worker RSS {result['rss_mib']} MiB "
              f"(peak {result['peak_rss_mib']} MiB)")
        return result
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="P2/P3: worker processes")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--keys", type=int, default=1_000_000, help="P4: active window keys")
    ap.add_argument("--freshness-seconds", type=int, default=60)
    ap.add_argument("--freshness-rate", type=int, default=0, help="P3 rate (default: half of P2's)")
    ap.add_argument("--probes-per-s", type=int, default=5)
    ap.add_argument("--only", default="p2,p3,p4")
    ap.add_argument("--bootstrap", default=None, help="an existing broker (default: start our own)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, default=RESULTS / "pipeline.json")
    args = ap.parse_args(argv)
    args.only = set(args.only.split(","))
    report = header("pipeline: Kafka -> Faust worker -> ClickHouse (chDB), exact totals")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="ms-bench-") as d:
        tmp = Path(d)
        broker = None if args.bootstrap else Broker(tmp / "kafka").start()
        bootstrap = args.bootstrap or broker.bootstrap
        try:
            results: dict[str, Any] = {}
            if "p2" in args.only:
                results["p2"] = p2_throughput(bootstrap, tmp, args, now)
                if "p3" in results["p2"]:
                    results["p3"] = results["p2"].pop("p3")
            if "p4" in args.only:
                results["p4"] = p4_memory(bootstrap, tmp, args, now)
        finally:
            if broker:
                broker.remove()
    report.update({"params": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()
                              if k != "json"}, "results": results,
                   "targets": {"p2_events_per_s": TARGET_EPS, "p2_share_of_raw": TARGET_RAW_SHARE,
                               "p3_p99_s": TARGET_P99_S, "p4_rss_gib": TARGET_RSS_GIB}})
    print("\n  figure                         value            target")
    if "p2" in results:
        r = results["p2"]
        print(f"  P2 sustained events/s          {r['sustained_events_per_s']:>12,}    >= {TARGET_EPS:,}: "
              f"{'met' if r['sustained_events_per_s'] >= TARGET_EPS else 'MISSED'}")
        print(f"  P2 share of raw consume        {r['share_of_raw']:>12.1%}    >= 50%: "
              f"{'met' if r['share_of_raw'] >= TARGET_RAW_SHARE else 'MISSED'}")
    if "p3" in results:
        r = results["p3"]
        print(f"  P3 freshness p50 / p99 (s)     {r['p50_s']:>5} / {r['p99_s']:<5}    p99 <= 5 s: "
              f"{'met' if r['p99_s'] <= TARGET_P99_S else 'MISSED'}")
    if "p4" in results:
        r = results["p4"]
        print(f"  P4 worker RSS, {r['window_keys']:,} keys  {r['rss_mib']:>7,} MiB    <= 1 GiB: "
              f"{'met' if r['rss_mib'] <= TARGET_RSS_GIB * 1024 else 'MISSED'}")
    write(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
