"""Delivering alerts: the alert log is the outbox (streams/alerts/outbox.py); then the
`spend_alerts` topic (once per idempotency key) and webhooks (Slack-compatible JSON, signed, retried with backoff, failures
recorded). Webhooks run in background tasks: a slow or dead endpoint never holds up the pipeline.

Webhook URLs are secrets: they are never stored or logged; a webhook is named by its label
(host and a short hash, streams/alerts/webhooks.py). Redirects are not followed (a 3xx would re-send the
body elsewhere): a 3xx answer is a failed delivery.

Delivering again (issue 21). A webhook whose delivery failed (every attempt used) is not given
up: the alert's row keeps the outcome per webhook (`label: outcome; ...`), and `redeliver` posts
the alert again to the webhooks that failed (or, on a resend of one alert, to every webhook), then
writes the row with the merged outcomes and a higher version. The body is the one already sent:
the bytes the `spend_alerts` topic holds under the alert's key (written before any webhook, so an
alert with a failed webhook always has one), byte for byte, with the same `Idempotency-Key`, signed
afresh (a new timestamp). Receivers drop the repeats. When the alerts role does it is
streams/alerts/role.py: on start, every MS_ALERT_WEBHOOK_RETRY_S, and on a resend request."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from pydantic import SecretStr

from streams.alerts.budgets import Budget
from streams.alerts.evaluator import Alert
from streams.alerts.outbox import join_outcomes, read_topic, webhook_outcomes
from streams.alerts.webhooks import WebhookConfigError, WebhookTarget, signed_headers
from streams.kafka_security import PLAINTEXT, KafkaSecurity
from streams.metrics import AlertMetrics

log = logging.getLogger("meterstream.alerts")
UTC = dt.UTC


def _describe(exc: BaseException) -> str:
    """A failed attempt in words that cannot hold the URL (aiohttp's messages may quote it)."""
    name = type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError):
        return f"{name} (no answer within the timeout)"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{name}: {os_error.strerror}"
    return name


class Deliverer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        webhooks: Sequence[WebhookTarget],
        write_row: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        secret: SecretStr | str | None = None,
        attempts: int = 5,
        timeout_s: float = 5.0,
        first_backoff_s: float = 0.5,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.webhooks = list(webhooks)
        for w in self.webhooks:
            if not isinstance(w, WebhookTarget):
                raise TypeError("webhooks must be WebhookTarget (checked URLs), not plain strings")
        if isinstance(secret, str):
            secret = SecretStr(secret)
        if self.webhooks and not (secret and secret.get_secret_value()):
            raise WebhookConfigError("webhooks need a signing secret (MS_ALERT_WEBHOOK_SECRET)")
        self.secret = secret
        self.write_row = write_row
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.first_backoff_s = first_backoff_s
        self.producer: Any = None
        self.tasks: set[asyncio.Task] = set()
        self.versions: dict[str, int] = {}  # per alert key, the highest row version seen or written
        self.inflight: set[str] = set()  # alert keys whose webhooks are being posted now
        self.metrics = AlertMetrics()

    def seen(self, key: str, version: int) -> None:
        """A row version of this alert exists in the log: later writes go above it."""
        self.versions[key] = max(self.versions.get(key, 0), int(version))

    async def _write(self, row: dict[str, Any]) -> dict[str, Any]:
        """Write a row of the alert, with a version above every one seen for it."""
        key = row["alert_key"]
        row = {**row, "version": max(int(row["version"]), self.versions.get(key, 0) + 1)}
        self.seen(key, row["version"])
        await self.write_row(row)
        return row

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.security.aiokafka()
        )
        await self.producer.start()

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        if self.producer is not None:
            await self.producer.stop()

    async def keys_in_topic(self) -> set[str]:
        """The idempotency keys the spend_alerts topic already holds."""
        return set(await self.bodies_in_topic())

    async def bodies_in_topic(self) -> dict[str, bytes]:
        """Per idempotency key, the body the spend_alerts topic holds (the one webhooks got)."""
        return {k.decode(): v for k, v in await read_topic(self.bootstrap, self.topic, self.security) if v}

    async def deliver(self, alert: Alert, *, in_topic: bool = False, body: bytes | None = None) -> None:
        """Kafka now (awaited: it is fast and must precede the offset commit), webhooks later.
        `body`: the one the topic holds already (in_topic), sent to webhooks as it is."""
        if body is None:
            body = orjson.dumps(alert.payload())
        if not in_topic:
            await self.producer.send_and_wait(self.topic, body, key=alert.key.encode())
            self.metrics.published.inc()
        status = "pending" if self.webhooks else "none"
        await self._write(alert.row(kafka_delivered=True, webhook_status=status, version=2))
        if self.webhooks:
            self.background(self._webhooks(alert, body), alert.key)

    def background(self, work: Awaitable[Any], key: str | None = None) -> asyncio.Task:
        """Run `work` in a task the deliverer cancels on stop (`key`: in flight until it ends)."""

        async def run() -> Any:
            try:
                return await work
            finally:
                if key is not None:
                    self.inflight.discard(key)

        if key is not None:
            self.inflight.add(key)
        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _webhooks(self, alert: Alert, body: bytes) -> None:
        try:
            await self.send_webhooks(alert, body=body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the outbox row stays 'pending': redelivered on restart
            log.warning("webhook status of alert %s not recorded (%s)", alert.key, _describe(exc))

    async def send_webhooks(
        self, alert: Alert, payload: dict[str, Any] | None = None, *, body: bytes | None = None
    ) -> str:
        """POST the alert to every webhook (signed, retried, no redirects) and record the
        outcome per webhook label in the alert's row; return that status."""
        if body is None:
            body = orjson.dumps(alert.payload() if payload is None else payload)
        status = join_outcomes(await self._post_all(self.webhooks, alert.key, body))
        await self._write(alert.row(kafka_delivered=True, webhook_status=status, version=3))
        return status

    async def redeliver(self, row: dict[str, Any], body: bytes, *, only_failed: bool) -> str:
        """Post an alert already sent (its latest row, and the body it was sent with) again: to
        the webhooks whose delivery failed, or to every webhook; write the row with the outcomes
        merged (a webhook not posted keeps its outcome) and return that status."""
        key = row["alert_key"]
        before = webhook_outcomes(row["webhook_status"])
        targets = [t for t in self.webhooks if not only_failed or before.get(t.label, "").startswith("failed")]
        after = {**before, **await self._post_all(targets, key, body)}
        status = join_outcomes(after) or ("none" if not self.webhooks else row["webhook_status"])
        new = {**row, "kafka_delivered": True, "webhook_status": status, "version": int(row["version"]) + 1}
        await self._write(new)
        log.info("alert %s delivered again to %d webhook(s): %s", key, len(targets), status)
        return status

    async def _post_all(self, targets: Sequence[WebhookTarget], key: str, body: bytes) -> dict[str, str]:
        import aiohttp

        outcomes: dict[str, str] = {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for target in targets:
                outcomes[target.label] = await self._post(session, target, key, body)
        return outcomes

    async def _post(self, session: Any, target: WebhookTarget, key: str, body: bytes) -> str:
        import aiohttp

        assert self.secret is not None  # checked in __init__
        delay, last = self.first_backoff_s, ""
        for attempt in range(1, self.attempts + 1):
            headers = {"Content-Type": "application/json", **signed_headers(self.secret, body, key)}
            started = time.monotonic()
            try:
                async with session.post(
                    target.url.get_secret_value(), data=body, headers=headers, allow_redirects=False
                ) as resp:
                    self.metrics.webhook_seconds.observe(time.monotonic() - started)
                    if 200 <= resp.status < 300:
                        self.metrics.webhooks.labels("delivered").inc()
                        return f"delivered after {attempt} attempt(s)"
                    if 300 <= resp.status < 400:  # never re-POST the body to where it points
                        last = f"failed: HTTP {resp.status} redirect, not followed"
                        log.warning("webhook %s for alert %s: %s", target.label, key, last)
                        self.metrics.webhooks.labels("failed").inc()
                        return last
                    last = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                self.metrics.webhook_seconds.observe(time.monotonic() - started)
                last = _describe(exc)
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        last = f"failed after {self.attempts} attempts: {last}"
        self.metrics.webhooks.labels("failed").inc()
        log.warning("webhook %s for alert %s: %s", target.label, key, last)
        return last


def alert_from_row(row: dict[str, Any], budget: Budget | None) -> Alert | None:
    """Rebuild an undelivered alert from its outbox row (its budget must still exist)."""
    if budget is None:
        return None
    event = {"event_id": row["event_id"]} if row.get("event_id") else None
    created = row["created_at"]
    if isinstance(created, str):
        created = dt.datetime.fromisoformat(created)
    return Alert(
        row["alert_key"],
        budget,
        row["period"],
        Decimal(str(row["threshold"])).normalize(),
        Decimal(str(row["spend"])),
        event,
        created,
    )
