"""The bad-input corpora, shared by unit and integration tests.

``tests/data/bad_events.jsonl`` (one change from a good event each) and
``tests/data/bad_events_hostile.jsonl`` (strict input, stored-payload safety) have the same line
format: ``{"kind", "stage", "raw", "reason_contains"}``. A ``raw`` of ``GENERATE_<NAME>`` stands for
an input built here instead of being stored: over or near the 1 MiB limit, invalid UTF-8, very
deep nesting. Every ``text`` field of the hostile corpus holds ``PROMPT_MARKER``: no stored
payload may contain it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from schemas.billing_event import MAX_EVENT_BYTES

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad_events.jsonl"
HOSTILE = DATA / "bad_events_hostile.jsonl"
PROMPT_MARKER = "PROMPT-SECRET-"

NEAR = 1_000_000  # bytes: a near-1 MiB input, under the event limit, over a Kafka record once quoted

_HEAD = {
    "ts": "2024-11-01T12:00:00Z",
    "tenant_id": "tenant-h",
    "user_id": "user-h",
    "provider": "bedrock",
    "model": "anthropic.claude-3-haiku-20240307-v1:0",
    "region": "us-east-1",
}
_USAGE = {"input_tokens": 1000, "output_tokens": 500}


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"h-{kind}", **_HEAD, "usage": dict(_USAGE), **extra}


def _pad_to(doc: dict[str, Any], size: int) -> bytes:
    """doc serialized, padded with insignificant whitespace after its first member to `size` bytes."""
    text = _dumps(doc).encode()
    cut = text.index(b",") + 1
    return text[:cut] + b" " * (size - len(text)) + text[cut:]


def _secret(kind: str) -> str:
    return f"{PROMPT_MARKER}{kind} "


def generated(name: str, kind: str | None = None) -> bytes:
    """The input a ``GENERATE_<NAME>`` line stands for; its event_id is ``h-<kind>``."""
    k = kind or name.removeprefix("GENERATE_").lower().replace("_", "-")
    if name == "GENERATE_OVERSIZE":  # bad_events.jsonl's: a valid event but for its size
        return _pad_to(_event("oversize"), MAX_EVENT_BYTES + 1024)
    if name == "GENERATE_OVER_LIMIT_BY_ONE":
        return _pad_to(_event(k), MAX_EVENT_BYTES + 1)
    if name == "GENERATE_TEXT_NEAR_1MIB":  # JSON, rejected for its text; the text must not be kept
        body = _secret(k) * (NEAR // len(_secret(k)))
        return _dumps(_event(k, text={"input": body})).encode()
    if name == "GENERATE_NOT_JSON_NEAR_1MIB":  # a truncated event whose text fills the line
        body = _secret(k) * (NEAR // len(_secret(k)))
        return _dumps(_event(k, text={"input": body})).encode()[:-10]
    if name == "GENERATE_UNKNOWN_FIELD_NEAR_1MIB":
        return _dumps(_event(k, blob="y" * NEAR, text={"input": _secret(k)})).encode()
    if name == "GENERATE_LONG_UNKNOWN_KEY":
        return _dumps(_event(k, **{"k" * (NEAR - 400): 1})).encode()
    if name == "GENERATE_MANY_LABELS":
        return _dumps(_event(k, labels={f"l{i}": "v" * 10 for i in range(40_000)})).encode()
    if name == "GENERATE_HUGE_IMAGE_ARRAY":
        doc = _event(k, model="stability.stable-diffusion-xl-v1", text={"input": _secret(k)})
        del doc["region"]
        doc["usage"] = {"images": [{"count": 1, "width": 512, "height": 512}] * 20_000}
        return _dumps(doc).encode()
    if name == "GENERATE_NAN_NEAR_1MIB":
        doc = _event(k, text={"input": _secret(k) * (NEAR // len(_secret(k)))})
        return _dumps(doc).encode().replace(b'"input_tokens":1000', b'"input_tokens":NaN')
    if name == "GENERATE_DEEP_NESTING":  # deeper than any JSON parser here accepts
        return _dumps(_event(k)).encode()[:-1] + b',"deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    if name == "GENERATE_NESTED_500":  # orjson takes it, pydantic's parser does not
        doc = _dumps(_event(k)).encode()[:-1]
        return doc + b',"deep":' + b'[{"text":"' + _secret(k).encode() + b'"},' + b"[" * 500 + b"]" * 500 + b"]}"
    if name == "GENERATE_INVALID_UTF8":
        return _dumps(_event(k, labels={"team": "XX"}, text={"input": _secret(k)})).encode().replace(b"XX", b"\xff\xfe")
    if name == "GENERATE_INVALID_UTF8_IN_TEXT":
        return _dumps(_event(k, text={"input": _secret(k) + "XX"})).encode().replace(b"XX", b"\xc3\x28")
    raise KeyError(name)


def load(path: Path) -> list[dict[str, Any]]:
    cases = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                case = json.loads(line)
                case["_line"] = n
                cases.append(case)
    return cases


def raw_bytes(case: dict[str, Any]) -> bytes:
    raw = case["raw"]
    if raw.startswith("GENERATE_"):
        return generated(raw, None if raw == "GENERATE_OVERSIZE" else case["kind"])
    return raw.encode("utf-8")


_ID = re.compile(r"[\x21-\x7e]{1,128}").fullmatch
_NAME = re.compile(r"[\x21-\x7e]{1,256}").fullmatch
_FIRST_ID = re.compile(rb'^(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"event_id"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')


def expected_ids(raw: bytes) -> tuple[str | None, str | None]:
    """The ids a rejection must report (the rule, written out independently): the input's
    top-level event_id / tenant_id when it is a valid id occurring once, read as leniently as
    Python's json reads (NaN, Infinity, 1e400, a BOM); for input even that cannot read, an
    event_id that is the object's first member."""
    try:
        pairs = json.loads(raw, object_pairs_hook=lambda p: ("pairs", p))
    except (ValueError, RecursionError):
        m = _FIRST_ID.match(raw)
        ident = m.group(1).decode("utf-8", "replace") if m else None
        return (ident if ident and _ID(ident) else None), None
    if not (isinstance(pairs, tuple) and pairs[0] == "pairs"):
        return None, None
    found: dict[str, list[Any]] = {}
    for k, v in pairs[1]:
        found.setdefault(k, []).append(v)

    def one(key: str, ok: Any) -> str | None:
        vals = found.get(key, [])
        return vals[0] if len(vals) == 1 and isinstance(vals[0], str) and ok(vals[0]) else None

    return one("event_id", _ID), one("tenant_id", _NAME)
