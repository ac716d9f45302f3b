#!/usr/bin/env python3
"""P4b: the dedup window on disk. A rating worker holds N event ids (default 100M) in its
RocksDB state, as N counted events would leave it; then

  restart   process start -> the first new event counted, with the N ids on disk
  traffic   300k events (10% duplicates of held ids, found on disk) through the real worker:
            events/s and RSS (peak, end), beside the same traffic on the in-memory store with
            an empty state (the baseline, same run)
  per event the rater alone (no Kafka): microseconds per event with the on-disk index holding
            N ids vs the in-memory index, same events

    python ops/bench/bench_dedup.py                    # 100M ids (the fill takes minutes; kept)
    python ops/bench/bench_dedup.py --ids 10000000

The filled state is kept in --cache (reused by later runs with the same N). Results:
ops/bench/results/dedup.json."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1].parent
sys.path.insert(0, str(REPO / "ops" / "bench"))
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
from common import RESULTS, header, rss_kib, write  # noqa: E402

from streams.harness.stack import Broker, Stack  # noqa: E402
from streams.producer import partition_for_key  # noqa: E402

PARTITIONS = 4
PORT = 6391  # the bench worker's web port: its Faust data directory is named after it
APP = "meterstream"
TENANT = "bench"
FILL_OFFSET = 10**9  # held ids' positions: far from the traffic's offsets


def link_sst(src: str, dst: str) -> None:
    """Copy a RocksDB file: SST files are never written again, so a hard link does; the rest are copied."""
    if src.endswith(".sst"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def users_by_partition() -> dict[int, str]:
    """One user per partition whose canonical partition it is."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < PARTITIONS:
        u = f"u{i}"
        found.setdefault(partition_for_key(f"{TENANT}/{u}".encode(), range(PARTITIONS)), u)
        i += 1
    return found


def held_id(i: int) -> str:
    return f"held-{i:012d}"


def tables_dir(data_dir: Path) -> Path:
    return data_dir / "faust" / f"{APP}-{PORT}" / "v1" / "tables"


def fill(data_dir: Path, n: int, ts_ms: int) -> float:
    """Write n held ids (index keys and their entries) into the state of the 4 partitions, as
    Faust's rocksdb store and streams/rating/dedup.py leave them. Returns seconds."""
    import rocksdict

    from streams.rating.dedup import DEDUP_ENTRY_IDS, entry_key, index_writes
    from streams.rating.rocks import BoundedOptions

    t0 = time.monotonic()
    tables_dir(data_dir).mkdir(parents=True, exist_ok=True)
    opts = BoundedOptions(cache_bytes=64 << 20, write_buffer_bytes=256 << 20, use_rocksdict=True)
    for p in range(PARTITIONS):
        db = rocksdict.Rdict(str(tables_dir(data_dir) / f"state-{p}.db"), options=opts.as_options())
        start, count = p * (n // PARTITIONS), n // PARTITIONS + (n % PARTITIONS if p == PARTITIONS - 1 else 0)
        for lo in range(start, start + count, DEDUP_ENTRY_IDS):
            ids = [
                [TENANT, held_id(i), (FILL_OFFSET + i) << 13]
                for i in range(lo, min(lo + DEDUP_ENTRY_IDS, start + count))
            ]
            wb = rocksdict.WriteBatch(raw_mode=True)
            for k, v in index_writes(ids):
                wb.put(k, v)
            wb.put(orjson.dumps(entry_key(p, ts_ms, ids[0][2])), orjson.dumps([ts_ms, ids]))
            db.write(wb)
        db.flush()
        db.close()
        print(f"  filled partition {p}: {count:,} ids ({time.monotonic() - t0:.0f} s)", flush=True)
    return time.monotonic() - t0


def traffic(n: int, held: int, now: dt.datetime, seed: int = 5) -> list[bytes]:
    """n events of 4 users (one per partition); every 10th repeats a held id of its partition."""
    import random

    rnd = random.Random(seed)
    users = users_by_partition()
    per = held // PARTITIONS
    lines = []
    for i in range(n):
        p = i % PARTITIONS
        eid = held_id(p * per + rnd.randrange(per)) if i % 10 == 0 else f"new-{i:09d}"
        lines.append(
            orjson.dumps(
                {
                    "event_id": eid,
                    "ts": (now - dt.timedelta(seconds=rnd.randrange(3600))).isoformat(),
                    "tenant_id": TENANT,
                    "user_id": users[p],
                    "provider": "openai",
                    "model": "gpt-4o",
                    "usage": {"input_tokens": 100 + i % 900, "output_tokens": 50},
                }
            )
        )
    return lines


def run_worker(data_dir: Path, broker: Broker, lines: list[bytes], store: str) -> dict[str, Any]:
    """One rating worker on `data_dir`: time to the first count, then the traffic's rate and RSS."""
    stack = Stack(
        broker.bootstrap, data_dir, partitions=PARTITIONS, extra_env={"MS_STATE_STORE": store, "MS_APP_ID": APP}
    )
    stack.env["MS_DATA_DIR"] = str(data_dir)
    try:
        t0 = time.monotonic()
        stack.start_worker(PORT, role="rate")
        stack.produce(lines[:1])
        stack.wait_for_progress(PORT, 1, timeout=1800)
        first = time.monotonic() - t0
        pid = stack.workers[PORT].pid
        rest = lines[1:]
        t1 = time.monotonic()
        stack.produce(rest)
        samples = []
        while stack.handled(PORT) < len(lines):
            samples.append(rss_kib(pid)["VmRSS"])
            time.sleep(0.5)
        seconds = time.monotonic() - t1
        mem = rss_kib(pid)
        peak = mem["VmHWM"]
        stats = stack.health(PORT)["stats"]
        return {
            "store": store,
            "restart_to_first_count_s": round(first, 2),
            "events": len(lines),
            "events_per_s": round(len(rest) / seconds),
            "counted": stats.get("counted", 0),
            "duplicates": stats.get("duplicates", 0),
            "rss_mib_end": round(mem["VmRSS"] / 1024),
            "rss_mib_peak": round(peak / 1024),
            "rss_mib_samples_max": round(max(samples or [0]) / 1024),
        }
    finally:
        stack.stop()


def per_event(data_dir: Path, lines: list[bytes]) -> dict[str, float]:
    """The rater alone on the same events: the on-disk index (N ids held) vs an empty in-memory one."""
    import faust

    from pricing import load_catalog
    from streams.rating.agent import PartitionState, open_index
    from streams.rating.rater import Rater, Source

    cat = load_catalog()
    app = faust.App(APP, store="meterstream-rocksdb://", datadir=str(data_dir / "faust" / f"{APP}-{PORT}"))
    table = app.Table(
        "state", partitions=PARTITIONS, options={"cache_bytes": 128 << 20, "write_buffer_bytes": 64 << 20}
    )
    table.send_changelog = lambda *a, **k: None  # no broker here: the changelog is not what is measured
    users = users_by_partition()
    home = {u: p for p, u in users.items()}
    now_ms = int(time.time() * 1000)
    by_p: dict[int, list[tuple[Any, bytes]]] = {p: [] for p in range(PARTITIONS)}
    for i, line in enumerate(lines):
        p = home[orjson.loads(line)["user_id"]]
        by_p[p].append((Source("billing_events", p, 10_000_000 + i, now_ms), line))
    out = {}
    for name in ("memory", "disk"):
        rater = Rater(cat, partitions=PARTITIONS, index=open_index(table) if name == "disk" else None)
        states = {p: PartitionState(table, p) if name == "disk" else {} for p in range(PARTITIONS)}
        t0 = time.perf_counter()
        for p, items in by_p.items():
            for lo in range(0, len(items), 500):
                rater.process_batch(states[p], items[lo : lo + 500])
        out[f"{name}_us_per_event"] = round((time.perf_counter() - t0) / len(lines) * 1e6, 2)
    out["added_us_per_event"] = round(out["disk_us_per_event"] - out["memory_us_per_event"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=100_000_000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ms-p4b"))
    args = ap.parse_args()
    report = header(f"P4b: {args.ids:,} event ids held for dedup on disk")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    filled = args.cache / f"ids-{args.ids}"
    fill_s = None
    if not (filled / "done").exists():
        shutil.rmtree(filled, ignore_errors=True)
        fill_s = fill(filled, args.ids, int((now - dt.timedelta(hours=1)).timestamp() * 1000))
        (filled / "done").write_text(now.isoformat())
    held_bytes = sum(f.stat().st_size for f in filled.rglob("*") if f.is_file())
    print(f"  state on disk: {held_bytes / 2**30:.2f} GiB for {args.ids:,} ids")
    lines = traffic(args.events, args.ids, now)
    work = args.cache / "run"
    results: dict[str, Any] = {"ids_held": args.ids, "state_bytes_on_disk": held_bytes, "fill_s": fill_s}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ms-p4b-kafka-") as kd:
        for store in ("memory", "rocksdb"):
            shutil.rmtree(work, ignore_errors=True)
            if store == "rocksdb":
                shutil.copytree(filled, work, copy_function=link_sst)  # the fill stays reusable
            broker = Broker(Path(kd) / store).start()
            try:
                r = run_worker(work, broker, lines, store)
            finally:
                broker.remove()
            results[store] = r
            print(
                f"  {store:>8}: first count {r['restart_to_first_count_s']} s after start; {r['events_per_s']:,} "
                f"events/s; counted {r['counted']:,}, duplicates {r['duplicates']:,}; RSS end {r['rss_mib_end']} MiB, "
                f"peak {r['rss_mib_peak']} MiB",
                flush=True,
            )
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(filled, work, copy_function=link_sst)
    results["rater_alone"] = per_event(work, lines)
    shutil.rmtree(work, ignore_errors=True)
    print(f"  rater alone: {results['rater_alone']}")
    target = {"rss_mib_peak_max": 1024}
    results["target"] = target
    results["met"] = results["rocksdb"]["rss_mib_peak"] <= target["rss_mib_peak_max"]
    report["results"] = results
    write(RESULTS / "dedup.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
