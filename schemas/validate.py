"""Bytes in, a BillingEvent or a specific reason out."""

from __future__ import annotations

import datetime as dt
import operator
import re
import time
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.billing_event import MAX_EVENT_BYTES, MAX_FUTURE, BillingEvent, Usage


class InvalidEvent(ValueError):
    """An input that is not a valid billing_event v1; ``reason`` says why."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _event_id_of(raw: bytes | str) -> str | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("event_id"), str):
        return doc["event_id"][:128]
    return None


def parse_event(raw: bytes | str, *, now: dt.datetime | None = None) -> BillingEvent:
    """Validate one serialized event. ``now`` bounds how far ``ts`` may lie ahead."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")
    try:
        event = BillingEvent.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise InvalidEvent(f"not JSON: {exc.errors()[0]['msg']}") from None
        raise InvalidEvent(_reason(exc), _event_id_of(raw)) from None
    limit = (now or dt.datetime.now(dt.timezone.utc)) + MAX_FUTURE
    if event.ts > limit:
        raise InvalidEvent(
            f"ts: {event.ts.isoformat()} is more than {int(MAX_FUTURE.total_seconds() // 60)} "
            "minutes in the future",
            event.event_id,
        )
    return event


# Fast path for the common shape: only token counts / human tasks in `usage`, no `text`. It never
# rejects: anything it does not fully check gives None and the caller runs parse_event, so every
# rejection keeps pydantic's reason. Rust-regex `$` is end of text: fullmatch here.
_TOP = frozenset(BillingEvent.model_fields)
_COUNTS = {f: next(m.le for m in Usage.model_fields[f].metadata if hasattr(m, "le"))  # upper bounds
           for f in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "human_tasks")}
# the models' string constraints (tests/unit/test_rating_fastpath.py checks they agree)
_ID, _NAME = r"[\x21-\x7e]{1,128}", r"[\x21-\x7e]{1,256}"
_TS = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
       r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")  # RFC 3339 with `T`, seconds, `Z` or +hh:mm
_ISO_OFFSET = {"Z": "+00:00", "-00:00": "+00:00"}  # as datetime.isoformat() writes them
# One match for the required strings joined by "\n": no pattern admits "\n", so the split is unique.
_REQUIRED = operator.itemgetter("event_id", "tenant_id", "user_id", "provider", "model", "ts")
_REQUIRED_RE = re.compile("\n".join([_ID, _NAME, _NAME, r"[a-z0-9_-]{1,64}", _NAME, _TS])).fullmatch
_REGION = re.compile(r"[a-z0-9-]{1,64}").fullmatch
_LABEL_KEYS = re.compile(r"[A-Za-z0-9_.:/-]{1,64}(?:\n[A-Za-z0-9_.:/-]{1,64})*").fullmatch
_UTC = dt.timezone.utc
_clock: tuple[int, dt.datetime] = (-1, dt.datetime.min.replace(tzinfo=_UTC))  # (second, its ts limit)


def _limit(now: dt.datetime | None) -> dt.datetime:
    """The latest ts accepted; without `now`, computed once per wall-clock second, so up to 1 s
    early: a ts in that second goes to parse_event, which decides."""
    global _clock
    if now is not None:
        return now + MAX_FUTURE
    sec = int(time.time())
    clock = _clock
    if clock[0] != sec:
        clock = _clock = (sec, dt.datetime.fromtimestamp(sec, _UTC) + MAX_FUTURE)
    return clock[1]


def parse_common(raw: bytes | str, now: dt.datetime | None = None) -> tuple[dict[str, Any], dt.datetime, str] | None:
    """(decoded event, ts, ts.isoformat()) when the event has the common shape and passes every
    check parse_event makes; None otherwise (then call parse_event)."""
    if type(raw) is not bytes or len(raw) > MAX_EVENT_BYTES:
        return None
    try:
        doc = orjson.loads(raw)
        usage = doc["usage"]
        if type(usage) is not dict or not _COUNTS.keys() >= usage.keys():  # other usage: leave early
            return None
        m = _REQUIRED_RE("\n".join(_REQUIRED(doc)))
    except (orjson.JSONDecodeError, KeyError, TypeError):  # not JSON, not an object, missing, not str
        return None
    g = doc.get
    if m is None or not _TOP.issuperset(doc) or g("text") is not None:
        return None
    some = False
    for k, v in usage.items():
        if v is not None:
            if type(v) is not int or not 0 <= v <= _COUNTS[k]:
                return None
            some = some or v > 0
    region, labels = g("region"), g("labels")
    if not (some and g("mode", "realtime") in ("realtime", "batch")
            and (region is None or (type(region) is str and _REGION(region)))):
        return None
    if labels is not None:
        if type(labels) is not dict or len(labels) > 32 or (labels and not _LABEL_KEYS("\n".join(labels))):
            return None
        for v in labels.values():
            if type(v) is not str or len(v) > 256:
                return None
    text = doc["ts"]
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:  # a date that does not exist, e.g. Feb 30
        return None
    if ts.year < 2000 or ts > _limit(now):
        return None
    frac, off = m.groups()
    iso = text[:19] + (frac.ljust(7, "0") if ts.microsecond else "") + _ISO_OFFSET.get(off, off)
    return doc, ts, iso  # == ts.isoformat(), built for a fraction of its cost
