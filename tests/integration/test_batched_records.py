"""Batched records (schemas/batch.py) on the real broker and engine: each line is counted,
deduplicated and dead-lettered on its own, exactly, also through SIGKILLs, and beside
single-event records on the same topic."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from pricing import load_catalog
from schemas.batch import BATCH_HEADER
from streams.harness.expected import as_rows, expected_totals, normalize, partition_for
from streams.harness.generate import generate
from streams.harness.stack import Stack
from streams.producer import event_key

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def send_batches(stack: Stack, lines: list[bytes], *, max_events: int, single_share: float = 0.0, seed: int = 1) -> int:
    """Lines to the partition of their key, in order, as batch records of up to `max_events`
    lines, a share of them as single-event records; unkeyed (bad) lines go to partition 0.
    Returns the number of records."""
    from kafka import KafkaProducer

    rnd = random.Random(seed)
    producer = KafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5, max_request_size=2 * 1024 * 1024
    )
    pending: dict[int, list[bytes]] = {}
    records = 0

    def flush(p: int) -> None:
        nonlocal records
        if pending.get(p):
            producer.send(stack.events_topic, value=b"\n".join(pending.pop(p)), partition=p, headers=[BATCH_HEADER])
            records += 1

    for line in lines:
        p = partition_for(event_key(line), stack.partitions) or 0
        if rnd.random() < single_share or b"\n" in line:  # a line with a newline cannot be in a batch
            flush(p)  # keep the partition's order
            producer.send(stack.events_topic, value=line, partition=p)
            records += 1
            continue
        pending.setdefault(p, []).append(line)
        if len(pending[p]) >= max_events:
            flush(p)
    for p in list(pending):
        flush(p)
    producer.flush()
    producer.close()
    stack.produced.extend(lines)
    return records


def check_exact(stack: Stack, exp) -> None:
    stack.wait_until_exact(exp, timeout=300)
    for by, window in (("user", "minute"), ("model", "day"), ("model", "total")):
        assert normalize(stack.report(by, window), by, window) == as_rows(exp, by, window)


def test_batched_and_single_records_mixed_are_exact(stack):
    lines = [line for _, line in generate(12000, seed=41, now=NOW, duplicate_rate=0.1, late=20, bad=40)]
    records = send_batches(stack, lines, max_events=300, single_share=0.05)
    assert records < len(lines) / 5
    exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
    assert exp.duplicates > 500 and exp.rejected >= 40
    stack.start_worker()
    check_exact(stack, exp)
    rejects = stack.rejects()
    assert len({(r["src_partition"], r["src_offset"], r["src_index"]) for r in rejects}) == exp.rejected
    assert any(r["src_index"] > 0 for r in rejects)  # lines inside batches, each kept on its own


def test_batched_records_through_sigkills_are_exact(stack):
    lines = [line for _, line in generate(30000, seed=42, now=NOW, duplicate_rate=0.1, bad=20)]
    send_batches(stack, lines, max_events=200)
    exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
    port = stack.start_worker()
    for _ in range(2):
        seen = stack.wait_for_progress(port, at_least=3000)
        stack.kill_worker(port)
        assert seen < len(lines)
        port = stack.start_worker(port)
    check_exact(stack, exp)
