"""The rating agent: events in, ledger rows and rejections out to the sink and dead-letter
topics, its dedup state in a Faust table (with changelog; on disk by default, see rocks.py).
The work per partition is in rater.py; this module feeds it from Faust and sends what it
returns."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, cast

import faust
import orjson
from faust.types import TP

import streams.rating.faust_fixes as faust_fixes  # must patch Faust before the app exists
from pricing import load_catalog
from schemas.batch import BATCH_HEADER, runs
from schemas.record import read_kind
from schemas.records import dead_letter_value, sink_records
from streams.metrics import RatingMetrics, SpendMetrics
from streams.rating.dedup import DiskIndex, Index, MemoryIndex
from streams.rating.rater import Output, Rater, Source
from streams.rating.rocks import StateStore
from streams.recovery import restart_in_place
from streams.settings import Settings
from streams.web_token import ADJUST_KEY, CATALOG_KEY, ensure_token

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
log = logging.getLogger("meterstream.rating")
RESUME_ATTEMPTS = 30  # reads of a partition's committed offset before the worker restarts


def slices(items: list[tuple[Source, bytes]], max_bytes: int) -> Iterator[list[tuple[Source, bytes]]]:
    """One partition's take in consecutive slices of at most ``max_bytes`` of input (at least one
    record each): each slice is rated and its rows sent before the next is parsed."""
    part: list[tuple[Source, bytes]] = []
    size = 0
    for item in items:
        if part and size + len(item[1]) > max_bytes:
            yield part
            part, size = [], 0
        part.append(item)
        size += len(item[1])
    if part:
        yield part


def continuing(
    expected: int, items: list[tuple[Source, bytes]]
) -> tuple[list[tuple[Source, bytes]], tuple[int, int] | None]:
    """One partition's batch, checked to continue from offset `expected`: the records from
    `expected` on, in order (one below it was given here before: read again after a seek back),
    and the first hole, as (the offset missing, the one that came instead), or None."""
    kept: list[tuple[Source, bytes]] = []
    for item in items:
        offset = item[0].offset
        if offset > expected:
            return kept, (expected, offset)
        if offset == expected:
            kept.append(item)
            expected += 1
    return kept, None


FORWARDED_HEADER = "meterstream-forwarded-from"
TOMBSTONE = "a record without a value (a tombstone): nothing to count"


def source_of(msg: Any, now_s: float) -> tuple[Source, bytes]:
    """A delivered Kafka message as the rater takes it, whatever its value and headers hold: a
    record that cannot be read (schemas/record.py) or has no value is to be rejected with the
    reason, never raised on."""
    ts_ms = int((msg.timestamp or now_s) * 1000)
    value = msg.value
    try:
        kind = read_kind(msg.headers)
        refused = kind.refused or kind.unreadable
    except Exception as exc:  # read_kind does not raise; a record is never let to stop the take
        kind, refused = read_kind(None), f"unreadable record ({type(exc).__name__})"
    if not isinstance(value, bytes):
        value = b"" if value is None else bytes(value)
        if refused is None and kind.catalog is None and kind.adjust is None and not kind.batch:
            refused = TOMBSTONE
    return Source(
        msg.topic,
        msg.partition,
        msg.offset,
        ts_ms,
        kind.batch,
        catalog=kind.catalog,
        adjust=kind.adjust,
        refused=refused,
    ), value


def forward_records(partition: int, out: Output) -> Iterator[tuple[int, bytes, int, bytes]]:
    """Batch records (schemas/batch.py) of the events to forward, per canonical partition and
    source record: (target partition, value, the source record's timestamp in ms, the origin
    "partition/offset" for the header). A forwarded event is an ordinary event on its canonical
    partition: counted there once, and a second forward of it (a replay here) is a duplicate."""
    for home, items in sorted(out.forward.items()):
        by_record: dict[int, list[tuple[Source, bytes]]] = {}
        for src, line in items:
            by_record.setdefault(src.offset, []).append((src, line))
        for offset, run in by_record.items():
            for lines in runs(line for _, line in run):
                yield home, b"\n".join(lines), run[0][0].timestamp_ms, f"{partition}/{offset}".encode()


class PartitionState(MutableMapping):
    """The state table as one partition's batch sees it: a write goes to the table and to that
    partition's changelog. (Faust's ``table[key] = v`` takes the partition from the current
    event, which a batch from ``take_events`` does not have.) On the rocksdb store, reads and
    writes go to the partition's own database; it is not iterated (it holds the dedup index)."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table, self.data, self.partition = table, table.data, partition
        self.disk = isinstance(self.data, StateStore)

    def __getitem__(self, key: str) -> Any:
        if not self.disk:
            return self.data[key]
        raw = self.data._db_for_partition(self.partition).get(self.data.encode_key(key))
        if raw is None:
            raise KeyError(key)
        return self.data.decode_value(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table.send_changelog(self.partition, key, value)
        if self.disk:
            self.data._db_for_partition(self.partition).put(self.data.encode_key(key), self.data.encode_value(value))
        else:
            self.data[key] = value

    def __delitem__(self, key: str) -> None:
        self.table.send_changelog(self.partition, key, None, value_serializer="raw")
        if self.disk:
            self.data._db_for_partition(self.partition).delete(self.data.encode_key(key))
        else:
            del self.data[key]

    def __iter__(self) -> Iterator[str]:
        if self.disk:
            raise TypeError("the on-disk state is not scanned (it holds the dedup index)")
        return iter(self.data)

    def __len__(self) -> int:
        if self.disk:
            raise TypeError("the on-disk state is not counted (see StateStore.estimated_keys)")
        return len(self.data)


def store_url(settings: Settings) -> str:
    """The app's table store (Faust ignores a table's own store URL without a path)."""
    return "memory://" if settings.state_store == "memory" else "meterstream-rocksdb://"


def state_table(app: faust.App, settings: Settings) -> Any:
    """The rating state: on disk (Faust's rocksdb store, bounded memory) or in memory."""
    options = (
        {}
        if settings.state_store == "memory"
        else {"cache_bytes": settings.state_cache_mb << 20, "write_buffer_bytes": settings.state_write_buffer_mb << 20}
    )
    return app.Table("state", partitions=settings.topic_partitions, options=options)


def open_index(table: Any) -> Callable[[MutableMapping[str, Any], int], Index]:
    """How the rater opens a partition's dedup index for this table's store."""
    if not isinstance(table.data, StateStore):
        return MemoryIndex.build
    store = table.data
    return lambda state, p: DiskIndex(lambda: store._db_for_partition(p), store, p)


class RatingRole:
    """The rating role of a worker: the agent `rate_events` on the events topic, its state table,
    the rater, and the report of its catalog versions. Each part is a method, testable alone."""

    def __init__(self, app: faust.App, settings: Settings, stats: dict[str, int]) -> None:
        self.app, self.settings, self.stats = app, settings, stats
        self.events = app.topic(settings.events_topic, partitions=settings.topic_partitions, **RAW)
        self.dlq = app.topic(settings.dead_letter_topic, partitions=settings.topic_partitions, **RAW)
        self.sink_topic = app.topic(settings.sink_topic, partitions=settings.sink_partitions, **RAW)
        self.status_topic = app.topic(settings.catalog_status_topic, partitions=1, **RAW)
        # keys: str, values: JSON lists (no model type: Faust restores them from the changelog as is)
        self.state = state_table(app, settings)
        self.rater = Rater(
            load_catalog(settings.catalog_dir),
            lateness_ms=settings.allowed_lateness_hours * 3_600_000,
            dedup_ms=settings.dedup_retention_hours * 3_600_000,
            partitions=settings.topic_partitions,
            index=open_index(self.state),
            catalog_key=ensure_token(settings, CATALOG_KEY).get_secret_value().encode(),
            adjust_key=ensure_token(settings, ADJUST_KEY).get_secret_value().encode(),
        )
        self.delivered: dict[int, int] = {}  # partition -> the offset after the last one Faust delivered here
        self.reported: dict[int, str] = {}  # the versions last reported to the status topic
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = RatingMetrics(
            stats, lambda: (self.rater.versions.base.content_hash, self.rater.versions.current)
        )
        self.spend = SpendMetrics(settings.metrics_spend_tenants) if settings.metrics_spend else None
        faust_fixes.STRICT_TOPICS.add(settings.events_topic)
        app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]  # mode's stub: a receiver returns None
        app.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]  # likewise
        app.agent(self.events, name="rate_events")(self.rate_events)
        app.timer(interval=settings.catalog_status_interval_s)(self.report_versions)

    async def _assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.rater.reset()

    async def _revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        for tp in args[0] if args else ():  # the partitions revoked
            if tp.topic == self.settings.events_topic:
                self.rater.versions.current.pop(tp.partition, None)

    async def in_order(self, partition: int, items: list[tuple[Source, bytes]]) -> list[tuple[Source, bytes]]:
        """The batch's records not given here before, checked to continue the offsets Faust
        delivered to this process, from where the partition last resumed (faust_fixes.py, fix 3).
        A hole means Faust dropped a message (ibid.): nothing after it may be applied first, and
        Faust does not re-read it in this process, so the worker restarts itself in place
        (streams/recovery.py) without processing the batch. Its commit is blocked at the hole
        (ibid., fix 2): the new process re-reads from there, in order. Not the state's last
        offset: after a SIGKILL the state on disk can be ahead of the commit, the sink records of
        its last batch lost, and a message dropped there would go unnoticed. Events topics have
        no transactions or compaction: no real gaps."""
        tp = TP(self.settings.events_topic, partition)
        consumer = self.app.consumer
        start = faust_fixes.resume_at(consumer).get(tp)  # known after the first batch: no await
        for attempt in range(RESUME_ATTEMPTS if start is None else 0):
            try:
                start = await faust_fixes.resumed_at(consumer, tp)
                break
            except Exception as exc:  # the coordinator is away: wait for it
                log.warning("partition %d: its committed offset was not read (%s); retrying", partition, exc)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        if start is None:
            restart_in_place(f"partition {partition}: its committed offset could not be read")
        expected = max(start, self.delivered.get(partition, start))
        kept, missing = continuing(expected, items)
        if missing is not None:
            restart_in_place(f"partition {partition}: offset {missing[0]} was never delivered (next came {missing[1]})")
        self.delivered[partition] = expected + len(kept)
        return kept

    async def rate_events(self, stream: faust.StreamT) -> None:
        """The agent: takes of events, each rated whole or the worker restarted in place."""
        settings = self.settings
        takes = cast(faust.Stream, stream).take_events(settings.agent_batch, within=settings.agent_batch_within_s)
        async for batch in takes:
            try:
                await self.rate_take(batch)
            except Exception as exc:  # noqa: BLE001 - nothing may escape a take (see below)
                # Faust acks a take's events when the agent leaves it, however it leaves: an error
                # here would commit records neither counted nor dead-lettered. Restarting the
                # process in place commits nothing more; the new one reads them again.
                log.exception("rating a take failed")
                restart_in_place(f"rating a take failed: {type(exc).__name__}: {str(exc)[:120]}")

    async def rate_take(self, batch: Sequence[Any]) -> None:
        """Rate one take, partition by partition, in byte-bounded slices; send each slice's
        rejections, sink records and forwarded events before the next is parsed."""
        by_partition: dict[int, list[tuple[Source, bytes]]] = defaultdict(list)
        now_s = time.time()
        self.metrics.records_in.inc(len(batch))
        for event in batch:
            src, value = source_of(event.message, now_s)
            by_partition[src.partition].append((src, value))
        rater, stats, spend = self.rater, self.stats, self.spend
        for partition, items in by_partition.items():
            view = PartitionState(self.state, partition)
            items = await self.in_order(partition, items)
            for part in slices(items, self.settings.rate_slice_bytes):  # bounded rows in memory
                out = rater.process_batch(view, part)
                self.metrics.rejected(out.rejected)  # into stats["rejected"] and its reason's class
                self.metrics.events_in.inc(
                    len(out.ledger) + len(out.rejected) + out.duplicates + sum(map(len, out.forward.values()))
                )
                stats["duplicates"] += out.duplicates
                stats["counted"] += len(out.ledger)
                if spend is not None:
                    spend.counted(out.ledger)
                await self.send(partition, out)
                del out
            for key in rater.expired(view, partition):
                del view[key]
        if rater.versions.current != self.reported:
            await self.report_versions()

    async def send(self, partition: int, out: Output) -> None:
        """A slice's output: rejections to the dead-letter topic, rows to the sink topic, events
        read off their canonical partition forwarded to it."""
        for row in out.rejected:
            await self.dlq.send(key=str(row["src_offset"]).encode(), value=dead_letter_value(row), partition=partition)
        for value in sink_records(
            int(time.time() * 1000), out.ledger, out.rejected, audit=out.audit, redrives=out.outcomes, closes=out.closes
        ):
            await self.sink_topic.send(key=str(partition).encode(), value=value)
        for home, values, ts_ms, origin in forward_records(partition, out):
            self.stats["forwarded"] += values.count(b"\n") + 1
            await self.events.send(
                value=values,
                partition=home,
                timestamp=(ts_ms + 0.5) / 1000,
                headers=[BATCH_HEADER, (FORWARDED_HEADER, origin)],
            )

    def status(self) -> dict[str, Any]:
        """For the worker's /status (streams/web.py RoleStatus): the keys its dedup state holds,
        estimated on disk (streams/rating/rocks.py)."""
        data = self.state.data
        return {
            "state_keys": data.estimated_keys() if hasattr(data, "estimated_keys") else len(data),
            "catalog": {
                "own": self.rater.versions.base.content_hash,
                "partitions": {str(p): v for p, v in sorted(self.rater.versions.current.items())},
            },
        }

    # -- for streams/health.py (Role) --
    def partitions(self) -> list[tuple[str, int]] | None:
        topic = self.settings.events_topic
        return [(tp.topic, tp.partition) for tp in self.app.assignor.assigned_actives() if tp.topic == topic]

    def problems(self, lag: int, now: float) -> list[str]:
        if not self.partitions():
            return [
                f"the rating role holds no partition of {self.settings.events_topic} (a rebalance, or more "
                "rating workers than partitions)"
            ]
        return []

    async def report_versions(self) -> None:
        """This worker's catalog versions, to the status topic (`meterstream catalog status`)."""
        app, rater = self.app, self.rater
        assigned = sorted(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == self.settings.events_topic
        )
        current = dict(rater.versions.current)
        if cast(Any, app.tables).recovery.completed.is_set():  # partitions not read since assignment: from the state
            for p in set(assigned) - set(current):
                history = rater.versions.history(PartitionState(self.state, p), p)
                current[p] = history[-1][1] if history else rater.versions.base.content_hash
        await self.status_topic.send(
            key=self.worker.encode(),
            value=orjson.dumps(
                {
                    "worker": self.worker,
                    "at_ms": int(time.time() * 1000),
                    "own": rater.versions.base.content_hash,
                    "partitions": {str(p): current.get(p) for p in assigned},
                }
            ),
        )
        self.reported = current
