"""Bytes in, a BillingEvent or a specific reason out."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
import re
import time
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.billing_event import EARLIEST, MAX_EVENT_BYTES, MAX_FUTURE, BillingEvent, Usage
from schemas.errors import InputRejected


class InvalidEvent(InputRejected):
    """An input that is not a valid billing_event v1; ``reason`` says why."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


MAX_REASON = 1024  # characters: a reason never carries much of the input

# What of an input string a reason (or a stored payload, schemas/redact.py) may show as it is: a
# short identifier. Any other string is shown as its length and a short hash (hidden), so an
# operator can tell two values apart and match a reason to its stored payload, never read them.
ID_LIKE = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}").fullmatch
_LOC_TAGS = frozenset({"[key]"})  # pydantic's own names in an error's location


def visible(s: str) -> str:
    """``s`` with every non-printable character (controls, bidi and other format characters,
    separators) written as ``<U+XXXX>``: what is shown or stored of an input is plain to read."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else f"<U+{ord(c):04X}>" for c in s)


def hidden(s: str, what: str = "string") -> str:
    """A string as its length and the first 8 hex digits of its SHA-256 (UTF-8): ``<string: 53
    chars, sha256:ab12cd34>``; ``what`` is ``key`` for an object's key."""
    digest = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"<{what}: {len(s)} chars, sha256:{digest}>"


def quoted(value: object) -> str:
    """An input value as a reason may quote it: an id-like string (ID_LIKE) in quotes, a number,
    true/false/null as Python writes them; any other string hidden (its length and hash), an
    object or array by its size. Every reason that names a value of the input uses this."""
    t = type(value)
    if isinstance(value, str):
        return f"'{value}'" if ID_LIKE(value) else hidden(value)
    if value is None or t is bool:
        return repr(value)
    if t is int or t is float:
        r = repr(value)
        return r if len(r) <= 32 else f"<number of {len(r)} characters>"
    if t is dict:
        return f"<object of {len(value)} members>"  # type: ignore[arg-type]
    if t is list:
        return f"<array of {len(value)} items>"  # type: ignore[arg-type]
    return f"<{t.__name__}>"


def _part(p: object) -> str:
    """One step of a location (a key or an index) as a reason shows it: an input's key only when
    id-like, else hidden."""
    if type(p) is int:
        return str(p)
    s = str(p)
    return s if ID_LIKE(s) or s in _LOC_TAGS else hidden(s, "key")


def _cut(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


# OpenAI's usage fields, sent in a billing event (at the top or in `usage`): a reason of their own
OPENAI_FIELDS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})
OPENAI_HINT = "OpenAI's usage fields: use input_tokens/output_tokens, or --format openai for OpenAI responses"


def _openai_field(err: Any) -> bool:
    """An extra `prompt_tokens`, `completion_tokens` or `total_tokens`, at the top or in `usage`."""
    loc = err["loc"]
    return err["type"] == "extra_forbidden" and (
        (len(loc) == 1 and loc[0] in OPENAI_FIELDS) or (len(loc) == 2 and loc[0] == "usage" and loc[1] in OPENAI_FIELDS)
    )


def _reason(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    openai = [e for e in errors if _openai_field(e)]
    fields = ", ".join(".".join(map(str, e["loc"])) for e in openai)
    parts = [f"{fields}: Extra inputs are not permitted ({OPENAI_HINT})"] if openai else []
    shown = len(openai)
    for err in (e for e in errors if not _openai_field(e)):
        if len(parts) == 3:
            break
        loc = ".".join(_part(p) for p in err["loc"])
        msg = visible(err["msg"].removeprefix("Value error, "))
        parts.append(f"{loc}: {msg}" if loc else msg)
        shown += 1
    more = exc.error_count() - shown
    return _cut("; ".join(parts) + (f" (+{more} more)" if more > 0 else ""))


# ------------------------------------------------------------------------------ size


def strip_line(line: bytes) -> bytes:
    """An event as read from a JSON-lines file or stream: without its line ending (`\\n`,
    `\\r\\n`). `meterstream price` and `meterstream produce` both measure what is left."""
    return line.rstrip(b"\r\n")


def check_size(raw: bytes) -> None:
    """The one byte limit, for the stream and the CLI alike (an input over it is not parsed: its
    event_id is reported only when it is the object's first member)."""
    if len(raw) > MAX_EVENT_BYTES:
        m = _FIRST_ID.match(raw, 0, 1024)
        raise InvalidEvent(
            f"event is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit", m.group(1).decode() if m else None
        )


# ------------------------------------------------------------------------------ strict JSON


class _Pairs(list):
    """A JSON object as its (key, value) pairs in input order, duplicates kept."""


def _pairs(raw: bytes) -> Any:
    """The input read by Python's json module: every object as _Pairs. It reads more than
    strict JSON (NaN, Infinity, huge exponents, a BOM): used for ids and duplicates only."""
    return json.loads(raw, object_pairs_hook=_Pairs)


def _no_duplicates(raw: bytes, doc: Any) -> bool:
    """True when the input can hold no repeated key; False when it may (then read it exactly).

    A string costs two quote bytes, and a quote inside a string one more (written \\" : with no
    \\u0022 in the input, the only way). orjson writes the decoded value back the same way, so
    the input has as many quote bytes as that output exactly when decoding dropped no string,
    and a repeated key always drops one (the earlier key). One dumps and two byte counts."""
    try:
        back = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return False
    return raw.count(b'"') == back.count(b'"') and b"\\u0022" not in raw


def duplicate_key(raw: bytes, doc: Any) -> str | None:
    """The path of the first repeated key in the input (``usage.input_tokens``), None when
    there is none. orjson and pydantic keep the last of repeated keys silently; we refuse them."""
    if _no_duplicates(raw, doc):
        return None
    try:
        tree = _pairs(raw)
    except (ValueError, RecursionError):  # deeper than Python's json reads: cannot tell
        return "(input nested too deeply to check for duplicate keys)"
    stack: list[tuple[Any, tuple[Any, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for k, _ in node:
                if k in seen:
                    return ".".join(_part(p) for p in (*path, k))
                seen.add(k)
            stack.extend((v, (*path, k)) for k, v in reversed(node))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(node))))
    return None


_ID_OK = re.compile(r"[\x21-\x7e]{1,128}").fullmatch  # the models' Id and Name
_NAME_OK = re.compile(r"[\x21-\x7e]{1,256}").fullmatch
_FIRST_ID = re.compile(
    rb'(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"event_id"[ \t\r\n]*:[ \t\r\n]*"([\x21\x23-\x5b\x5d-\x7e]{1,128})"'
)


def ids_of(raw: bytes | str) -> tuple[str | None, str | None]:
    """(event_id, tenant_id) of an input, for its rejection: each when it is a valid id given
    once at the top level (None otherwise). Read from strict JSON; else as Python's json reads
    it (NaN, Infinity, 1e400, a BOM); else, for text even that cannot read (truncated, trailing
    comma, invalid UTF-8), an event_id that is the object's first member."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        doc = orjson.loads(data)
        if type(doc) is not dict:
            return None, None
        if _no_duplicates(data, doc):
            e, t = doc.get("event_id"), doc.get("tenant_id")
            return (e if type(e) is str and _ID_OK(e) else None), (t if type(t) is str and _NAME_OK(t) else None)
    except orjson.JSONDecodeError:
        pass
    try:
        tree = _pairs(data)
    except (ValueError, RecursionError):
        m = _FIRST_ID.match(data)
        return (m.group(1).decode() if m else None), None
    if not isinstance(tree, _Pairs):
        return None, None
    found: dict[str, list[Any]] = {}
    for k, v in tree:
        if k in ("event_id", "tenant_id"):
            found.setdefault(k, []).append(v)

    def one(key: str, ok: Any) -> str | None:
        vals = found.get(key, ())
        return vals[0] if len(vals) == 1 and type(vals[0]) is str and ok(vals[0]) else None

    return one("event_id", _ID_OK), one("tenant_id", _NAME_OK)


def _json_error(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    pos = exc.pos
    if raw[pos : pos + 3] == b"NaN" or raw[pos : pos + 8] == b"Infinity" or raw[pos : pos + 9] == b"-Infinity":
        return f"NaN and Infinity are not JSON numbers: line {exc.lineno} column {exc.colno}"
    return str(exc)


def parse_event(raw: bytes | str, *, now: dt.datetime | None = None) -> BillingEvent:
    """Validate one serialized event (strict JSON: RFC 8259, no repeated keys). ``now`` bounds
    how far ``ts`` may lie ahead."""
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError:
            raise InvalidEvent("not JSON: not valid UTF-8 (a lone surrogate)") from None
    check_size(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(_cut(f"not JSON: {_json_error(raw, exc)}"), ids_of(raw)[0]) from None
    dup = duplicate_key(raw, doc)
    if dup is not None:
        raise InvalidEvent(f"{dup}: duplicate key in a JSON object", ids_of(raw)[0])
    try:
        event = BillingEvent.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidEvent(_cut(f"not JSON: {visible(first['msg'])}"), ids_of(raw)[0]) from None
        raise InvalidEvent(_reason(exc), ids_of(raw)[0]) from None
    limit = (now or dt.datetime.now(dt.UTC)) + MAX_FUTURE
    if event.ts > limit:
        raise InvalidEvent(
            f"ts: {event.ts.isoformat()} is more than {int(MAX_FUTURE.total_seconds() // 60)} minutes in the future",
            event.event_id,
        )
    return event


# Fast path for the common shape: only token counts / human tasks in `usage`, no `text`. It never
# rejects: anything it does not fully check gives None and the caller runs parse_event, so every
# rejection keeps pydantic's reason. Rust-regex `$` is end of text: fullmatch here. Repeated
# keys: 2 quote bytes per string this shape can hold, no more (an escaped quote, or a key decoding
# dropped, adds some: parse_event decides; see _no_duplicates). Label values:
# str.isprintable() is False for every FORBIDDEN_CHARS character (and for a few allowed ones,
# e.g. U+00A0, which parse_event then decides). The 1.1 fields (service_tier, inference_geo, the new
# usage buckets) are not the common shape: an event with any of them takes parse_event, so the hot
# path pays nothing for them (tests/unit/test_rating_fastpath.py checks both paths agree on them).
_V11_TOP = frozenset({"service_tier", "inference_geo"})
_TOP = frozenset(BillingEvent.model_fields) - _V11_TOP
_COUNTS = {
    f: next(m.le for m in Usage.model_fields[f].metadata if hasattr(m, "le"))  # upper bounds
    for f in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "human_tasks")
}
# the models' string constraints (tests/unit/test_rating_fastpath.py checks they agree)
_ID, _NAME = r"[\x21-\x7e]{1,128}", r"[\x21-\x7e]{1,256}"
_TS = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)  # RFC 3339 with `T`, seconds, `Z` or +hh:mm
_ISO_OFFSET = {"Z": "+00:00", "-00:00": "+00:00"}  # as datetime.isoformat() writes them
# One match for the required strings joined by "\n": no pattern admits "\n", so the split is unique.
_REQUIRED = operator.itemgetter("event_id", "tenant_id", "user_id", "provider", "model", "ts")
_REQUIRED_RE = re.compile("\n".join([_ID, _NAME, _NAME, r"[a-z0-9_-]{1,64}", _NAME, _TS])).fullmatch
_REGION = re.compile(r"[a-z0-9-]{1,64}").fullmatch
_LABEL_KEYS = re.compile(r"[A-Za-z0-9_.:/-]{1,64}(?:\n[A-Za-z0-9_.:/-]{1,64})*").fullmatch
_UTC = dt.UTC
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
    if not (
        some
        and g("mode", "realtime") in ("realtime", "batch")
        and (region is None or (type(region) is str and _REGION(region)))
    ):
        return None
    if labels is not None:
        if type(labels) is not dict or len(labels) > 32 or (labels and not _LABEL_KEYS("\n".join(labels))):
            return None
        for v in labels.values():
            if type(v) is not str or len(v) > 256 or not v.isprintable():
                return None
    # strings: every key, the six required values, region and mode when given, label values
    strings = len(doc) + 6 + (region is not None) + ("mode" in doc) + len(usage) + (2 * len(labels) if labels else 0)
    if raw.count(b'"') != 2 * strings:  # a repeated key, or an escaped quote: parse_event decides
        return None
    text = doc["ts"]
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:  # a date that does not exist, e.g. Feb 30
        return None
    if ts < EARLIEST or ts > _limit(now):
        return None
    frac, off = m.groups()
    iso = text[:19] + (frac.ljust(7, "0") if ts.microsecond else "") + _ISO_OFFSET.get(off, off)
    return doc, ts, iso  # == ts.isoformat(), built for a fraction of its cost
