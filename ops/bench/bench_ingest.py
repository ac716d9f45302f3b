#!/usr/bin/env python3
"""HTTP ingest benchmark: sustained events/s of `meterstream ingest` beside `meterstream produce`
of the same events file, both against the same real broker in the same run.

  ingest   `meterstream ingest` in a subprocess; the client (here, aiohttp, keep-alive) posts the
           file in JSON Lines batches of --batch events from --concurrency connections at once;
           each 202 comes only after Kafka acknowledged the batch. Timed from the first request
           after one warm-up batch (which makes the Kafka client) to the last answer.
  produce  `meterstream produce FILE` in a subprocess, timed as a whole; the same command on an
           empty file is timed too (start-up and connecting), and the sustained figure is the
           events over the difference.

Every event is checked into its topic afterwards (the same multiset of events in both). The
broker is the project's own (ops/kafka/kafka.sh, on free ports) unless --bootstrap is given.

    python ops/bench/bench_ingest.py [--events 200000] [--batch 500] [--concurrency 1,4] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import RESULTS, header, write  # noqa: E402

from schemas.batch import is_batch, split  # noqa: E402
from streams.harness.generate import generate  # noqa: E402
from streams.harness.stack import CLI, Broker, free_port  # noqa: E402

PARTITIONS = 4


def new_topic(bootstrap: str, name: str) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    admin.close()
    return name


def events_in(bootstrap: str, topic: str) -> tuple[Counter[bytes], int]:
    """(every event of the topic, batches opened; records)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=2 << 20)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    end = c.end_offsets(tps)
    events: Counter[bytes] = Counter()
    while any(c.position(tp) < end[tp] for tp in tps):
        for msgs in c.poll(timeout_ms=1000).values():
            for m in msgs:
                if is_batch(m.headers):
                    events.update(line for _, line in split(m.value))
                else:
                    events[m.value] += 1
    c.close()
    return events, sum(end.values())


def env_for(bootstrap: str, tmp: Path, topic: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
    env.update(
        MS_KAFKA_BOOTSTRAP=bootstrap,
        MS_DATA_DIR=str(tmp / "data"),
        MS_EVENTS_TOPIC=topic,
        MS_DEAD_LETTER_TOPIC=f"{topic}-dlq",
        MS_TOPIC_PARTITIONS=str(PARTITIONS),
    )
    return env


def produce(bootstrap: str, tmp: Path, path: Path, n: int) -> dict[str, Any]:
    topic = new_topic(bootstrap, f"bench-produce-{uuid.uuid4().hex[:8]}")
    env = env_for(bootstrap, tmp, topic)
    empty = tmp / "empty.jsonl"
    empty.write_bytes(b"")
    t = time.perf_counter()
    subprocess.run([*CLI, "produce", "--no-check", str(empty)], env=env, check=True, capture_output=True)
    startup = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([*CLI, "produce", "--no-check", str(path)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t
    events, records = events_in(bootstrap, topic)
    return {
        "topic": topic,
        "wall_s": round(wall, 3),
        "empty_file_s": round(startup, 3),
        "records": records,
        "events_per_s_whole_command": round(n / wall),
        "sustained_events_per_s": round(n / (wall - startup)),
        "_events": events,
    }


async def post_all(port: int, token: str, batches: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    """(seconds for all but the warm-up batch, each request's seconds, events accepted)."""
    import aiohttp
    import orjson

    url = f"http://127.0.0.1:{port}/v1/events"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/jsonl"}
    latencies: list[float] = []
    accepted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def post(body: bytes) -> None:
            nonlocal accepted
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                doc = orjson.loads(await resp.read())
                if resp.status != 202 or doc["rejected"]:
                    raise SystemExit(f"bench_ingest: {resp.status} {str(doc)[:500]}")
            latencies.append(time.perf_counter() - t)
            accepted += doc["accepted"]

        await post(batches[0])  # warm-up: the server makes its Kafka client
        queue = iter(batches[1:])

        async def client() -> None:
            for body in queue:
                await post(body)

        t = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - t, latencies[1:], accepted


def ingest(bootstrap: str, tmp: Path, lines: list[bytes], batch: int, concurrency: int) -> dict[str, Any]:
    topic = new_topic(bootstrap, f"bench-ingest-{uuid.uuid4().hex[:8]}")
    new_topic(bootstrap, f"{topic}-dlq")
    env = env_for(bootstrap, tmp, topic)
    tokens = tmp / f"tokens-{topic}"
    token = subprocess.run(
        [*CLI, "ingest", "token", "add", "bench", "--tokens-file", str(tokens)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = free_port()
    log = open(tmp / f"{topic}.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [*CLI, "ingest", "--port", str(port), "--tokens-file", str(tokens), "--loglevel", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"bench_ingest: the ingest did not start ({tmp / f'{topic}.log'})") from None
                time.sleep(0.2)
        batches = [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]
        seconds, latencies, accepted = asyncio.run(post_all(port, token, batches, concurrency))
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    if accepted != len(lines):
        raise SystemExit(f"bench_ingest: {accepted} of {len(lines)} events accepted")
    events, records = events_in(bootstrap, topic)
    timed = len(lines) - len(lines[:batch])
    q = statistics.quantiles(latencies, n=100)
    return {
        "topic": topic,
        "concurrency": concurrency,
        "batch_events": batch,
        "requests": len(batches),
        "timed_s": round(seconds, 3),
        "records": records,
        "sustained_events_per_s": round(timed / seconds),
        "requests_per_s": round((len(batches) - 1) / seconds, 1),
        "request_p50_ms": round(q[49] * 1000, 1),
        "request_p99_ms": round(q[98] * 1000, 1),
        "_events": events,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500, help="events per request")
    ap.add_argument("--concurrency", default="1,4", help="concurrent connections, one run each")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--bootstrap", default=None, help="an existing broker (default: start our own)")
    ap.add_argument("--json", type=Path, default=RESULTS / "ingest.json")
    args = ap.parse_args(argv)
    report = header("ingest: HTTP ingest (meterstream ingest) beside meterstream produce, same events, same broker")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lines = [line for _, line in generate(args.events, seed=args.seed, now=now, users=2000)]
    with tempfile.TemporaryDirectory(prefix="ms-bench-ingest-") as d:
        tmp = Path(d)
        path = tmp / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        print(f"  events  : {len(lines):,} ({path.stat().st_size / 2**20:.1f} MiB of JSON Lines)")
        broker = None if args.bootstrap else Broker(tmp / "kafka").start()
        bootstrap = args.bootstrap or broker.bootstrap
        try:
            want = Counter(lines)
            results: dict[str, Any] = {"produce": produce(bootstrap, tmp, path, len(lines))}
            print(
                f"  produce : {results['produce']['sustained_events_per_s']:,} events/s sustained "
                f"({results['produce']['events_per_s_whole_command']:,}/s for the whole command, "
                f"{results['produce']['empty_file_s']} s on an empty file)"
            )
            results["ingest"] = []
            for c in (int(x) for x in args.concurrency.split(",")):
                r = ingest(bootstrap, tmp, lines, args.batch, c)
                results["ingest"].append(r)
                print(
                    f"  ingest  : {r['sustained_events_per_s']:,} events/s with {c} connection(s), "
                    f"{r['requests_per_s']} requests/s of {args.batch}; p50 {r['request_p50_ms']} ms, "
                    f"p99 {r['request_p99_ms']} ms"
                )
            for r in [results["produce"], *results["ingest"]]:
                if r.pop("_events") != want:
                    raise SystemExit(f"bench_ingest: {r['topic']} does not hold exactly the events")
        finally:
            if broker:
                broker.remove()
    best = max(results["ingest"], key=lambda r: r["sustained_events_per_s"])
    results["best_ingest_share_of_produce"] = round(
        best["sustained_events_per_s"] / results["produce"]["sustained_events_per_s"], 3
    )
    report.update(
        {
            "params": {k: v for k, v in vars(args).items() if k != "json"},
            "results": results,
            "client": "aiohttp ClientSession in the benchmark process, keep-alive, one connection per "
            "concurrent client, JSON Lines bodies",
            "note": "server, client, broker and `meterstream produce` share this machine's cores; "
            "other work may have run beside them",
        }
    )
    print(f"  best ingest / produce: {results['best_ingest_share_of_produce']:.1%}")
    write(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
