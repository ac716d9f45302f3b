"""The rating agent's side of an adjustment record (schemas/adjustment.py): check its seal and
sequence, then turn each entry into a ledger row or a rejection at the entry's position.

Everything an entry needs was read from the ledger when the operator's command prepared it (the
event's current values, its next adjustment number, the period it is booked in); here it is
priced (a redriven, backfilled or replacement event, with the catalog in force) and deduplicated
like any event, so a record replayed after a crash, or sent twice, counts once:

- an event (redrive, backfill) under its own (tenant_id, event_id): a duplicate when the id was
  counted at another position (the live stream's or an earlier redrive's);
- an adjustment under (tenant_id, event_id, n): the n-th adjustment of an event made twice (two
  corrections prepared against the same state) is rejected the second time, to be prepared again.

No lateness rule applies, and the stream time is not moved. docs/fixing-the-past.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, MutableMapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from pricing.rating import Rejection, rate
from schemas import adjustment
from schemas.adjustment import ADJUSTMENT_SEP, ENTRY_KINDS, QUANTITIES
from schemas.money import money_str
from schemas.records import LedgerRow, ledger_row

if TYPE_CHECKING:
    from pricing import Catalog
    from streams.rating.rater import Output, Source

TAKEN_KEPT = 1024  # the (sequence, position) pairs of the adjustment records last taken on a partition
_ZERO = Decimal(0)


class EntryRefused(ValueError):
    """An entry the rater cannot apply, and why (rejected at its position)."""


def check_record(
    state: MutableMapping[str, Any], key: bytes | None, src: Source, raw: bytes, sep: str
) -> tuple[dict[str, Any] | None, list[Any]]:
    """(audit, entries) of an adjustment record the partition may take; EntryRefused with the
    reason otherwise. Taking it records its (sequence, position) in the state."""
    seal = src.adjust
    if key is None:
        raise EntryRefused("adjustment record refused: this rater has no adjustment key (MS_ADJUST_KEY)")
    if (
        seal is None
        or seal.seq is None
        or not adjustment.signed_by(key, raw, seal.hmac, topic=src.topic, partition=src.partition, seq=seal.seq)
    ):
        raise EntryRefused("adjustment record refused: not sealed by the adjustment key for this topic and partition")
    taken_key = f"a{sep}{src.partition}"
    taken: list[list[int]] = state.get(taken_key) or []
    mine = [seal.seq, src.pos]
    if mine not in taken:  # a record taken before, replayed at its own position, is taken again
        if taken and seal.seq <= max(s for s, _ in taken):
            raise EntryRefused(
                "adjustment record refused: its sequence is not above the last one taken on this "
                "partition (an old or copied record); prepare the change again"
            )
    try:
        audit, entries = adjustment.decode(raw)
    except ValueError as exc:
        raise EntryRefused(f"adjustment record refused: {exc}") from None
    if mine not in taken:
        state[taken_key] = (taken + [mine])[-TAKEN_KEPT:]
    return audit, entries


def _ms(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EntryRefused(f"{what} is not a time in ms")
    return value


def _units(row: dict[str, Any]) -> tuple[Decimal, Decimal, list[int]]:
    try:
        return (
            Decimal(str(row.get("cost", "0"))),
            Decimal(str(row.get("list_cost", row.get("cost", "0")))),
            [int(row.get(q, 0)) for q in QUANTITIES],
        )
    except (ArithmeticError, TypeError, ValueError):
        raise EntryRefused("an entry's values are not numbers") from None


def _negated(items: Any) -> list[dict[str, Any]]:
    """Line items with their quantities and amounts negated (what a reversal takes back)."""
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            neg = dict(item)
            for f in ("quantity", "cost", "list_cost"):
                if f in neg and neg[f] not in (None, ""):
                    neg[f] = money_str(-Decimal(str(neg[f])))
            out.append(neg)
    return out


def event_row(
    entry: dict[str, Any], src: Source, catalog: Catalog, audit_id: str
) -> tuple[LedgerRow | None, str | None, tuple[str, str] | None]:
    """An event entry (redrive, backfill): (its ledger row, None, its id) or (None, the reason it
    is rejected, its id when valid)."""
    event = entry.get("event")
    if not isinstance(event, dict):
        return None, "an event entry holds no event", None
    now = dt.datetime.fromtimestamp(src.timestamp_ms / 1000, dt.UTC)
    result = rate(orjson.dumps(event), catalog, now=now)
    if isinstance(result, Rejection):
        return None, result.reason, None
    ts_ms = int(dt.datetime.fromisoformat(result["ts"]).timestamp() * 1000)
    book = entry.get("book_ms")
    row = ledger_row(
        result, ts_ms if book is None else _ms(book, "book_ms"), src.partition, src.offset, version=1, index=src.index
    )
    row["entry"] = str(entry.get("entry"))
    row["audit_id"] = audit_id
    row["occurred_at"] = ts_ms
    return row, None, (result["tenant_id"], result["event_id"])


def adjust_row(entry: dict[str, Any], src: Source, catalog: Catalog, audit_id: str) -> LedgerRow:
    """An adjustment entry's ledger row: the difference between the event's target values (none
    for a void; the replacement priced with `catalog`; a re-rating's own) and its current ones.
    EntryRefused when it cannot be made."""
    kind = entry.get("entry")
    if entry.get("refused"):  # the command found it could not be made (an unknown or void event)
        raise EntryRefused(f"{kind}: {entry['refused']}")
    base, current = entry.get("base"), entry.get("current")
    if not isinstance(base, dict) or not isinstance(current, dict):
        raise EntryRefused(f"{kind}: the entry names no current values of the event")
    n = entry.get("adjustment")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < 1 << 31:
        raise EntryRefused(f"{kind}: the adjustment number is not a positive integer")
    book = _ms(entry.get("book_ms"), "book_ms")
    cost, list_cost, counts = _units(current)
    currency = str(base.get("currency", ""))
    target: dict[str, Any]
    if kind == "void":
        target = {"cost": "0", "list_cost": "0", "line_items": [], "usage": {}}
        target.update(dict.fromkeys(QUANTITIES, 0))
    elif kind == "replace":
        event = entry.get("event")
        if not isinstance(event, dict):
            raise EntryRefused("replace: the entry holds no replacement event")
        now = dt.datetime.fromtimestamp(src.timestamp_ms / 1000, dt.UTC)
        priced = rate(orjson.dumps(event), catalog, now=now)
        if isinstance(priced, Rejection):
            raise EntryRefused(f"replace: the replacement is refused: {priced.reason}")
        if (priced["tenant_id"], priced["event_id"]) != (entry.get("tenant_id"), entry.get("event_id")):
            raise EntryRefused("replace: the replacement names another event")
        if priced["currency"] != currency:
            raise EntryRefused(f"replace: the replacement is priced in {priced['currency']}, the event in {currency}")
        full = ledger_row(priced, 0, src.partition, src.offset, version=1, index=src.index)
        target = {**full, "events": 1, "line_items": priced["line_items"], "usage": priced["usage"]}
    elif kind == "rerate":
        given = entry.get("target")
        if not isinstance(given, dict):
            raise EntryRefused("rerate: the entry holds no target values")
        target = given
    else:
        raise EntryRefused(f"unknown adjustment {kind!r}")
    t_cost, t_list, t_counts = _units(target)
    items = list(target.get("line_items") or []) + _negated(current.get("line_items"))
    row: dict[str, Any] = {
        "tenant_id": str(entry.get("tenant_id")),
        "event_id": str(entry.get("event_id")),
        "adjustment": n,
        "entry": kind,
        "audit_id": audit_id,
        "user_id": str(base.get("user_id", "")),
        "provider": str(base.get("provider", "")),
        "model": str(base.get("model", "")),
        "region": str(base.get("region") or ""),
        "mode": str(base.get("mode", "")),
        "service_tier": str(base.get("service_tier") or ""),
        "inference_geo": str(base.get("inference_geo") or ""),
        "ts": book,
        "occurred_at": _ms(base.get("occurred_ms"), "occurred_ms"),
        "currency": currency,
        "cost": money_str(t_cost - cost),
        "list_cost": money_str(t_list - list_cost),
        "price_overlay": str(target.get("price_overlay", "")),
        "line_items": orjson.dumps(items).decode(),
        "usage": orjson.dumps(target.get("usage") or {}).decode(),
        "labels": base.get("labels") or {},
        "catalog_version": str(target.get("catalog_version", "")),
        "catalog_hash": str(target.get("catalog_hash", "")),
        "estimated": False,
        "src_partition": src.partition,
        "src_offset": src.offset,
        "src_index": src.index,
        "version": 1,
    }
    row.update(zip(QUANTITIES, (t - c for t, c in zip(t_counts, counts))))
    return row  # type: ignore[return-value]


def apply_entry(
    entry: Any,
    src: Source,
    catalog: Catalog,
    audit_id: str,
    out: Output,
    seen: Any,
    home: Callable[[str, str], int] | None = None,
) -> tuple[str, str] | None:
    """Apply one entry at `src`: a ledger row, a rejection, a period close or a redrive's
    outcome into `out`. `seen(ident)` deduplicates: it returns True when the identity was counted
    at another position (and records it otherwise). `home(tenant, user)`: an event's canonical
    partition (an event entry elsewhere is refused: its duplicates are looked for there). Returns
    the identity counted, if any."""
    if not isinstance(entry, dict) or entry.get("op") not in ("event", "adjust", "close"):
        out.rejected.append(_rejected(src, entry, "an adjustment entry is an object with op event, adjust or close"))
        return None
    op = entry["op"]
    if op == "close":
        row = entry.get("row")
        if not isinstance(row, dict):
            out.rejected.append(_rejected(src, entry, "a close entry holds no row"))
        else:
            out.closes.append(row)
        return None
    if entry.get("entry") not in ENTRY_KINDS[op]:
        out.rejected.append(_rejected(src, entry, f"an {op} entry is one of {', '.join(ENTRY_KINDS[op])}"))
        return None
    redrive_of = entry.get("redrive_of")

    def outcome(what: str, detail: str = "") -> None:
        if op == "event" and isinstance(redrive_of, list) and len(redrive_of) == 4:
            t, p, o, i = redrive_of
            out.outcomes.append(
                {
                    "src_topic": str(t),
                    "src_partition": int(p),
                    "src_offset": int(o),
                    "src_index": int(i),
                    "redriven_at": src.timestamp_ms,
                    "outcome": what,
                    "detail": detail[:1024],
                    "audit_id": audit_id,
                }
            )

    try:
        if op == "event":
            row, reason, ident = event_row(entry, src, catalog, audit_id)
            canonical = (
                home(row["tenant_id"], row["user_id"]) if row is not None and home is not None else src.partition
            )
            if canonical != src.partition:
                row, reason = (
                    None,
                    (
                        f"{entry['entry']}: sent to partition {src.partition}, not the event's canonical partition "
                        f"{canonical} (is MS_TOPIC_PARTITIONS the topic's partition count?)"
                    ),
                )
            if row is None or ident is None:
                out.rejected.append(_rejected(src, entry, str(reason), ident))
                outcome("rejected", str(reason))
                return None
        else:
            row = adjust_row(entry, src, catalog, audit_id)
            ident = (row["tenant_id"], row["event_id"] + ADJUSTMENT_SEP + str(entry["adjustment"]))
    except EntryRefused as exc:
        out.rejected.append(_rejected(src, entry, str(exc), _id_of(entry)))
        outcome("rejected", str(exc))
        return None
    if seen(ident):
        if op == "event":
            out.duplicates += 1
            outcome("duplicate", "already counted")
        else:
            out.rejected.append(
                _rejected(
                    src,
                    entry,
                    f"{entry['entry']}: adjustment {entry['adjustment']} of this event was made by an earlier "
                    "record (another change prepared against the same values); prepare it again",
                    _id_of(entry),
                )
            )
        return None
    out.ledger.append(row)
    outcome("counted")
    return ident


def _id_of(entry: Any) -> tuple[str, str] | None:
    if isinstance(entry, dict):
        t, e = entry.get("tenant_id"), entry.get("event_id")
        if isinstance(t, str) and isinstance(e, str):
            return t, e
        ev = entry.get("event")
        if isinstance(ev, dict) and isinstance(ev.get("tenant_id"), str) and isinstance(ev.get("event_id"), str):
            return ev["tenant_id"], ev["event_id"]
    return None


def _rejected(src: Source, entry: Any, reason: str, ident: tuple[str, str] | None = None) -> Any:
    from schemas.records import rejection_row

    raw = orjson.dumps(
        entry.get("event") if isinstance(entry, dict) and isinstance(entry.get("event"), dict) else entry
    )
    row = rejection_row(src.topic, src.partition, src.offset, src.index, raw, reason, ident[1] if ident else None)
    if ident is not None:
        row["tenant_id"] = ident[0]
    return row
