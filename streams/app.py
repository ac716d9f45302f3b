"""The Faust app: topics, the state table, the rating agent, the sink, the analyst endpoint.

    billing_events --rate_events--> state table (per-partition windows, dedup; changelog topic)
                               \\-> meterstream_sink (ledger + absolute rollup rows)  --SinkConsumer--> ClickHouse
                                \\-> billing_events_dlq (rejections)                   (also rejected_events)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import faust
import orjson

import streams.faust_fixes  # noqa: F401 - must patch Faust's producer buffer before the app exists
from pricing import load_catalog
from streams.aggregator import SEP, Aggregator, Source
from streams.settings import Settings
from streams.sink import SinkConsumer
from streams.storage import StoreError, open_store

log = logging.getLogger("meterstream.worker")
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def create_app(settings: Settings) -> faust.App:
    datadir = settings.data_dir / "faust" / f"{settings.app_id}-{settings.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        table_standby_replicas=0,
        processing_guarantee="at_least_once",  # exactness comes from the design, not from EOS
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s, not 60
        broker_heartbeat_interval=3.0,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(datadir),
    )
    events = app.topic(settings.events_topic, partitions=settings.topic_partitions, **RAW)
    dlq = app.topic(settings.dead_letter_topic, partitions=settings.topic_partitions, **RAW)
    sink_topic = app.topic(settings.sink_topic, partitions=settings.sink_partitions, **RAW)
    # keys: str, values: JSON lists (no model type: Faust restores them from the changelog as is)
    state = app.Table("state", partitions=settings.topic_partitions)

    aggregator = Aggregator(
        load_catalog(settings.catalog_dir),
        lateness_ms=settings.allowed_lateness_hours * 3_600_000,
        dedup_ms=settings.dedup_retention_hours * 3_600_000,
    )
    expiry = Expiry(aggregator)
    sink = SinkConsumer(settings.bootstrap, settings.sink_topic, f"{settings.app_id}-sink",
                        lambda: open_store(settings), max_records=settings.sink_batch,
                        budgets_topic=settings.budgets_topic, alerts_topic=settings.alerts_topic,
                        webhooks=settings.webhook_urls, webhook_attempts=settings.alert_webhook_attempts,
                        webhook_timeout_s=settings.alert_webhook_timeout_s)
    app.meterstream_sink = sink  # type: ignore[attr-defined]
    app.meterstream_stats = defaultdict(int)  # type: ignore[attr-defined]
    stats = app.meterstream_stats  # type: ignore[attr-defined]

    @app.on_partitions_assigned.connect
    async def _reindex(app: Any, assigned: Any, **kwargs: Any) -> None:  # noqa: ARG001
        expiry.reset()

    @app.agent(events)
    async def rate_events(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            ts_ms = int((msg.timestamp or time.time()) * 1000)
            src = Source(msg.topic, msg.partition, msg.offset, ts_ms)
            out = aggregator.process(state, src, event.value)
            record: dict[str, Any] = {"at": int(time.time() * 1000)}
            if out.rejected is not None:
                stats["rejected"] += 1
                record["x"] = out.rejected
                await dlq.send(key=event.key, value=orjson.dumps(out.rejected), partition=msg.partition)
            elif out.duplicate:
                stats["duplicates"] += 1
            else:
                stats["counted"] += 1
                record["l"] = out.ledger
                record["r"] = out.rollups
            if len(record) > 1:
                await sink_topic.send(key=str(msg.partition).encode(), value=orjson.dumps(record))
            for key in expiry.due(state, msg.partition):
                del state[key]

    @app.task
    async def run_sink() -> None:
        await sink.run()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"ok": True, "stats": dict(stats), "sink_rows": sink.rows_written,
                         "alerts_sent": sink.alerts_sent, "store_open": sink.store is not None})

    @app.page("/query")
    class QueryView(faust.web.View):
        """Read-only SQL for analysts' commands while this worker holds the embedded engine."""

        async def post(self, request: Any) -> Any:
            body = await request.json()
            sql = body.get("sql", "")
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                return self.json({"error": "only SELECT queries"}, status=400)
            store = sink.store
            if store is None:
                return self.json({"error": "this worker does not hold the store"}, status=503)
            try:
                async with sink.store_lock:
                    rows = await asyncio.to_thread(store.query, sql, body.get("params") or {})
            except StoreError as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.bytes(orjson.dumps(rows, default=str), content_type="application/json")

    @app.page("/rerate")
    class RerateView(faust.web.View):
        """`meterstream rerate` for analysts while this worker holds the embedded engine."""

        async def post(self, request: Any) -> Any:
            import datetime as dt
            from pathlib import Path

            from pricing import CatalogError
            from streams.rerate import RerateError, rerate

            body = await request.json()
            store = sink.store
            if store is None:
                return self.json({"error": "this worker does not hold the store"}, status=503)
            try:
                catalog = load_catalog(Path(body["catalog_dir"]) if body.get("catalog_dir") else settings.catalog_dir)
                since = dt.datetime.fromisoformat(body["since"])
                until = dt.datetime.fromisoformat(body["until"])
                async with sink.store_lock:
                    result = await asyncio.to_thread(
                        rerate, store, catalog, since, until,
                        lateness=dt.timedelta(hours=settings.allowed_lateness_hours))
            except (RerateError, CatalogError, StoreError, ValueError, KeyError) as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json(result)

    @app.page("/fault/sink")
    class FaultView(faust.web.View):
        """Fault injection for ops/chaos: {"fail": true} makes sink writes fail until false."""

        async def post(self, request: Any) -> Any:
            sink.fail_writes = bool((await request.json()).get("fail"))
            return self.json({"fail_writes": sink.fail_writes})

    return app


class Expiry:
    """Evicts window and dedup entries past their keeping, by partition stream time: a scan of
    the partition's keys every `every` messages, at most once per minute of stream time."""

    def __init__(self, aggregator: Aggregator, every: int = 5000) -> None:
        self.aggregator = aggregator
        self.every = every
        self.count: dict[int, int] = defaultdict(int)
        self.scanned_at: dict[int, int] = {}

    def reset(self) -> None:
        self.count.clear()
        self.scanned_at.clear()

    def due(self, state: Any, partition: int) -> list[str]:
        self.count[partition] += 1
        if self.count[partition] % self.every:
            return []
        meta = state.get(f"m{SEP}{partition}")
        watermark = meta[0] if meta else 0
        if watermark - self.scanned_at.get(partition, -10**15) < 60_000:
            return []
        self.scanned_at[partition] = watermark
        prefix = ("w" + SEP + str(partition) + SEP, "s" + SEP + str(partition) + SEP)
        keys = [k for k in list(state.keys()) if k.startswith(prefix)]
        return self.aggregator.expired(state, partition, keys)
