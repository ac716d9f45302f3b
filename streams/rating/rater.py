"""The rating agent's per-partition core: validate, price, judge lateness, deduplicate.

It is deterministic in the partition's log: the state and the output after offset ``o`` depend
only on the messages at offsets <= o. A message replayed after a crash (Kafka delivers at least
once) is recognised by its dedup entry, which names the source position (offset, and line index
in a batch record) that first carried the event: the same position is a replay and is emitted
again (its ledger row is idempotent), another position is a duplicate and is dropped. The windowed totals are kept downstream, by the sink
(streams/sink/rollups.py). docs/exactness.md, "How meterstream counts each event exactly once", gives the
whole argument.

Messages are handled in batches (one partition's consecutive offsets); a batch writes one dedup
entry and the partition's meta, whatever its size. A batch record (schemas/batch.py) is split
into its events here, each priced, deduplicated and dead-lettered on its own.

State layout (a MutableMapping: a Faust table in the worker, a dict in tests):
  ``m|p``                       -> [watermark_ms, last_offset]                per partition
  ``v|p``, ``c|p|version``      -> the catalog versions published on the partition (catalogs.py)
  ``t|p|max_ts|first_pos``      -> [max_ts_ms, [[tenant, event_id, pos], ...]] dedup entries:
                                   the events counted by one batch, kept `dedup_ms` of stream
                                   time; pos = offset << 13 | index (see streams/rating/dedup.py,
                                   which also keeps the index that looks them up)
A replayed event (its id known at its own position) is written to its batch's entry again: the
state on disk can be ahead of the changelog after a crash, and the changelog must end up with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pricing import Catalog
from pricing.rating import Rejection, rate
from schemas.batch import MAX_BATCH_BYTES, BatchTooLarge, position, split
from schemas.record import Seal
from schemas.records import LedgerRow, RejectionRow, ledger_row, rejection_row
from streams.placement import Canonical
from streams.rating import adjustments
from streams.rating.catalogs import CatalogRefused, Versions
from streams.rating.dedup import DEDUP_ENTRY_IDS, SEP, Index, MemoryIndex, entry_key
from streams.settings import Settings

__all__ = ["DEDUP_ENTRY_IDS", "SEP", "Output", "Rater", "Source"]
EXPIRE_EVERY_MS = 60_000
# the settings' defaults (MS_ALLOWED_LATENESS_HOURS, MS_DEDUP_RETENTION_HOURS), defined there only
LATENESS_MS: int = Settings.model_fields["allowed_lateness_hours"].default * 3_600_000
DEDUP_MS: int = (
    Settings.model_fields["dedup_retention_hours"].default * 3_600_000
)  # look for expired dedup entries at most once per minute of stream time


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # the Kafka record's timestamp: "now" for the future-ts bound, replay-stable
    batch: bool = False  # the record is a batch (schemas/batch.py): its lines are the events
    index: int = 0  # an event's line in its batch record
    catalog: Seal | None = None  # a catalog record's sequence and signature (schemas/catalog_record.py)
    adjust: Seal | None = None  # an adjustment record's (schemas/adjustment.py, streams/rating/adjustments.py)
    refused: str | None = None  # the record is rejected as it is, and why: a payload its producer
    #                             refused (schemas/refusal.py), or a record that cannot be read (schemas/record.py)

    @property
    def pos(self) -> int:
        """The source position (offset, index) as one integer: what dedup entries and versions hold."""
        return position(self.offset, self.index)


@dataclass(slots=True)
class Output:
    """What a batch of input messages produces: ledger rows (idempotent, one per event) and
    rejections (one per source position), in order."""

    ledger: list[LedgerRow] = field(default_factory=list)
    rejected: list[RejectionRow] = field(default_factory=list)
    duplicates: int = 0
    # events whose canonical partition is another one: target partition -> (source, line)
    forward: dict[int, list[tuple[Source, bytes]]] = field(default_factory=dict)
    # from adjustment records (schemas/adjustment.py): audit_log, redrives and period_closes rows
    audit: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)


class Rater:
    def __init__(
        self,
        catalog: Catalog,
        *,
        lateness_ms: int = LATENESS_MS,
        dedup_ms: int = DEDUP_MS,
        partitions: int | None = None,
        index: Callable[[MutableMapping[str, Any], int], Index] | None = None,
        catalog_key: bytes | None = None,
        adjust_key: bytes | None = None,
    ) -> None:
        """`partitions`: the events topic's partition count; with it, an event read on another
        partition than its canonical one is not counted there but forwarded (Output.forward), so
        that its duplicates meet it whatever partition a producer chose. `index`: opens a
        partition's dedup index (default: in memory, from one scan of the state). `catalog_key`:
        the key catalog records are signed with (none: every catalog record is refused);
        `adjust_key`: likewise for adjustment records (streams/rating/adjustments.py)."""
        self.adjust_key = adjust_key
        self.versions = Versions(catalog, catalog_key)
        self.lateness_ms = lateness_ms
        self.dedup_ms = max(dedup_ms, lateness_ms)  # a duplicate must not outlive its dedup entry
        self.indexes: dict[int, Index] = {}
        self.open_index = index or MemoryIndex.build
        self.expired_at: dict[int, int] = {}  # partition -> watermark of the last sweep
        self.canonical = Canonical(partitions) if partitions else None

    def reset(self) -> None:
        """Forget the in-memory indexes (partitions were reassigned: the state may have changed)."""
        self.indexes.clear()
        self.expired_at.clear()

    def process_batch(self, state: MutableMapping[str, Any], batch: Iterable[tuple[Source, bytes]]) -> Output:
        """Handle consecutive messages of ONE partition, in offset order."""
        out = Output()
        items = list(batch)
        if not items:
            return out
        p = items[0][0].partition
        idx = self.index(state, p)
        meta_key = f"m{SEP}{p}"
        watermark, meta_offset = state.get(meta_key) or [0, -1]
        new_seen: list[list[Any]] = []  # counted here, in order: this batch's dedup entries
        batch_seen: dict[tuple[str, str], int] = {}
        max_ts = 0
        versions = self.versions
        history = versions.history(state, p)
        latest = versions.at(state, p, history, 1 << 62)  # in force after the last catalog record
        for src, raw in self._events(items, out):
            if src.refused is not None:
                out.rejected.append(self._rejected(src, raw, src.refused, None))
                continue
            if src.adjust is not None:
                catalog = latest if not history or src.pos > history[-1][0] else versions.at(state, p, history, src.pos)
                max_ts = max(max_ts, self._adjustments(state, src, raw, catalog, idx, batch_seen, new_seen, out))
                continue
            if src.catalog is not None:
                try:
                    history = versions.publish(state, src.topic, p, history, src.pos, raw, src.catalog)
                except CatalogRefused as exc:
                    out.rejected.append(self._rejected(src, raw, f"{exc}; the version in force stays", None))
                latest = versions.at(state, p, history, 1 << 62)
                continue
            now = dt.datetime.fromtimestamp(src.timestamp_ms / 1000, dt.UTC)
            catalog = latest if not history or src.pos > history[-1][0] else versions.at(state, p, history, src.pos)
            try:
                result = rate(raw, catalog, now=now)
            except Exception as exc:  # a fault of pricing on this input: kept with the reason, for a redrive
                result = Rejection(
                    f"internal error while pricing this event ({type(exc).__name__}); kept to be sent again once fixed",
                    None,
                )
            if isinstance(result, Rejection):
                out.rejected.append(self._rejected(src, raw, result.reason, result.event_id))
                continue
            if self.canonical is not None:
                home = self.canonical(result["tenant_id"], result["user_id"])
                # counted, judged late and deduplicated on its canonical partition; an event too
                # large for a batch record (over MAX_BATCH_BYTES, under the event limit) stays here
                if home != p and len(raw) <= MAX_BATCH_BYTES:
                    out.forward.setdefault(home, []).append((src, raw))
                    continue
            ts_ms = int(dt.datetime.fromisoformat(result["ts"]).timestamp() * 1000)
            if ts_ms < watermark - self.lateness_ms:
                out.rejected.append(
                    self._rejected(
                        src,
                        raw,
                        f"too_late: event time is {(watermark - ts_ms) // 60_000} minutes behind "
                        f"this partition's stream time (allowed lateness {self.lateness_ms // 60_000} minutes)",
                        result["event_id"],
                    )
                )
                continue
            watermark = max(watermark, ts_ms)
            ident = (result["tenant_id"], result["event_id"])
            pos = src.pos
            seen = batch_seen.get(ident)
            if seen is None:
                seen = idx.get(ident)
            if seen is not None and seen != pos:
                out.duplicates += 1  # an earlier position carried this (tenant, event_id)
                continue
            if ident not in batch_seen:  # new, or a replay (seen == pos): written to the entry
                batch_seen[ident] = pos
                new_seen.append([ident[0], ident[1], pos])
                max_ts = max(max_ts, ts_ms)
            out.ledger.append(ledger_row(result, ts_ms, p, src.offset, version=1, index=src.index))
        for i in range(0, len(new_seen), DEDUP_ENTRY_IDS):  # bounded changelog records
            chunk = new_seen[i : i + DEDUP_ENTRY_IDS]
            idx.add(state, entry_key(p, max_ts, chunk[0][2]), max_ts, chunk)
        versions.current[p] = latest.content_hash
        last = items[-1][0].offset
        if last > meta_offset:
            state[meta_key] = [watermark, last]
        return out

    def _adjustments(
        self,
        state: MutableMapping[str, Any],
        src: Source,
        raw: bytes,
        catalog: Catalog,
        idx: Index,
        batch_seen: dict[tuple[str, str], int],
        new_seen: list[list[Any]],
        out: Output,
    ) -> int:
        """An adjustment record's entries, each at its own position (streams/rating/adjustments.py);
        its ids are kept as long as an event's read at the record's time. Returns that time when
        it counted any."""
        try:
            audit, entries = adjustments.check_record(state, self.adjust_key, src, raw, SEP)
        except adjustments.EntryRefused as exc:
            out.rejected.append(self._rejected(src, raw, str(exc), None))
            return 0
        audit_id = ""
        if audit is not None:
            audit_id = str(audit.get("audit_id", ""))
            out.audit.append(audit)
        counted = 0

        def seen(ident: tuple[str, str], pos: int) -> bool:
            nonlocal counted
            first = batch_seen.get(ident)
            if first is None:
                first = idx.get(ident)
            if first is not None and first != pos:
                return True
            if ident not in batch_seen:
                batch_seen[ident] = pos
                new_seen.append([ident[0], ident[1], pos])
                counted = src.timestamp_ms
            return False

        for i, entry in enumerate(entries):
            at = Source(src.topic, src.partition, src.offset, src.timestamp_ms, index=i)
            adjustments.apply_entry(
                entry, at, catalog, audit_id, out, lambda ident, pos=at.pos: seen(ident, pos), self.canonical
            )
        return counted

    def index(self, state: MutableMapping[str, Any], p: int) -> Index:
        """This partition's dedup index, opened once per assignment."""
        idx = self.indexes.get(p)
        if idx is None:
            idx = self.indexes[p] = self.open_index(state, p)
        return idx

    @staticmethod
    def _events(items: list[tuple[Source, bytes]], out: Output) -> Iterable[tuple[Source, bytes]]:
        """The events of a run of records: a single-event record as it is, a batch record's lines
        each at its own position; a batch that cannot be split is one rejection."""
        for src, value in items:
            if not src.batch or src.catalog is not None or src.adjust is not None or src.refused is not None:
                yield src, value
                continue
            try:
                lines = split(value)
            except BatchTooLarge as exc:
                out.rejected.append(Rater._rejected(src, value, str(exc), None))
                continue
            for i, line in lines:
                yield Source(src.topic, src.partition, src.offset, src.timestamp_ms, True, i), line

    def expired(self, state: MutableMapping[str, Any], p: int, *, force: bool = False) -> list[str]:
        """This partition's dedup entries past keeping (dropped from the index: the caller
        deletes them from the state). Swept at most once per minute of stream time."""
        meta = state.get(f"m{SEP}{p}")
        idx = self.index(state, p)
        if not meta or (not force and meta[0] - self.expired_at.get(p, -(10**15)) < EXPIRE_EVERY_MS):
            return []
        self.expired_at[p] = meta[0]
        return idx.expired(state, meta[0] - self.dedup_ms)

    @staticmethod
    def _rejected(src: Source, raw: bytes, reason: str, event_id: str | None) -> RejectionRow:
        return rejection_row(src.topic, src.partition, src.offset, src.index, raw, reason, event_id)
