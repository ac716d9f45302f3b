"""The ClickHouse sink: batches of sink records -> idempotent inserts, one place for batching.

The rating agent publishes the ledger rows and rejections of each batch of input messages to the
sink topic (flushed to Kafka before the input offsets are committed). This sink consumes that
topic with manual commits: a batch is written to ClickHouse first, its offsets committed after.
It also keeps the windowed totals (streams/rollups.py). Every row is idempotent (ledger: one row
per (tenant, event_id); rollups: absolute values versioned by source offset; rejected_events: one
row per source offset), so a batch written twice changes nothing; the insert deduplication token
(from the batch's offsets) also drops an identical retried ledger or rejections block.
ClickHouse unavailable: the batch is retried with backoff, never skipped, and Kafka keeps our
place."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from streams.kafka_security import PLAINTEXT, KafkaSecurity
from streams.rollups import Rollups
from streams.storage import Store, StoreError

log = logging.getLogger("meterstream.sink")
UTC = dt.timezone.utc



def _ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, UTC)


def rows_by_table(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A batch's ledger and rejected_events rows (one per event, one per source position)."""
    ledger: dict[tuple[str, str], dict[str, Any]] = {}
    rejected: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    for rec in records:
        at = _ms(rec["at"])
        for row in rec.get("l", ()):
            ledger[(row["tenant_id"], row["event_id"])] = {**row, "ts": _ms(row["ts"]), "ingested_at": at}
        for row in rec.get("x", ()):
            key = (row["src_topic"], row["src_partition"], row["src_offset"], row.get("src_index", 0))
            rejected[key] = {**row, "rejected_at": at}
    out: dict[str, list[dict[str, Any]]] = {}
    if ledger:
        out["ledger"] = list(ledger.values())
    if rejected:
        out["rejected_events"] = list(rejected.values())
    return out


def sink_step(store: Store, evaluator: Any, rollups: Rollups, records: list[dict[str, Any]], token: str,
              now: dt.datetime) -> list[Any]:
    """Evaluate budgets on the batch, write its alerts (the outbox) first, then its ledger,
    rejections and the rollup totals it changed; keep those totals in memory last."""
    ledger = [row for rec in records for row in rec.get("l", ())]
    alerts = []
    if evaluator is not None:
        for row in ledger:
            alerts.extend(evaluator.on_ledger(row, now))
    if alerts:
        store.insert("alerts", [a.row() for a in alerts], dedup_token=f"{token}:alerts")
        after_outbox()
    staged = rollups.stage(store, ledger)
    for table, rows in rows_by_table(records).items():
        store.insert(table, rows, dedup_token=f"{token}:{table}")
    for table, rows in rollups.rows(staged).items():
        store.insert(table, rows)  # absolute and versioned: a repeat is harmless
    rollups.keep(staged)
    return alerts


async def behind(consumer: Any, tps: list[Any], ends: dict[Any, int]) -> bool:
    """True while the consumer has not reached the end offsets it was given."""
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


def after_outbox() -> None:
    if os.environ.get("MS_FAULT_EXIT_AFTER_ALERT_OUTBOX"):  # fault injection: die before delivery
        os._exit(137)


class SinkConsumer:
    """Consumes the sink topic and writes ClickHouse, and evaluates budgets on the way. With
    the embedded engine only the process holding the sink partition opens the data directory
    (it closes it on revocation)."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, open_store: Callable[[], Store], *,
                 max_records: int = 64, max_backoff_s: float = 30.0, budgets_topic: str | None = None,
                 alerts_topic: str | None = None, webhooks: list[Any] | None = None,
                 webhook_secret: Any = None, webhook_attempts: int = 5, webhook_timeout_s: float = 5.0,
                 rollup_keep_ms: int = 48 * 3_600_000, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.group_id = group_id
        self._open_store = open_store
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self.store: Store | None = None
        self.store_lock = asyncio.Lock()
        self.fail_writes = False  # fault injection: make the sink fail as if ClickHouse were down
        self.rows_written = 0
        self._stopping = asyncio.Event()
        self.budgets_topic = budgets_topic
        self.alerts_topic = alerts_topic
        self.webhooks = webhooks or []  # streams.webhooks.WebhookTarget: URLs are secrets, never logged
        self.webhook_secret = webhook_secret
        self.webhook_attempts = webhook_attempts
        self.webhook_timeout_s = webhook_timeout_s
        self.evaluator: Any = None
        self.rollup_keep_ms = rollup_keep_ms
        self.rollups = Rollups(rollup_keep_ms)
        self.budgets: dict[str, Any] = {}
        self.deliverer: Any = None
        self.budgets_consumer: Any = None
        self.alerts_sent = 0

    async def _close_store(self) -> None:
        async with self.store_lock:
            self.evaluator = None
            self.rollups = Rollups(self.rollup_keep_ms)  # another worker may write them meanwhile
            if self.store is not None:
                store, self.store = self.store, None
                await asyncio.to_thread(store.close)

    async def _write_alert_row(self, row: dict[str, Any]) -> None:
        async with self.store_lock:
            if self.store is not None:
                await asyncio.to_thread(self.store.insert, "alerts", [row])

    async def _ready_evaluator(self) -> Any:
        """Load the evaluator from ClickHouse (fired alerts, high-water offsets), apply the
        budgets, and deliver what the outbox holds undelivered."""
        if self.evaluator is not None or self.deliverer is None:
            return self.evaluator
        from streams.alert_delivery import alert_from_row, load_evaluator, undelivered

        store = await self._ensure_store()
        await self._drain_budgets()
        now = dt.datetime.now(UTC)
        async with self.store_lock:
            evaluator = await asyncio.to_thread(load_evaluator, store)
            pending = await asyncio.to_thread(undelivered, store)
            new = []
            for b in self.budgets.values():
                new.extend(await asyncio.to_thread(evaluator.set_budget, b, now))
            if new:
                await asyncio.to_thread(store.insert, "alerts", [a.row() for a in new])
                after_outbox()
        self.evaluator = evaluator
        in_topic = await self.deliverer.keys_in_topic() if pending else set()
        for row in pending:
            alert = alert_from_row(row, self.budgets.get(row["budget_id"]))
            if alert is not None:
                await self.deliverer.deliver(alert, in_topic=row["alert_key"] in in_topic or bool(row["kafka_delivered"]))
        for a in new:
            await self.deliverer.deliver(a)
        return evaluator

    async def _drain_budgets(self) -> None:
        """Read the budgets topic up to its end, so no batch is evaluated with budgets missing."""
        from streams.budgets import Budget

        consumer = self.budgets_consumer
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        while await behind(consumer, tps, ends):
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                for m in msgs:
                    if m.value is None:
                        self.budgets.pop(m.key.decode(), None)
                    else:
                        self.budgets[m.key.decode()] = Budget.model_validate_json(m.value)

    async def _budget_changes(self, consumer: Any) -> None:
        from streams.budgets import Budget

        if self.evaluator is None:
            return  # loaded with every budget when the evaluator is (re)built
        batches = await consumer.getmany(timeout_ms=0)
        changes = [(m.key.decode(), m.value) for msgs in batches.values() for m in msgs]
        if not changes:
            return
        evaluator = await self._ready_evaluator()
        now = dt.datetime.now(UTC)
        new = []
        for key, value in changes:
            if value is None:
                self.budgets.pop(key, None)
                if evaluator is not None:
                    evaluator.delete_budget(key)
                continue
            budget = Budget.model_validate_json(value)
            self.budgets[key] = budget
            if evaluator is not None:
                async with self.store_lock:
                    new.extend(await asyncio.to_thread(evaluator.set_budget, budget, now))
        if new:
            async with self.store_lock:
                await asyncio.to_thread(self.store.insert, "alerts", [a.row() for a in new])
                after_outbox()
            for a in new:
                await self.deliverer.deliver(a)
                self.alerts_sent += 1

    async def _ensure_store(self) -> Store:
        async with self.store_lock:
            if self.store is None:
                self.store = await asyncio.to_thread(self._open_store)
            return self.store

    async def _write(self, records: list[dict[str, Any]], token: str) -> list[Any]:
        delay = 0.2
        while True:
            try:
                if self.fail_writes:
                    raise StoreError("fault injection: sink writes disabled")
                store = await self._ensure_store()
                evaluator = await self._ready_evaluator()
                async with self.store_lock:
                    alerts = await asyncio.to_thread(sink_step, store, evaluator, self.rollups, records, token,
                                                     dt.datetime.now(UTC))
                    self.rows_written += len(records)
                return alerts
            except StoreError as exc:
                if self._stopping.is_set():
                    raise
                self.evaluator = None  # its state may hold half a batch: reload it from ClickHouse
                log.warning("sink write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        sink = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await sink._close_store()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.max_records,
            fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
            **self.security.aiokafka(),
        )
        consumer.subscribe([self.topic], listener=Listener())
        await consumer.start()
        budgets = None
        if self.budgets_topic and self.alerts_topic:
            from aiokafka import AIOKafkaConsumer as Plain
            from aiokafka import TopicPartition

            from streams.alert_delivery import Deliverer

            self.deliverer = Deliverer(self.bootstrap, self.alerts_topic, self.webhooks, self._write_alert_row,
                                       secret=self.webhook_secret, attempts=self.webhook_attempts,
                                       timeout_s=self.webhook_timeout_s, security=self.security)
            await self.deliverer.start()
            budgets = Plain(bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self.security.aiokafka())
            await budgets.start()
            tp0 = TopicPartition(self.budgets_topic, 0)
            budgets.assign([tp0])
            await budgets.seek_to_beginning(tp0)
            self.budgets_consumer = budgets
        try:
            while not self._stopping.is_set():
                if budgets is not None and consumer.assignment():
                    try:
                        if self.evaluator is None:
                            await self._ready_evaluator()  # owner of the sink: evaluate budgets now
                        await self._budget_changes(budgets)
                    except Exception as exc:  # noqa: BLE001 - ClickHouse or Kafka away: retry later
                        self.evaluator = None  # reload, and re-deliver the outbox, next time
                        log.warning("budget evaluation deferred (%s)", exc)
                        await asyncio.sleep(1)
                batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                for tp, msgs in batches.items():
                    records = [orjson.loads(m.value) for m in msgs]
                    token = f"{tp.topic}-{tp.partition}-{msgs[0].offset}-{msgs[-1].offset}"
                    alerts = await self._write(records, token)
                    for alert in alerts:
                        try:
                            await self.deliverer.deliver(alert)
                            self.alerts_sent += 1
                        except Exception as exc:  # noqa: BLE001 - it stays in the outbox
                            self.evaluator = None  # the reload delivers what the outbox holds
                            log.warning("alert %s not delivered yet (%s)", alert.key, exc)
                    await consumer.commit({tp: msgs[-1].offset + 1})
        finally:
            await consumer.stop()
            if budgets is not None:
                await budgets.stop()
            if self.deliverer is not None:
                await self.deliverer.stop()
            await self._close_store()

    def stop(self) -> None:
        self._stopping.set()
