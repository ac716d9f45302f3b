"""The dev stack proves itself: a real Kafka broker and a real ClickHouse engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from streams.storage import StoreError
from streams.storage.migrations import migrate

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


def test_kafka_python_round_trip(kafka_service, topic):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_service.bootstrap, acks="all", enable_idempotence=True)
    sent = {f"k{i % 5}".encode(): [] for i in range(5)}
    for i in range(50):
        key = f"k{i % 5}".encode()
        producer.send(topic, key=key, value=str(i).encode())
        sent[key].append(str(i).encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_service.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        group_id="g-" + uuid.uuid4().hex,
    )
    got: dict[bytes, list[bytes]] = {k: [] for k in sent}
    for msg in consumer:
        got[msg.key].append(msg.value)
        if sum(map(len, got.values())) == 50:
            break
    consumer.close()
    assert got == sent  # every message, each key's in order


def test_aiokafka_round_trip(kafka_service, topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_service.bootstrap, enable_idempotence=True)
        await producer.start()
        for i in range(20):
            await producer.send_and_wait(topic, str(i).encode(), key=b"same-key")
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_service.bootstrap,
            auto_offset_reset="earliest",
            group_id="g-" + uuid.uuid4().hex,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            while len(values) < 20:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for msgs in batch.values():
                    values.extend(m.value for m in msgs)
        finally:
            await consumer.stop()
        return values

    assert asyncio.run(run()) == [str(i).encode() for i in range(20)]


def test_faust_agent_updates_a_table(kafka_service, topic, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    out_topic = topic + "-out"
    admin = KafkaAdminClient(bootstrap_servers=kafka_service.bootstrap)
    admin.create_topics([NewTopic(out_topic, 3, 1)])
    admin.close()
    words = ["a", "b", "a", "c", "a", "b"]
    producer = KafkaProducer(bootstrap_servers=kafka_service.bootstrap)
    for w in words:
        producer.send(topic, key=w.encode(), value=w.encode())
    producer.flush()
    producer.close()

    env = dict(
        os.environ,
        FC_APP_ID="fc-" + uuid.uuid4().hex[:8],
        FC_BOOTSTRAP=kafka_service.bootstrap,
        FC_IN=topic,
        FC_OUT=out_topic,
        PYTHONPATH=str(HERE),
    )
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", "faust_counter_app", "worker", "-l", "info", "--without-web"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        consumer = KafkaConsumer(
            out_topic,
            bootstrap_servers=kafka_service.bootstrap,
            auto_offset_reset="earliest",
            group_id="g-" + uuid.uuid4().hex,
            consumer_timeout_ms=1000,
        )
        last: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while sum(last.values()) < len(words) and time.monotonic() < deadline:
            for msg in consumer:
                last[msg.key.decode()] = int(msg.value)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        consumer.close()
    finally:
        worker.terminate()
        worker.wait(60)
    assert last == {"a": 3, "b": 2, "c": 1}, (tmp_path / "worker.log").read_text()[-3000:]


def test_migrations_apply_once(store, ch_settings):
    from streams.storage.migrations import discover

    on_disk = [m.version for m in discover(ch_settings.migrations_dir)]
    first = migrate(store, ch_settings.migrations_dir)
    assert [m.version for m in first] == on_disk and on_disk[:2] == [1, 2]
    assert migrate(store, ch_settings.migrations_dir) == []
    tables = {
        r["name"]
        for r in store.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": ch_settings.clickhouse_database}
        )
    }
    assert {"ledger", "rejected_events", "schema_migrations"} <= tables
    rows = store.query("SELECT count() AS n FROM schema_migrations")
    assert rows == [{"n": len(on_disk)}]


def test_changed_migration_is_refused(store, tmp_path):
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = Memory;\n")
    migrate(store, tmp_path)
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE IF NOT EXISTS x (a UInt16) ENGINE = Memory;\n")
    with pytest.raises(StoreError, match="changed after it was applied"):
        migrate(store, tmp_path)


def test_decimal_38_12_round_trip_is_exact(store):
    store.command("CREATE TABLE money (k UInt32, v Decimal(38, 12)) ENGINE = MergeTree ORDER BY k")
    values = [
        Decimal("99999999999999999999999999.999999999999"),  # the largest Decimal(38, 12)
        Decimal("-0.000000000001"),
        Decimal("0.1") + Decimal("0.2"),
        Decimal("27379.20"),
    ]
    store.insert("money", [{"k": i, "v": v} for i, v in enumerate(values)])
    got = [r["v"] for r in store.query("SELECT v FROM money ORDER BY k")]
    assert got == values and all(isinstance(v, Decimal) for v in got)
    total = store.query("SELECT sum(v) AS s FROM money WHERE k > 0")[0]["s"]
    assert total == Decimal("27379.499999999999")


def test_values_are_bound_not_pasted(store):
    hostile = "x'); DROP TABLE money; --"
    rows = store.query("SELECT {s:String} AS s, {d:Decimal(38, 12)} AS d", {"s": hostile, "d": "1.000000000001"})
    assert rows == [{"s": hostile, "d": Decimal("1.000000000001")}]


def test_insert_dedup_token_drops_a_retried_block(store):
    store.command(
        "CREATE TABLE dd (k UInt32) ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 100"
    )
    store.insert("dd", [{"k": 1}, {"k": 2}], dedup_token="p0-o0-o1")
    store.insert("dd", [{"k": 1}, {"k": 2}], dedup_token="p0-o0-o1")  # a retry
    store.insert("dd", [{"k": 1}, {"k": 2}], dedup_token="p0-o2-o3")  # new data, same rows
    assert store.query("SELECT count() AS n FROM dd") == [{"n": 4}]


def test_a_failed_query_leaves_nothing_for_the_next(store):
    """chDB hands the output a failed query wrote to the next query; the store drains it."""
    with pytest.raises(StoreError, match="Limit for result exceeded"):
        store.query_readonly("SELECT number FROM system.numbers LIMIT 1000000", max_rows=1000, timeout_s=10)
    assert store.query("SELECT 1 AS x") == [{"x": 1}]
    with pytest.raises(StoreError, match="throwIf"):
        store.query("SELECT throwIf(number = 50000) AS t FROM numbers(100000) SETTINGS max_block_size = 1000")
    assert store.query("SELECT 2 AS x") == [{"x": 2}]
