"""The ClickHouse sink: batches of sink records -> idempotent inserts, one place for batching.

The rating agent publishes the ledger rows and rejections of each batch of input messages to the
sink topic (flushed to Kafka before the input offsets are committed). This sink consumes that
topic with manual commits: a batch is written to ClickHouse first, its offsets committed after.
It also keeps the windowed totals (streams/sink/rollups.py), and copies the alert log (written by the
alerts role, streams/alerts/outbox.py) into the `alerts` table. Every row is idempotent (ledger: one row
per (tenant, event_id); rollups: absolute values versioned by source offset; rejected_events: one
row per source offset), so a batch written twice changes nothing; the insert deduplication token
(from the batch's offsets) also drops an identical retried ledger or rejections block.
ClickHouse unavailable: the batch is retried with backoff, never skipped, and Kafka keeps our
place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from schemas.records import SinkRecord
from streams.consume import CommitAfterWrite
from streams.kafka_security import KafkaSecurity
from streams.metrics import SinkMetrics
from streams.sink.rollups import Rollups
from streams.storage import Store, StoreError
from streams.storage.base import EpochMs

log = logging.getLogger("meterstream.sink")


def rows_by_table(records: list[SinkRecord]) -> dict[str, list[dict[str, Any]]]:
    """A batch's ledger and rejected_events rows (one per event, one per source position): the
    records' own rows, completed in place (no copies: a batch may hold 100,000 of them)."""
    ledger: dict[tuple[str, str, int], dict[str, Any]] = {}
    rejected: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    other: dict[str, list[dict[str, Any]]] = {"audit_log": [], "redrives": [], "period_closes": []}
    for rec in records:
        at = EpochMs(rec.at_ms)
        for row in rec.ledger:
            stored: dict[str, Any] = row  # type: ignore[assignment]  # completed with the table's columns
            stored["ts"], stored["ingested_at"] = EpochMs(row["ts"]), at
            if "occurred_at" in row:  # an adjustment record's row (streams/rating/adjustments.py)
                stored["occurred_at"] = EpochMs(row["occurred_at"])
            ledger[(row["tenant_id"], row["event_id"], row.get("adjustment", 0))] = stored
        for x in rec.rejected:
            stored = x  # type: ignore[assignment]  # likewise
            stored["rejected_at"] = at
            rejected[(x["src_topic"], x["src_partition"], x["src_offset"], x.get("src_index", 0))] = stored
        for table, rows, times in (
            ("audit_log", rec.audit, ("at",)),
            ("redrives", rec.redrives, ("redriven_at",)),
            ("period_closes", rec.closes, ("closed_at",)),
        ):
            for r in rows:
                other[table].append({**r, **{t: EpochMs(int(r[t])) for t in times if isinstance(r.get(t), int)}})
    out: dict[str, list[dict[str, Any]]] = {table: rows for table, rows in other.items() if rows}
    if ledger:
        out["ledger"] = list(ledger.values())
    if rejected:
        out["rejected_events"] = list(rejected.values())
    return out


def sink_step(store: Store, rollups: Rollups, records: list[SinkRecord], token: str) -> None:
    """Write a batch's ledger, rejections and the rollup totals it changed; keep those totals in
    memory last."""
    ledger = [row for rec in records for row in rec.ledger]
    staged = rollups.stage(store, ledger)
    for table, rows in rows_by_table(records).items():
        store.insert(table, rows, dedup_token=f"{token}:{table}")
    for table, rows in rollups.table_rows(staged):  # one table's rows in memory at a time
        store.insert(table, rows)  # absolute and versioned: a repeat is harmless
    rollups.keep(staged)


class SinkConsumer:
    """Consumes the sink topic (and the alert log) and writes ClickHouse. With the embedded
    engine only the process holding the sink partitions opens the data directory (it closes it
    on revocation)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        open_store: Callable[[], Store],
        *,
        max_records: int,
        alert_log_topic: str | None,
        rollup_keep_ms: int,
        security: KafkaSecurity,
        one_owner: bool,
        max_backoff_s: float = 30.0,
        stall_s: float = 120.0,
        label_keys: tuple[str, ...] = (),
    ) -> None:
        """`one_owner`: every sink-topic partition to one process (the embedded engine); False
        with a ClickHouse server, where several sink processes share the partitions (each source
        partition's rows are in one sink partition, and rows of different ones are disjoint).
        `label_keys`: the label keys rolled up besides users and models (MS_ROLLUP_LABELS).
        `stall_s`: not ready when it holds partitions and wrote nothing for this long while
        records wait (streams/health.py)."""
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.alert_log_topic = alert_log_topic
        self.group_id = group_id
        self._open_store = open_store
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self.store: Store | None = None
        self.store_lock = asyncio.Lock()
        self.fail_writes = False  # fault injection: make the sink fail as if ClickHouse were down
        self.rows_written = 0
        self.metrics = SinkMetrics(lambda: self.rows_written)
        self._stopping = asyncio.Event()
        self.rollup_keep_ms = rollup_keep_ms
        self.label_keys = label_keys
        self.rollups = Rollups(rollup_keep_ms, label_keys)
        self.one_owner = one_owner
        self.stall_s = stall_s
        self.consumer: CommitAfterWrite | None = None
        self.last_write_at: float | None = None  # time.time() of the last batch written
        self.active_since: float | None = None  # since when it holds partitions (None: standing by)
        self.store_problem: str | None = None  # why the last write, or opening the store, failed

    async def _close_store(self) -> None:
        self.active_since = None
        async with self.store_lock:
            self.rollups = Rollups(self.rollup_keep_ms, self.label_keys)  # another worker may write them meanwhile
            if self.store is not None:
                store, self.store = self.store, None
                await asyncio.to_thread(store.close)

    async def _ensure_store(self) -> Store:
        async with self.store_lock:
            if self.store is None:
                self.store = await asyncio.to_thread(self._open_store)
            return self.store

    async def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """A read on the sink's store, between its writes (for the alerts role in this process)."""
        if self.fail_writes:
            raise StoreError("fault injection: the store is unavailable")
        await self._ensure_store()
        async with self.store_lock:
            if self.store is None:
                raise StoreError("the store was closed (a rebalance); retry")
            return await asyncio.to_thread(self.store.query, sql, params)

    def _step(self, store: Store, tp: Any, records: list[bytes], token: str) -> dict[str, int]:
        """Write a batch; the rows it gave each table (for the metrics)."""
        if tp.topic == self.alert_log_topic:
            rows = [alert_row(orjson.loads(v)) for v in records]
            store.insert("alerts", rows, dedup_token=f"{token}:alerts")
            return {"alerts": len(rows)}
        decoded = [SinkRecord.decode(v) for v in records]
        sink_step(store, self.rollups, decoded, token)
        return {
            "ledger": sum(len(r.ledger) for r in decoded),
            "rejected_events": sum(len(r.rejected) for r in decoded),
        }

    async def _write(self, tp: Any, records: list[bytes], token: str) -> None:
        delay = 0.2
        while True:
            try:
                if self.fail_writes:
                    raise StoreError("fault injection: sink writes disabled")
                store = await self._ensure_store()
                async with self.store_lock:
                    started = time.monotonic()
                    rows = await asyncio.to_thread(self._step, store, tp, records, token)
                    self.rows_written += len(records)
                self.metrics.written(rows, time.monotonic() - started)
                self.last_write_at, self.store_problem = time.time(), None
                return
            except StoreError as exc:
                self.store_problem = " ".join(str(exc).split())[:300]
                self.metrics.store_errors.inc()
                if self._stopping.is_set():
                    raise
                self.metrics.retries.inc()
                log.warning("sink write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    async def run(self) -> None:
        consumer = CommitAfterWrite(
            self.bootstrap,
            [self.topic] + ([self.alert_log_topic] if self.alert_log_topic else []),
            self.group_id,
            max_records=self.max_records,
            one_owner=self.one_owner,
            security=self.security,
            on_revoked=self._close_store,
        )
        self.consumer = consumer
        await consumer.start()
        try:
            while not self._stopping.is_set():
                if self.active_since is None and consumer.assignment():
                    self.active_since = time.time()
                if self.store is None and consumer.assignment() and not self.fail_writes:
                    try:  # the owner opens the store at once: analysts' reads work before any write
                        await self._ensure_store()
                    except StoreError as exc:
                        self.store_problem = " ".join(str(exc).split())[:300]
                        log.warning("store not open yet (%s)", exc)
                await consumer.take(self._write_batch)
        finally:
            await consumer.stop()
            await self._close_store()

    async def _write_batch(self, tp: Any, msgs: list[Any]) -> None:
        await self._write(tp, [m.value for m in msgs], f"{tp.topic}-{tp.partition}-{msgs[0].offset}-{msgs[-1].offset}")

    def stop(self) -> None:
        self._stopping.set()

    # -- for the worker's web port (streams/web.py): StoreAccess, RoleStatus, FaultInjection --
    def holds_store(self) -> bool:
        return self.store is not None

    def reads_block_writes(self) -> bool:
        store = self.store
        return store is not None and store.analyst_reads_block_writes

    async def read(self, fn: Callable[[Store], Any]) -> Any:
        """fn(store) in a thread, beside the batch being written: it waits only for the statement
        running now (the store runs one at a time). StoreClosed when no store is held."""
        from streams.storage import StoreClosed

        store = self.store
        if store is None:
            raise StoreClosed("this process does not hold the store")
        return await asyncio.to_thread(fn, store)

    async def exclusive(self, fn: Callable[[Store], Any]) -> Any:
        """fn(store) in a thread between batches: it waits for the batch being written and holds
        the next one off until it returns. StoreClosed when no store is held."""
        async with self.store_lock:
            return await self.read(fn)

    def status(self) -> dict[str, Any]:
        return {
            "rollup_keys": len(self.rollups),
            "sink_rows": self.rows_written,
            "store_open": self.store is not None,
            "last_write": self.last_write_at,
        }

    # -- for streams/health.py (Role) --
    def partitions(self) -> list[tuple[str, int]] | None:
        return None if self.consumer is None else [(tp.topic, tp.partition) for tp in self.consumer.assignment()]

    def problems(self, lag: int, now: float) -> list[str]:
        """Not ready: the store cannot be reached, or nothing written for stall_s while `lag`
        records wait. A sink standing by (no partitions) has none."""
        if self.active_since is None:
            return []
        if self.store_problem is not None:
            return [f"the sink cannot write to the store: {self.store_problem}"]
        quiet = now - max(self.last_write_at or 0.0, self.active_since)
        if lag > 0 and quiet > self.stall_s:
            return [f"the sink has written nothing for {quiet:.0f} s while {lag} records wait"]
        return []

    def inject_write_failures(self, fail: bool) -> bool:
        """Fault injection: writes fail as if ClickHouse were down while `fail`; the setting now."""
        self.fail_writes = fail
        return self.fail_writes


def alert_row(row: dict[str, Any]) -> dict[str, Any]:
    """An alert log row (streams/alerts/outbox.py) as the `alerts` table takes it."""
    return {**row, "created_at": EpochMs(row["created_at"])}
