"""The records the roles pass each other: one type each, one builder, one decoder.

    pricing ──PricedEvent──► rating ──LedgerRow, RejectionRow──► sink topic (SinkRecord)
                                     └──RejectionRow──► dead-letter topic
    sink topic ──SinkRecord.decode──► sink (ClickHouse), alerts (budgets)

The types are TypedDicts: at run time plain dicts (orjson writes them as they are, the hot path
pays nothing), to mypy a contract that every builder and reader keeps. A sink record is
``{"at": ms, "l": [LedgerRow, ...]}`` or ``{"at": ms, "x": [RejectionRow, ...]}`` (or, from
adjustment records, "a" audit_log, "d" redrives and "c" period_closes rows), at most
MAX_SINK_RECORD bytes; a dead-letter record is one RejectionRow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import orjson

from schemas.batch import runs
from schemas.redact import stored_payload
from schemas.validate import MAX_REASON, ids_of

MAX_SINK_RECORD = 768 * 1024  # bytes: well under the producer's 1,000,000-byte request limit
# what a ledger row adds up besides its cost: the rollups' counters, signed (an adjustment subtracts)
COUNTERS = (
    "events",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "images",
    "guardrail_units",
)


class PricedEvent(TypedDict):
    """An event as the pricing engine gives it back (pricing/engine.py)."""

    event_id: str
    ts: str  # ISO 8601, as validated
    tenant_id: str
    user_id: str
    provider: str
    model: str
    product_id: str
    region: str | None
    mode: str
    usage: dict[str, Any]  # the usage priced (counted tokens included)
    labels: dict[str, str]
    currency: str
    cost: str  # the tenant's price (schemas/money.py text)
    list_cost: str  # the catalog's price
    price_overlay: str  # the overlay rule applied, or ""
    line_items: list[dict[str, Any]]
    catalog_version: str
    catalog_hash: str
    estimated: bool  # tokens counted from text, not reported
    guardrail_units: int
    service_tier: NotRequired[str]  # billing_event 1.1: only when the event names one
    inference_geo: NotRequired[str]  # likewise


def priced_event(
    event_id: str,
    ts: str,
    tenant_id: str,
    user_id: str,
    provider: str,
    model: str,
    product_id: str,
    region: str | None,
    mode: str,
    usage: dict[str, Any],
    labels: dict[str, str],
    currency: str,
    cost: str,
    list_cost: str,
    price_overlay: str,
    line_items: list[dict[str, Any]],
    catalog_version: str,
    catalog_hash: str,
    estimated: bool,
    guardrail_units: int,
    /,
) -> PricedEvent:
    """The one builder of a PricedEvent (positional: it runs once per event)."""
    return {
        "event_id": event_id,
        "ts": ts,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "provider": provider,
        "model": model,
        "product_id": product_id,
        "region": region,
        "mode": mode,
        "usage": usage,
        "labels": labels,
        "currency": currency,
        "cost": cost,
        "list_cost": list_cost,
        "price_overlay": price_overlay,
        "line_items": line_items,
        "catalog_version": catalog_version,
        "catalog_hash": catalog_hash,
        "estimated": estimated,
        "guardrail_units": guardrail_units,
    }


class LedgerRow(TypedDict):
    """One counted event: a row of the `ledger` table, and what the rollups and budgets add up."""

    tenant_id: str
    event_id: str
    user_id: str
    provider: str
    model: str
    region: str
    mode: str
    service_tier: str  # billing_event 1.1: '' when the event named none
    inference_geo: str  # likewise
    ts: Any  # ms since the epoch in a sink record; a datetime when re-rating
    currency: str
    cost: str
    list_cost: str
    price_overlay: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    images: int
    guardrail_units: int
    line_items: str  # JSON
    usage: str  # JSON
    labels: dict[str, str]
    catalog_version: str
    catalog_hash: str
    estimated: bool
    src_partition: int  # where the event was counted: its canonical partition,
    src_offset: int  # the offset of its record there,
    src_index: int  # and its line in a batch record
    version: int
    # rows from adjustment records only (streams/rating/adjustments.py; the table's defaults otherwise):
    events: NotRequired[int]  # what it adds to the count of events (1; a void -1, a replacement 0)
    adjustment: NotRequired[int]  # the event's adjustment number (0: the event's own row)
    entry: NotRequired[str]  # how it came: redrive, backfill, void, replace, rerate
    audit_id: NotRequired[str]  # the audit_log entry of the change
    occurred_at: NotRequired[int]  # the event's own time in ms, when it is booked at another (ts)


def ledger_row(priced: PricedEvent, ts: Any, partition: int, offset: int, *, version: int, index: int = 0) -> LedgerRow:
    """The ledger row of a priced event (``ts`` in ms, or a datetime), for the stream and re-rating."""
    u = priced["usage"]
    images = u.get("images")
    return {
        "tenant_id": priced["tenant_id"],
        "event_id": priced["event_id"],
        "user_id": priced["user_id"],
        "provider": priced["provider"],
        "model": priced["model"],
        "region": priced["region"] or "",
        "mode": priced["mode"],
        "service_tier": priced.get("service_tier", ""),
        "inference_geo": priced.get("inference_geo", ""),
        "ts": ts,
        "currency": priced["currency"],
        "cost": priced["cost"],
        "list_cost": priced["list_cost"],
        "price_overlay": priced["price_overlay"],
        "input_tokens": u.get("input_tokens", 0),
        "output_tokens": u.get("output_tokens", 0),
        "cached_input_tokens": u.get("cached_input_tokens", 0),
        "cache_write_tokens": u.get("cache_write_tokens", 0),
        "images": sum(i["count"] for i in images) if images else 0,
        "guardrail_units": priced["guardrail_units"],
        "line_items": orjson.dumps(priced["line_items"]).decode(),
        "usage": orjson.dumps(u).decode(),
        "labels": priced["labels"],
        "catalog_version": priced["catalog_version"],
        "catalog_hash": priced["catalog_hash"],
        "estimated": priced["estimated"],
        "src_partition": partition,
        "src_offset": offset,
        "src_index": index,
        "version": version,
    }


class RejectionRow(TypedDict):
    """One rejected input: a dead-letter record, and a row of `rejected_events`."""

    src_topic: str
    src_partition: int
    src_offset: int
    src_index: int
    event_id: str | None  # only when valid
    tenant_id: str | None  # likewise
    reason: str  # at most MAX_REASON characters
    payload: str  # schemas/redact.py: no prompt text, at most 16 KiB


def rejection_row(
    topic: str, partition: int, offset: int, index: int, raw: bytes, reason: str, event_id: str | None
) -> RejectionRow:
    """The rejection of an input at its position: ids only when valid, a bounded reason, and the
    payload of schemas/redact.py (never the raw bytes)."""
    row: RejectionRow = {
        "src_topic": topic,
        "src_partition": partition,
        "src_offset": offset,
        "src_index": index,
        "event_id": event_id,
        "tenant_id": ids_of(raw)[1],
        "reason": reason[:MAX_REASON],
        "payload": stored_payload(raw),
    }
    return bounded(row)


def bounded(row: RejectionRow) -> RejectionRow:
    """A rejection row as recorded: rows are bounded where they are made (payload <= 16 KiB;
    reason <= 1 KiB); should one still exceed half a sink record, its payload gives way, so that
    no input can make a record the broker refuses (a poison pill)."""
    if len(orjson.dumps(row)) <= MAX_SINK_RECORD // 2:
        return row
    gone = orjson.dumps(
        {"not_stored": {"why": "rejection row over the record limit", "bytes": len(row.get("payload") or "")}}
    ).decode()
    return {**row, "payload": gone, "reason": str(row.get("reason"))[:1024]}


def dead_letter_value(row: RejectionRow) -> bytes:
    """The dead-letter record of one rejection: the same row as rejected_events gets."""
    return orjson.dumps(row)


def sink_records(
    at_ms: int,
    ledger: list[LedgerRow],
    rejected: list[RejectionRow],
    *,
    audit: list[dict[str, Any]] = (),  # type: ignore[assignment]
    redrives: list[dict[str, Any]] = (),  # type: ignore[assignment]
    closes: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> list[bytes]:
    """A batch's rows as sink records of at most MAX_SINK_RECORD bytes each, in order: the
    rejections, then the ledger rows, then what adjustment records give besides (audit_log,
    redrives and period_closes rows); each row serialized once, packed greedily (schemas/batch.py Run)."""
    records: list[bytes] = []
    for tag, rows in ((b"x", rejected), (b"l", ledger), (b"a", audit), (b"d", redrives), (b"c", closes)):
        if rows:
            head = b'{"at":%d,"%s":[' % (at_ms, tag)
            records += [
                head + b",".join(run) + b"]}"
                for run in runs((orjson.dumps(r) for r in rows), MAX_SINK_RECORD - len(head) - 2, 1 << 62)
            ]
    return records


@dataclass(slots=True)
class SinkRecord:
    """A sink record read back (by the sink and the alerts role)."""

    at_ms: int
    ledger: list[LedgerRow] = field(default_factory=list)
    rejected: list[RejectionRow] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    redrives: list[dict[str, Any]] = field(default_factory=list)
    closes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def decode(cls, value: bytes) -> SinkRecord:
        """The record's rows; ValueError when it is not a sink record."""
        doc = orjson.loads(value)
        if not isinstance(doc, dict) or not isinstance(doc.get("at"), int):
            raise ValueError("not a sink record: an object with `at` (ms) and `l`, `x`, `a`, `d` or `c` rows")
        return cls(
            doc["at"],
            doc.get("l") or [],
            doc.get("x") or [],
            doc.get("a") or [],
            doc.get("d") or [],
            doc.get("c") or [],
        )


__all__ = [
    "COUNTERS",
    "MAX_SINK_RECORD",
    "LedgerRow",
    "PricedEvent",
    "RejectionRow",
    "SinkRecord",
    "bounded",
    "dead_letter_value",
    "ledger_row",
    "priced_event",
    "rejection_row",
    "sink_records",
]
