"""The alerts role: budgets in, crossings out, beside the sink and never inside it.

It reads the sink topic (the priced events, in position order per source partition) as its own
consumer group, with every partition owned by one process (the `OneOwner` assignor: a second
alerts process waits as a standby), and the budgets topic from its start. For each batch it
evaluates the ledger rows (streams/alerts/evaluator.py), writes each new alert to the alert log
(the outbox), delivers it (streams/alerts/delivery.py) and only then commits the batch. A crash
re-reads from the commit: what fired is in the log and fires nothing again; what the log shows
undelivered is delivered on start.

Catch-up (issue 21). The role keeps each alert's latest row (read from the log on start, then
its own writes). On start, and every `webhook_retry_s` after (MS_ALERT_WEBHOOK_RETRY_S), every
alert with a webhook whose delivery failed is posted again to that webhook, with the body the
`spend_alerts` topic holds for it and the same Idempotency-Key (streams/alerts/delivery.py), in
background tasks. `meterstream alerts resend` writes resend requests to the alert log (key
`resend|<alert key>`, streams/alerts/outbox.py); the active role tails the log as the consumer
group `<group>-resend`, acts on each request (every webhook, or the failed ones) and commits the
request's offset only once the new outcome is in the log. A role that dies first re-reads the
request from the commit on start: each request is acted on at least once, and receivers drop
the repeats by the Idempotency-Key."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from typing import Any

import orjson

from schemas.records import LedgerRow, SinkRecord
from streams.alerts.budgets import Budget
from streams.alerts.delivery import Deliverer, alert_from_row
from streams.alerts.evaluator import Alert, AlertEvaluator, LedgerSpend
from streams.alerts.outbox import REQUEST_PREFIX, RESEND_FAILED, AlertLog, behind, decode, failed_labels, pending
from streams.alerts.spend import RunRead, SinkProgress, from_rows, params
from streams.consume import CommitAfterWrite
from streams.kafka_security import KafkaSecurity

log = logging.getLogger("meterstream.alerts")
UTC = dt.UTC


def after_outbox(exit_now: bool) -> None:
    if exit_now:  # fault injection (MS_FAULT_EXIT_AFTER_ALERT_OUTBOX): die before delivery
        os._exit(137)


class AlertsConsumer:
    def __init__(
        self,
        bootstrap: str,
        sink_topic: str,
        group_id: str,
        sink_group_id: str,
        *,
        budgets_topic: str,
        alerts_topic: str,
        alert_log_topic: str,
        run_read: RunRead,
        webhooks: list[Any],
        webhook_secret: Any,
        webhook_attempts: int,
        webhook_timeout_s: float,
        max_records: int,
        security: KafkaSecurity,
        fault_exit_after_alert_outbox: bool,
        webhook_retry_s: float,
    ) -> None:
        """Every value from the settings (streams/app.py): their defaults are there, once."""
        self.fault_exit_after_alert_outbox = fault_exit_after_alert_outbox
        self.bootstrap, self.security = bootstrap, security
        self.sink_topic, self.group_id = sink_topic, group_id
        self.budgets_topic, self.max_records = budgets_topic, max_records
        self.run_read = run_read
        self.progress = SinkProgress(bootstrap, sink_group_id, security)
        self.log = AlertLog(bootstrap, alert_log_topic, security)
        self.deliverer = Deliverer(
            bootstrap,
            alerts_topic,
            webhooks or [],
            self._logged,
            secret=webhook_secret,
            attempts=webhook_attempts,
            timeout_s=webhook_timeout_s,
            security=security,
        )
        self.metrics = self.deliverer.metrics  # the role's and its deliverer's (streams/metrics.py)
        self.evaluator: AlertEvaluator | None = None
        self.budgets: dict[str, Budget] = {}
        self.done: dict[Any, int] = {}  # sink-topic offsets evaluated (the next to read)
        self.alerts_sent = 0
        self.consumer: CommitAfterWrite | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.rows: dict[str, dict[str, Any]] = {}  # each alert's latest row in the log
        self.webhook_retry_s = webhook_retry_s
        self.resend_group_id = f"{group_id}-resend"
        self.requests: Any = None  # the alert log's resend requests, tailed by the active role
        self._next_retry = 0.0
        self._retrying: asyncio.Task | None = None
        self._resending: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    # -- spend lookups: called by the evaluator, in a worker thread -------------------------
    def _lookup(self, b: Budget, start: dt.datetime, end: dt.datetime) -> LedgerSpend:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self._lookup_async(b, start, end), self.loop).result()

    async def _lookup_async(self, b: Budget, start: dt.datetime, end: dt.datetime) -> LedgerSpend:
        await self.progress.reach(dict(self.done))
        return from_rows(await self.run_read("ledger_spend", params(b, start, end)))

    # -- state -----------------------------------------------------------------------------
    async def _ready(self, consumer: CommitAfterWrite) -> None:
        """Rebuild the evaluator: fired keys from the log, budgets from their topic, then deliver
        what the log holds undelivered and what the budgets fire now."""
        for tp in consumer.assignment():
            self.done[tp] = await consumer.committed(tp)
        rows = await self.log.latest()
        self.rows = dict(rows)
        for key, row in rows.items():
            self.deliverer.seen(key, row["version"])
        evaluator = AlertEvaluator(self._lookup, set(rows))
        await self._drain_budgets()
        now = dt.datetime.now(UTC)
        new: list[Alert] = []
        for b in self.budgets.values():
            new.extend(await asyncio.to_thread(evaluator.set_budget, b, now))
        todo = [r for r in rows.values() if pending(r)]
        bodies = await self.deliverer.bodies_in_topic() if todo else {}
        for row in todo:
            body = bodies.get(row["alert_key"])
            if body is not None and self.deliverer.webhooks:  # sent to the topic: the same body again
                self.deliverer.background(self.deliverer.redeliver(row, body, only_failed=False), row["alert_key"])
                continue
            alert = alert_from_row(row, self.budgets.get(row["budget_id"]))
            if alert is not None:
                await self.deliverer.deliver(alert, in_topic=body is not None or bool(row["kafka_delivered"]))
        await self._send(new)
        self.evaluator = evaluator
        self._next_retry = 0.0  # failed webhooks: delivered again now, then every webhook_retry_s
        await self._tail_requests()

    async def _logged(self, row: dict[str, Any]) -> None:
        """Write a row to the alert log and remember it as the alert's latest."""
        await self.log.write(row)
        self.rows[row["alert_key"]] = row

    # -- catch-up: failed webhooks again, resend requests --------------------------------------
    def _catch_up(self) -> None:
        loop = asyncio.get_running_loop()
        if self._retrying is None and self.deliverer.webhooks and loop.time() >= self._next_retry:
            self._retrying = self.deliverer.background(self._retry_failed())
        if self._resending is None and self.requests is not None:
            self._resending = self.deliverer.background(self._resend_requested())

    def retryable(self) -> list[dict[str, Any]]:
        """Latest rows with a failed delivery to a webhook configured now, not being posted."""
        labels = {t.label for t in self.deliverer.webhooks}
        return [
            r
            for k, r in self.rows.items()
            if k not in self.deliverer.inflight and labels.intersection(failed_labels(r))
        ]

    async def _retry_failed(self) -> None:
        try:
            todo = self.retryable()
            if todo:
                bodies = await self.deliverer.bodies_in_topic()
                await self._redeliver([(r, bodies.get(r["alert_key"]), True) for r in todo])
        except Exception as exc:  # noqa: BLE001 - the rows stay failed: tried again at the next period
            log.warning("retry of failed webhooks deferred (%s: %s)", type(exc).__name__, exc)
        finally:
            self._next_retry = asyncio.get_running_loop().time() + self.webhook_retry_s
            self._retrying = None

    async def _redeliver(self, work: list[tuple[dict[str, Any], bytes | None, bool]]) -> None:
        gate = asyncio.Semaphore(8)

        async def one(row: dict[str, Any], body: bytes | None, only_failed: bool) -> None:
            key = row["alert_key"]
            if body is None:  # not in the topic (compacted away?): rebuilt from the row and budget
                alert = alert_from_row(row, self.budgets.get(row["budget_id"]))
                if alert is None:
                    log.warning("alert %s not delivered again: no body in the topic, no budget", key)
                    return
                body = orjson.dumps(alert.payload())
            async with gate:
                while key in self.deliverer.inflight:  # its first delivery is still being posted
                    await asyncio.sleep(0.2)
                self.deliverer.inflight.add(key)
                try:
                    await self.deliverer.redeliver(self.rows.get(key, row), body, only_failed=only_failed)
                finally:
                    self.deliverer.inflight.discard(key)

        await asyncio.gather(*(one(*w) for w in work))

    async def _tail_requests(self) -> None:
        """(Re)position the resend-request tail at its group's commit (the log's start if none)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self.requests is None:
            self.requests = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.resend_group_id,
                enable_auto_commit=False,
                **self.security.aiokafka(),
            )
            await self.requests.start()
        parts = self.requests.partitions_for_topic(self.log.topic) or set()
        if not parts:
            await self.requests._client.force_metadata_update()  # noqa: SLF001 - fresh metadata
            parts = self.requests.partitions_for_topic(self.log.topic) or set()
        tps = [TopicPartition(self.log.topic, p) for p in sorted(parts)]
        self.requests.assign(tps)
        for tp in tps:
            committed = await self.requests.committed(tp)
            if committed is None:
                await self.requests.seek_to_beginning(tp)
            else:
                self.requests.seek(tp, committed)

    async def _resend_requested(self) -> None:
        """Act on the resend requests read since the last commit, then commit them."""
        try:
            batches = await self.requests.getmany(timeout_ms=0)
            work, ends = [], {}
            for tp, msgs in batches.items():
                ends[tp] = msgs[-1].offset + 1
                for m in msgs:
                    if m.key and m.value and m.key.decode().startswith(REQUEST_PREFIX):
                        request = decode(m.value)
                        self.deliverer.seen(request["alert_key"], request["version"])
                        work.append(request)
            if work:
                bodies = await self.deliverer.bodies_in_topic()
                await self._redeliver(
                    [(r, bodies.get(r["alert_key"]), r["webhook_status"] == RESEND_FAILED) for r in work]
                )
            if ends:
                await self.requests.commit(ends)
        except Exception as exc:  # noqa: BLE001 - not committed: read again and acted on at the next step
            log.warning("resend requests deferred (%s: %s)", type(exc).__name__, exc)
            if self.requests is not None:
                await self._tail_requests()
        finally:
            self._resending = None

    async def _send(self, alerts: list[Alert]) -> None:
        for a in alerts:
            await self._logged(a.row())  # the outbox first
            self.metrics.fired.inc()
            after_outbox(self.fault_exit_after_alert_outbox)
        for a in alerts:
            await self.deliverer.deliver(a)
            self.alerts_sent += 1

    async def _drain_budgets(self) -> None:
        """Read the budgets topic up to its end, so no batch is evaluated with budgets missing."""
        consumer = self.budgets_consumer
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        while await behind(consumer, tps, ends):
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                for m in msgs:
                    self._budget(m.key.decode(), m.value)

    def _budget(self, key: str, value: bytes | None) -> Budget | None:
        if value is None:
            self.budgets.pop(key, None)
            return None
        self.budgets[key] = Budget.model_validate_json(value)
        return self.budgets[key]

    async def _budget_changes(self) -> None:
        batches = await self.budgets_consumer.getmany(timeout_ms=0)
        now = dt.datetime.now(UTC)
        for msgs in batches.values():
            for m in msgs:
                budget = self._budget(m.key.decode(), m.value)
                if self.evaluator is None:
                    continue
                if budget is None:
                    self.evaluator.delete_budget(m.key.decode())
                else:
                    await self._send(await asyncio.to_thread(self.evaluator.set_budget, budget, now))

    def _evaluate(self, rows: list[LedgerRow]) -> list[Alert]:
        assert self.evaluator is not None
        now = dt.datetime.now(UTC)
        return [a for row in rows for a in self.evaluator.on_ledger(row, now)]

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.loop = asyncio.get_running_loop()
        consumer = CommitAfterWrite(
            self.bootstrap,
            [self.sink_topic],
            self.group_id,
            max_records=self.max_records,
            security=self.security,
            on_revoked=self._revoked,
        )
        self.budgets_consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self.security.aiokafka()
        )
        self.consumer = consumer
        await consumer.start()
        await self.budgets_consumer.start()
        tp0 = TopicPartition(self.budgets_topic, 0)
        self.budgets_consumer.assign([tp0])
        await self.budgets_consumer.seek_to_beginning(tp0)
        await self.log.start()
        await self.deliverer.start()
        try:
            while not self._stopping.is_set():
                try:
                    await self._step(consumer)
                except Exception as exc:  # noqa: BLE001 - the sink or Kafka away: re-read from the commit
                    log.warning("alert evaluation deferred (%s: %s)", type(exc).__name__, exc)
                    self.evaluator = None
                    await consumer.rewind()
                    await asyncio.sleep(1)
        finally:
            await consumer.stop()
            await self.budgets_consumer.stop()
            await self.deliverer.stop()
            if self.requests is not None:
                await self.requests.stop()
            await self.log.stop()
            await self.progress.stop()

    async def _revoked(self) -> None:
        self.evaluator = None  # rebuilt for what is assigned next
        self.done = {}

    async def _step(self, consumer: CommitAfterWrite) -> None:
        if not consumer.assignment():
            await self._drain_budgets()  # a standby: keep the budgets current
            await asyncio.sleep(0.5)
            return
        if self.evaluator is None:
            await self._ready(consumer)
        await self._budget_changes()
        self._catch_up()
        await consumer.take(self._evaluate_batch)

    async def _evaluate_batch(self, tp: Any, msgs: list[Any]) -> None:
        rows = [row for m in msgs for row in SinkRecord.decode(m.value).ledger]
        await self._send(await asyncio.to_thread(self._evaluate, rows))
        self.done[tp] = msgs[-1].offset + 1

    def stop(self) -> None:
        self._stopping.set()

    # -- for the worker's web port (streams/web.py): RoleStatus --------------------------------
    def status(self) -> dict[str, Any]:
        return {"alerts_sent": self.alerts_sent, "alerts_owner": self.evaluator is not None}

    # -- for streams/health.py (Role) --
    def partitions(self) -> list[tuple[str, int]] | None:
        consumer = self.consumer
        return None if consumer is None else [(tp.topic, tp.partition) for tp in consumer.assignment()]

    def problems(self, lag: int, now: float) -> list[str]:
        return []  # deferred evaluations wait for the sink, whose own problems say why
