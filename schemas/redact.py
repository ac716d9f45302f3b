"""What of a rejected input may be stored: never prompt text, never much, never raw.

A rejected input is kept with its reason (dead-letter topic, rejected_events). Its payload is:

- strict JSON (what orjson reads): the input re-serialized with the value of every prompt-like
  key (``text``, ``messages``, ``prompt``, ``content``, ... in any case, at any depth, in
  objects and arrays alike) replaced by ``"<removed>"``; strings longer than any valid field
  (256 characters) replaced by their length; anything after a ``"text"``-like key inside a
  string cut (JSON held in a string); nesting beyond 16 levels replaced; non-printable
  characters (controls, bidi) written ``<U+XXXX>``. Over MAX_PAYLOAD bytes even so: as below.
- anything else (not JSON, NaN, a BOM, invalid UTF-8, truncated): ``{"not_stored": {"why",
  "sha256", "bytes", "prefix"}}``: the input's SHA-256, its length and its first 64 bytes, cut
  at the first backslash or prompt-like key and shown printable.

So a stored payload is at most MAX_PAYLOAD bytes, and every record that carries one is bounded.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from schemas.billing_event import FORBIDDEN_CHARS
from schemas.validate import visible

PROMPT_KEYS = frozenset({
    "text", "texts", "message", "messages", "prompt", "prompts", "content", "contents", "completion",
    "completions", "input", "inputs", "output", "outputs", "system", "instructions", "query", "response",
    "responses", "choices",
})
REMOVED = "<removed>"
MAX_PAYLOAD = 16 * 1024  # bytes of a stored payload
MAX_STRING = 256         # characters: no valid string field is longer (text is removed)
MAX_KEY = 64             # characters: no valid key is longer
MAX_DEPTH = 16           # the schema nests 4 levels
PREFIX = 64              # bytes of a non-JSON input kept

_KEYS = "|".join(sorted(PROMPT_KEYS, key=len, reverse=True))
_PROMPT_IN_TEXT = re.compile(rf'(?i)"(?:{_KEYS})\\?"')            # a prompt key inside a string
_PROMPT_IN_RAW = re.compile(rf'(?i)"(?:{_KEYS})\\?"|\\'.encode())  # ... or any escape, in raw bytes


def _is_prompt_key(key: str) -> bool:
    return FORBIDDEN_CHARS.sub("", key).strip().casefold() in PROMPT_KEYS


def _string(s: str) -> str:
    if len(s) > MAX_STRING:
        return f"<removed: {len(s)} characters>"
    m = _PROMPT_IN_TEXT.search(s)
    if m is not None:
        s = s[: m.start()] + REMOVED
    return visible(s)


def _key(k: str, i: int) -> str:
    return f"<key of {len(k)} characters #{i}>" if len(k) > MAX_KEY else visible(k)


def _scrub(v: Any, depth: int) -> Any:
    t = type(v)
    if t is str:
        return _string(v)
    if t is dict or t is list:
        if depth >= MAX_DEPTH:
            return f"<removed: nested deeper than {MAX_DEPTH} levels>"
        if t is list:
            return [_scrub(x, depth + 1) for x in v]
        return {_key(k, i): REMOVED if _is_prompt_key(k) else _scrub(x, depth + 1) for i, (k, x) in enumerate(v.items())}
    return v  # number, true, false, null


def digest(raw: bytes, why: str) -> str:
    """The stored form of an input not kept as JSON: its hash, its length and a short prefix."""
    head = raw[:PREFIX]
    m = _PROMPT_IN_RAW.search(head)
    if m is not None:
        head = head[: m.start()]
    prefix = visible(head.decode("utf-8", "backslashreplace"))
    return orjson.dumps({"not_stored": {"why": why, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                                        "prefix": prefix}}).decode()


def stored_payload(raw: bytes | str) -> str:
    """The payload a rejection keeps (the module docstring says what it is)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return digest(data, "not JSON")
    text = orjson.dumps(_scrub(doc, 0))
    if len(text) > MAX_PAYLOAD:
        return digest(data, f"over {MAX_PAYLOAD} bytes without its prompt fields")
    return text.decode()
