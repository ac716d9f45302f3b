"""The alert log: the alerts role's outbox, a compacted topic keyed by alert key.

Each alert's row (the `alerts` table's columns) is written here as its delivery progresses:
version 1 when it fires (before anything is sent), 2 once it is in the `spend_alerts` topic, 3
once every webhook has an outcome. A restart reads the log to the end: every key in it has
fired (never again), and a row whose latest version is not done is delivered again. The sink
copies the log into the `alerts` table, for analysts; only the alerts role writes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

from streams.kafka_security import PLAINTEXT, KafkaSecurity

UTC = dt.UTC


def encode(row: dict[str, Any]) -> bytes:
    """A row as the log holds it: money as decimal text, times as epoch milliseconds."""

    def default(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, dt.datetime):
            return int(v.timestamp() * 1000)
        raise TypeError(f"not JSON: {type(v).__name__}")

    return orjson.dumps(row, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def decode(value: bytes) -> dict[str, Any]:
    """A logged row, with its times as datetimes again (money stays decimal text)."""
    row = orjson.loads(value)
    row["created_at"] = dt.datetime.fromtimestamp(row["created_at"] / 1000, UTC)
    return row


def pending(row: dict[str, Any]) -> bool:
    """Delivery is not finished: not yet in the topic, or webhooks not yet answered."""
    return not row["kafka_delivered"] or row["webhook_status"] in ("", "pending")


async def behind(consumer: Any, tps: list[Any], ends: dict[Any, int]) -> bool:
    """True while the consumer has not reached the end offsets it was given."""
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def read_topic(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a topic from its beginning to the end it had when asked."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security.aiokafka())
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh metadata
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while await behind(consumer, tps, ends):
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend((m.key, m.value) for m in msgs if m.key)
    finally:
        await consumer.stop()
    return out


class AlertLog:
    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.topic, self.security = bootstrap, topic, security
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.security.aiokafka()
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def write(self, row: dict[str, Any]) -> None:
        """One row, acknowledged by the broker before this returns."""
        await self.producer.send_and_wait(self.topic, encode(row), key=row["alert_key"].encode())

    async def latest(self) -> dict[str, dict[str, Any]]:
        """Each alert's latest row (highest version), read to the end of the log."""
        rows: dict[str, dict[str, Any]] = {}
        for key, value in await read_topic(self.bootstrap, self.topic, self.security):
            if value is None:
                continue
            row = decode(value)
            old = rows.get(key.decode())
            if old is None or row["version"] >= old["version"]:
                rows[key.decode()] = row
        return rows
