"""The ClickHouse sink: batches of sink records -> idempotent inserts, one place for batching.

The rating agent publishes one sink record per input message to the sink topic (flushed to
Kafka before the input offset is committed). This sink consumes that topic with manual
commits: a batch is written to ClickHouse first, its offsets committed after. Every row is
idempotent (ledger: one row per (tenant, event_id); rollups: absolute values versioned by source
offset; rejected_events: one row per source offset), so a batch written twice changes nothing;
the insert deduplication token (from the batch's offsets) also drops an identical retried block.
ClickHouse unavailable: the batch is retried with backoff, never skipped, and Kafka keeps our
place."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import orjson

from streams.storage import Store, StoreError

log = logging.getLogger("meterstream.sink")
UTC = dt.timezone.utc

_ROLLUP_KEY = ("window_start", "tenant_id", "user_id", "model", "currency", "src_partition")


def _ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, UTC)


def rows_by_table(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group a batch's rows by table; of several versions of one rollup row keep the newest."""
    ledger: dict[tuple[str, str], dict[str, Any]] = {}
    rejected: dict[tuple[str, int, int], dict[str, Any]] = {}
    rollups: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for rec in records:
        at = _ms(rec["at"])
        if (row := rec.get("l")) is not None:
            ledger[(row["tenant_id"], row["event_id"])] = {**row, "ts": _ms(row["ts"]), "ingested_at": at}
        if (row := rec.get("x")) is not None:
            rejected[(row["src_topic"], row["src_partition"], row["src_offset"])] = {**row, "rejected_at": at}
        for row in rec.get("r", ()):
            table = row["table"]
            key = tuple(row.get(k) for k in _ROLLUP_KEY)
            seen = rollups.setdefault(table, {})
            if key not in seen or seen[key]["version"] < row["version"]:
                seen[key] = row
    out: dict[str, list[dict[str, Any]]] = {}
    if ledger:
        out["ledger"] = list(ledger.values())
    if rejected:
        out["rejected_events"] = list(rejected.values())
    for table, rows in sorted(rollups.items()):
        out[table] = [
            {**{k: v for k, v in r.items() if k != "table"}, "window_start": _ms(r["window_start"])}
            for r in rows.values()
        ]
    return out


def write_batch(store: Store, records: list[dict[str, Any]], token: str) -> int:
    n = 0
    for table, rows in rows_by_table(records).items():
        store.insert(table, rows, dedup_token=f"{token}:{table}")
        n += len(rows)
    return n


class SinkConsumer:
    """Consumes the sink topic and writes ClickHouse. With the embedded engine only the
    process holding the sink partition opens the data directory (it closes it on revocation)."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, open_store: Callable[[], Store], *,
                 max_records: int = 5000, max_backoff_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
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

    async def _close_store(self) -> None:
        async with self.store_lock:
            if self.store is not None:
                store, self.store = self.store, None
                await asyncio.to_thread(store.close)

    async def _ensure_store(self) -> Store:
        async with self.store_lock:
            if self.store is None:
                self.store = await asyncio.to_thread(self._open_store)
            return self.store

    async def _write(self, records: list[dict[str, Any]], token: str) -> None:
        delay = 0.2
        while True:
            try:
                if self.fail_writes:
                    raise StoreError("fault injection: sink writes disabled")
                store = await self._ensure_store()
                async with self.store_lock:
                    self.rows_written += await asyncio.to_thread(write_batch, store, records, token)
                return
            except StoreError as exc:
                if self._stopping.is_set():
                    raise
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
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        consumer.subscribe([self.topic], listener=Listener())
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                for tp, msgs in batches.items():
                    records = [orjson.loads(m.value) for m in msgs]
                    token = f"{tp.topic}-{tp.partition}-{msgs[0].offset}-{msgs[-1].offset}"
                    await self._write(records, token)
                    await consumer.commit({tp: msgs[-1].offset + 1})
        finally:
            await consumer.stop()
            await self._close_store()

    def stop(self) -> None:
        self._stopping.set()
