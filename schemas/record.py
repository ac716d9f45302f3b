"""What a Kafka record on the events topic is, read from its headers, whatever they hold.

Any producer with write access to the topic can write any record: a null value (a tombstone),
a header without a value, a header key that is not UTF-8, the same header twice. This module is
the one place that reads a record's headers (the rating agent, the producer's and the ingest's
tests); it never raises, and says why a record cannot be read instead:

  content-type: application/jsonl                    a batch of events (schemas/batch.py)
  content-type: application/vnd.meterstream.catalog+json
    meterstream-catalog-seq, meterstream-catalog-hmac  a catalog record (schemas/catalog_record.py)
  content-type: application/vnd.meterstream.adjustment+json
    meterstream-adjust-seq, meterstream-adjust-hmac    an adjustment record (schemas/adjustment.py)
  meterstream-refused: <reason>                      a payload its producer refused (schemas/refusal.py)

Any other header is ignored (a null value included). A record is unreadable, and is rejected
with that reason, when a header key is not UTF-8 (aiokafka gives it with lone surrogates, see
streams/aiokafka_records.py) or when one of the headers above is given twice or without a value:
two readers could then disagree on what the record is."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

CONTENT_TYPE = "content-type"
BATCH_TYPE = b"application/jsonl"
CATALOG_TYPE = b"application/vnd.meterstream.catalog+json"
REFUSED = "meterstream-refused"
CATALOG_SEQ = "meterstream-catalog-seq"
CATALOG_HMAC = "meterstream-catalog-hmac"
ADJUST_TYPE = b"application/vnd.meterstream.adjustment+json"
ADJUST_SEQ = "meterstream-adjust-seq"
ADJUST_HMAC = "meterstream-adjust-hmac"
MAX_REASON_BYTES = 1024
_OURS = frozenset({CONTENT_TYPE, REFUSED, CATALOG_SEQ, CATALOG_HMAC, ADJUST_SEQ, ADJUST_HMAC})
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_CONTROLS.update(
    {
        c: f"<U+{c:04X}>"
        for c in (*range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)
    }
)


@dataclass(frozen=True, slots=True)
class Seal:
    """A catalog or adjustment record's sequence and signature, as its headers give them (None: absent)."""

    seq: int | None
    hmac: str


@dataclass(frozen=True, slots=True)
class RecordKind:
    batch: bool = False
    catalog: Seal | None = None  # a catalog record
    adjust: Seal | None = None  # an adjustment record (schemas/adjustment.py)
    refused: str | None = None  # a payload its producer refused, and why
    unreadable: str | None = None  # why the record cannot be read (rejected with this reason)


EVENT = RecordKind()
BATCH = RecordKind(batch=True)


def printable(text: str) -> str:
    """`text` with control and bidi characters written out (``\\x1b``, ``<U+202E>``): safe to print."""
    return text.translate(_CONTROLS)


def read_kind(headers: object) -> RecordKind:
    """What a record is, from its headers: Kafka's list of (key, value) pairs (or a dict)."""
    if not headers:
        return EVENT
    try:
        items = list(headers.items() if isinstance(headers, dict) else cast(Iterable[Any], headers))
    except TypeError:
        return RecordKind(unreadable="unreadable record: its headers are not a list of (key, value) pairs")
    if len(items) == 1 and items[0] == (CONTENT_TYPE, BATCH_TYPE):  # the common case: a batch record
        return BATCH
    ours: dict[str, bytes] = {}
    for item in items:
        try:
            k, v = item
        except (TypeError, ValueError):
            return RecordKind(unreadable="unreadable record: a header is not a (key, value) pair")
        if not isinstance(k, str):
            return RecordKind(unreadable="unreadable record: a header key is not a string")
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            return RecordKind(unreadable="unreadable record: a header key is not UTF-8")
        name = k.lower()
        if name not in _OURS:
            continue
        if name in ours:
            return RecordKind(unreadable=f"unreadable record: the header {name} is given twice")
        if not isinstance(v, (bytes, bytearray, memoryview)):
            return RecordKind(unreadable=f"unreadable record: the header {name} has no value")
        ours[name] = bytes(v)
    if REFUSED in ours:
        reason = printable(ours[REFUSED][:MAX_REASON_BYTES].decode("utf-8", "replace"))
        return RecordKind(refused=reason or "refused by its producer")
    kind = ours.get(CONTENT_TYPE)
    if kind == CATALOG_TYPE:
        return RecordKind(catalog=_seal(ours.get(CATALOG_SEQ), ours.get(CATALOG_HMAC)))
    if kind == ADJUST_TYPE:
        return RecordKind(adjust=_seal(ours.get(ADJUST_SEQ), ours.get(ADJUST_HMAC)))
    return BATCH if kind == BATCH_TYPE else EVENT


def seal(domain: bytes, key: bytes, value: bytes, *, topic: str, partition: int, seq: int) -> str:
    """HMAC-SHA256 under `key` of a sealed record (a catalog or adjustment record): its kind
    (`domain`), where it goes, its sequence and its value, in hex."""
    bound = b"%s\n%s\n%d\n%d\n" % (domain, topic.encode(), partition, seq)
    return hmac.new(key, bound + value, hashlib.sha256).hexdigest()


def _seal(seq: bytes | None, mac: bytes | None) -> Seal:
    return Seal(
        int(seq) if seq is not None and seq.isdigit() and len(seq) <= 19 else None,
        (mac or b"").decode("ascii", "replace"),
    )
