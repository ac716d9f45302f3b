"""The alert log: the alerts role's outbox, a compacted topic keyed by alert key.

Each alert's row (the `alerts` table's columns) is written here as its delivery progresses:
version 1 when it fires (before anything is sent), 2 once it is in the `spend_alerts` topic, 3
once every webhook has an outcome. A restart reads the log to the end: every key in it has
fired (never again), and a row whose latest version is not done is delivered again. The sink
copies the log into the `alerts` table, for analysts.

Per-webhook delivery state is the row's `webhook_status`: `label: outcome` per webhook, joined by
`; ` (e.g. `hooks.slack.com#3f2a9c1b: failed after 5 attempts: HTTP 503`). A row with a failed
webhook is delivered again to that webhook, with a higher version (see streams/alerts/delivery.py).

Resend requests (`meterstream alerts resend`) are records of this log too, under the Kafka key
`resend|<alert key>` (so no write of the alerts role can hide one), whose value is the alert's row
with `webhook_status` = `resend requested: every webhook` or `resend requested: failed webhooks`
and a higher version: the sink copies it into the table like any row (the table shows the request
until the result replaces it). Only the alerts role writes the alert rows; the CLI writes requests."""

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


REQUEST_PREFIX = "resend|"
RESEND_ALL = "resend requested: every webhook"
RESEND_FAILED = "resend requested: failed webhooks"


def request_key(alert_key: str) -> str:
    """The Kafka key of a resend request for an alert."""
    return REQUEST_PREFIX + alert_key


def webhook_outcomes(status: str) -> dict[str, str]:
    """`webhook_status` as {label: outcome} ('' and 'pending' and requests: none yet)."""
    out: dict[str, str] = {}
    for part in status.split("; "):
        label, sep, outcome = part.partition(": ")
        if sep and label and not label.startswith("resend requested"):
            out[label] = outcome
    return out


def join_outcomes(outcomes: dict[str, str]) -> str:
    return "; ".join(f"{label}: {outcome}" for label, outcome in outcomes.items())


def failed_labels(row: dict[str, Any]) -> list[str]:
    """The webhooks (by label) whose delivery of this alert failed."""
    return [label for label, outcome in webhook_outcomes(row["webhook_status"]).items() if outcome.startswith("failed")]


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
    out: list[tuple[bytes, bytes]] = []
    try:
        await consumer.start()
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

    async def request_resend(self, row: dict[str, Any], *, only_failed: bool) -> dict[str, Any]:
        """Ask the alerts role to deliver this alert (its latest row) again: to every webhook, or
        to those that failed. Returns the request written."""
        request = {
            **row,
            "webhook_status": RESEND_FAILED if only_failed else RESEND_ALL,
            "version": int(row["version"]) + 1,
        }
        await self.producer.send_and_wait(self.topic, encode(request), key=request_key(row["alert_key"]).encode())
        return request

    async def latest(self) -> dict[str, dict[str, Any]]:
        """Each alert's latest row (highest version), read to the end of the log (resend
        requests are not alert rows: the alerts role consumes them, streams/alerts/role.py)."""
        rows: dict[str, dict[str, Any]] = {}
        for key, value in await read_topic(self.bootstrap, self.topic, self.security):
            if value is None or key.decode().startswith(REQUEST_PREFIX):
                continue
            row = decode(value)
            old = rows.get(key.decode())
            if old is None or row["version"] >= old["version"]:
                rows[key.decode()] = row
        return rows
