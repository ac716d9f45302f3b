"""Any Kafka record is input, on the real broker and engine: tombstones, headers without a value,
header keys and values that are not UTF-8, our headers given twice, empty and near-1 MiB values,
written by an attacker between good events of several producers on every partition, all in one
take. Every good event is counted, every bad record is dead-lettered with its reason at its own
position, the worker never goes down or restarts, and the totals are exact."""

from __future__ import annotations

import datetime as dt

import pytest

from streams.harness.generate import generate
from streams.harness.hostile import Raw, hostile, write_raw
from streams.producer import event_key, partition_for_key

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PARTITIONS = 4


def harmless(line: bytes) -> list[Raw]:
    """A good event with headers that change nothing: counted once (the second is its duplicate)."""
    p = partition_for_key(event_key(line), range(PARTITIONS))
    return [
        Raw(p, line, [("x-trace", None), ("x-bin", b"\xff\xfe\x00")], key=event_key(line)),
        Raw(p, line, [("content-type", b"application/json")], key=event_key(line)),
    ]


def test_hostile_records_mixed_with_good_events_lose_nothing(stack):
    good = [line for _, line in generate(900, seed=41, now=NOW, tenants=4, users=30)]
    odd = good[850:]
    # three producers: batched records, single records, and the attacker's raw records between them
    stack.produce(good[:300])
    bad = [b for p in range(PARTITIONS) for b in hostile(p, good[p])]
    placed = write_raw(stack.bootstrap, stack.events_topic, [r for r, _ in bad[: len(bad) // 2]])
    stack.produce(good[300:600], batch=False)
    placed += write_raw(
        stack.bootstrap,
        stack.events_topic,
        [r for r, _ in bad[len(bad) // 2 :]] + [r for line in odd for r in harmless(line)],
    )
    stack.produced.extend(odd)
    stack.produce(good[600:850])
    exp = stack.expected(NOW + dt.timedelta(minutes=5))
    assert exp.rejected == 0 and exp.counted == 900
    exp.rejected = len(bad)

    port = stack.start_worker()
    worker = stack.workers[port]
    stack.wait_until_exact(exp, timeout=300)
    assert worker.poll() is None and stack.workers[port] is worker, "the worker exited"
    status = stack.health(port)
    assert status["recoveries"]["count"] == 0, status["recoveries"]  # never restarted, in place or not
    assert status["stats"]["counted"] == 900

    rejects = {(r["src_partition"], r["src_offset"]): r for r in stack.rejects()}
    assert len(rejects) == len(bad)
    for (p, offset), (_, words) in zip(placed, bad):
        row = rejects[(p, offset)]
        assert row["reason"] and words in row["reason"], (p, offset, row["reason"], words)
