"""Near-1 MiB and hostile bad inputs on the real broker and engine: each is dead-lettered with its
reason, no dead-letter or sink record exceeds the producer's limit (no poison pill: the worker
keeps running and counts the events after them exactly), and nothing stored holds prompt text."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from streams.harness.generate import generate
from streams.harness.stack import Stack
from tests.corpus import HOSTILE, PROMPT_MARKER, generated, load, raw_bytes

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
NEAR_1MIB = [
    ("GENERATE_TEXT_NEAR_1MIB", "text-near-1mib"),
    ("GENERATE_NOT_JSON_NEAR_1MIB", "not-json-near-1mib"),
    ("GENERATE_UNKNOWN_FIELD_NEAR_1MIB", "unknown-field-near-1mib"),
    ("GENERATE_NAN_NEAR_1MIB", "nan-near-1mib"),
    ("GENERATE_LONG_UNKNOWN_KEY", "unknown-key-near-1mib-long"),
]
BROKER_RECORD_LIMIT = 1_048_576  # the broker's default message.max.bytes is 1,048,588 per record batch
PRODUCER_LIMIT = 1_000_000  # the worker's producer (Faust producer_max_request_size)


@pytest.fixture
def stack(kafka_service, clickhouse_service, tmp_path):
    s = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    yield s
    s.stop()


def _dead_letters(stack: Stack, expected: int, timeout_s: float = 60) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        stack.env["MS_DEAD_LETTER_TOPIC"],
        bootstrap_servers=stack.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    values: list[bytes] = []
    try:
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
        while len(values) < expected and dt.datetime.now() < deadline:
            values.extend(m.value for m in consumer)
    finally:
        consumer.close()
    return values


def test_near_1mib_bad_events_are_dead_lettered_and_counting_goes_on(stack):
    good = [line for _, line in generate(1200, seed=23, now=NOW)]
    big = [generated(name, kind) for name, kind in NEAR_1MIB]
    assert all(900_000 < len(b) <= BROKER_RECORD_LIMIT - 1024 for b in big)
    hostile = [raw for raw in (raw_bytes(c) for c in load(HOSTILE)) if len(raw) <= BROKER_RECORD_LIMIT - 1024]
    lines = good[:400] + big + good[400:800] + hostile + big + good[800:]
    stack.produce(lines)
    exp = stack.expected(NOW + dt.timedelta(minutes=5))
    assert exp.rejected == 2 * len(big) + len(hostile) and exp.counted == len(good)

    port = stack.start_worker()
    worker = stack.workers[port]
    stack.wait_until_exact(exp, timeout=300)
    assert worker.poll() is None and stack.workers[port] is worker, "the worker exited (a poison pill?)"
    assert stack.health(port)["stats"]["counted"] == len(good)

    rejects = stack.rejects()
    assert len(rejects) == exp.rejected
    by_id = {}
    for r in rejects:
        assert r["reason"] and PROMPT_MARKER not in r["payload"] and len(r["payload"].encode()) <= 16 * 1024
        by_id.setdefault(r["event_id"], []).append(r)
    for raw, (_, kind) in zip(big, NEAR_1MIB):
        got = by_id.get(f"h-{kind}", [])  # each near-1 MiB input: twice here, once more in the corpus
        assert len(got) == lines.count(raw) >= 2, (kind, got)

    dead = _dead_letters(stack, exp.rejected)
    assert len(dead) == exp.rejected
    for value in dead:
        assert len(value) <= PRODUCER_LIMIT and PROMPT_MARKER.encode() not in value
        row = json.loads(value)
        assert set(row) == {
            "src_topic",
            "src_partition",
            "src_offset",
            "src_index",
            "event_id",
            "tenant_id",
            "reason",
            "payload",
        }
