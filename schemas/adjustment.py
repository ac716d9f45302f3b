"""The adjustment record: a change to the past, prepared by an operator's command and counted
by the pipeline like any event (docs/fixing-the-past.md).

``meterstream redrive``, ``backfill``, ``correct``, ``rerate`` and ``period close`` read the
ledger, decide what must change, and write it as adjustment records on the events topic, each to
the partition where the rows it changes are counted. On that partition the rating agent turns
each entry into a ledger row (or a rejection, at the entry's position), and the sink and the
alerts add it up like any other: exactly once, by the position it was read at
(docs/exactness.md).

A record is ``content-type: application/vnd.meterstream.adjustment+json``, sealed like a catalog
record (schemas/catalog_record.py) under the adjustment key (a secret the operators' commands and
the raters share, MS_ADJUST_KEY or ``$MS_DATA_DIR/adjust-key``): ``meterstream-adjust-seq``
holds the record's sequence (the time it was prepared, in microseconds) and
``meterstream-adjust-hmac`` HMAC-SHA256 of the topic, the partition, the sequence and the
value. A producer that may write events may therefore not write adjustments, nor copy one to
another partition, nor write an old one again: a rater refuses a record whose sequence is not
above every sequence it took on the partition (a replay of a record it took, at its own
position, is taken again). Its value is JSON::

    {"audit": {audit_log row} | null,
     "entries": [entry, ...]}          # at most MAX_ENTRIES; entry i is read at (offset, i)

with one of these entries each:

    {"op": "event", "entry": "redrive"|"backfill", "event": {billing_event},
     "book_ms": int|null, "redrive_of": [topic, partition, offset, index]|null}
        an event counted through no lateness rule (its own ts, or booked at book_ms when its
        month is closed); deduplicated by (tenant_id, event_id) like every event
    {"op": "adjust", "entry": "void"|"replace"|"rerate", "tenant_id", "event_id",
     "adjustment": n >= 1, "book_ms": int, "base": {...}|null, "current": {...}|null,
     "event": {billing_event} (replace), "target": {...} (rerate), "refused": str (optional)}
        the event's n-th adjustment: a ledger row holding target - current (or, with
        "refused", a rejection with that reason: a correction of an unknown or void event)
    {"op": "close", "row": {period_closes row}}
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson

from schemas.record import ADJUST_HMAC, ADJUST_SEQ, ADJUST_TYPE, CONTENT_TYPE, seal
from schemas.records import COUNTERS

ADJUST_HEADER = (CONTENT_TYPE, ADJUST_TYPE)
MAX_ADJUST_BYTES = 900_000  # under the producer's and the broker's 1 MB default record limits
MAX_ENTRIES = 4096  # positions (offset, index) hold an index below 8192 (schemas/batch.py)
ENTRY_KINDS = {"event": ("redrive", "backfill"), "adjust": ("void", "replace", "rerate")}
QUANTITIES = COUNTERS  # what an adjustment row adds up (schemas/records.py)
# an adjustment's identity in the rating agent's dedup index: the event id, this separator (not
# printable: never in an id) and the adjustment's number
ADJUSTMENT_SEP = "\x1e"


def signature(key: bytes, value: bytes, *, topic: str, partition: int, seq: int) -> str:
    """The seal of an adjustment record: HMAC-SHA256 of where it goes, its sequence and its value."""
    return seal(b"meterstream-adjustment/1", key, value, topic=topic, partition=partition, seq=seq)


def headers(key: bytes, value: bytes, *, topic: str, partition: int, seq: int) -> list[tuple[str, bytes]]:
    """An adjustment record's headers: its type, its sequence and its seal."""
    return [
        ADJUST_HEADER,
        (ADJUST_SEQ, str(seq).encode()),
        (ADJUST_HMAC, signature(key, value, topic=topic, partition=partition, seq=seq).encode()),
    ]


def signed_by(key: bytes, value: bytes, given: str, *, topic: str, partition: int, seq: int) -> bool:
    return hmac.compare_digest(signature(key, value, topic=topic, partition=partition, seq=seq), given)


def encode(entries: list[dict[str, Any]], audit: dict[str, Any] | None) -> bytes:
    return orjson.dumps({"audit": audit, "entries": entries})


def records(entries: list[dict[str, Any]], audit: dict[str, Any] | None) -> list[bytes]:
    """The values of the records carrying `entries` (in order), each under MAX_ADJUST_BYTES and
    MAX_ENTRIES; each repeats the audit row (the audit log keeps one per audit_id). ValueError
    for an entry that cannot fit a record alone."""
    out: list[bytes] = []
    head = len(encode([], audit))
    run: list[dict[str, Any]] = []
    size = head
    for entry in entries:
        n = len(orjson.dumps(entry)) + 1
        if head + n > MAX_ADJUST_BYTES:
            raise ValueError(f"an entry is {n} bytes; a record holds at most {MAX_ADJUST_BYTES - head}")
        if run and (size + n > MAX_ADJUST_BYTES or len(run) >= MAX_ENTRIES):
            out.append(encode(run, audit))
            run, size = [], head
        run.append(entry)
        size += n
    if run or not out:
        out.append(encode(run, audit))
    return out


def decode(value: bytes) -> tuple[dict[str, Any] | None, list[Any]]:
    """(audit, entries) of an adjustment record; ValueError with the reason when it is not one.
    The entries are checked one by one where they are applied (a bad one is rejected alone)."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"audit", "entries"}:
        raise ValueError("an adjustment record is an object with exactly `audit` and `entries`")
    audit, entries = doc["audit"], doc["entries"]
    if audit is not None and not isinstance(audit, dict):
        raise ValueError("`audit` is an object or null")
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise ValueError(f"`entries` is a list of at most {MAX_ENTRIES}")
    return audit, entries


__all__ = [
    "ADJUSTMENT_SEP",
    "ADJUST_HEADER",
    "ENTRY_KINDS",
    "MAX_ADJUST_BYTES",
    "MAX_ENTRIES",
    "QUANTITIES",
    "decode",
    "encode",
    "headers",
    "records",
    "signature",
    "signed_by",
]
