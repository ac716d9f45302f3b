"""A request body -> the items it carries (events or provider payloads), each byte for byte.

JSON Lines (``application/jsonl``, ``application/x-ndjson``): one item per line, its line ending
dropped; blank lines are skipped but keep their number. JSON (``application/json``): an array,
whose elements are cut out of the body as they were sent, or else the whole body as one item
(surrounding whitespace dropped). Each item comes with its index: its line number or its place
in the array (0-based). Only the framing is judged here: an item that is no valid event is still
an item (the validator gives the reason); a body that cannot be framed is a BadBody. An array
must be JSON to its end; NaN, Infinity and repeated keys frame (they are the validator's to
refuse)."""

from __future__ import annotations

import json

from schemas.validate import strip_line

JSON = "application/json"
JSON_LINES = frozenset({"application/jsonl", "application/x-ndjson"})
CONTENT_TYPES = JSON_LINES | {JSON}
_WS = " \t\r\n"  # JSON's whitespace
_DECODER = json.JSONDecoder()


class BadBody(ValueError):
    """A body that cannot be split into items; the message says why."""


def items(raw: bytes, content_type: str) -> list[tuple[int, bytes]]:
    """(index, item) of every item in the body."""
    if content_type in JSON_LINES:
        out = [(i, strip_line(line)) for i, line in enumerate(raw.split(b"\n")) if line.strip()]
    elif raw.lstrip(_WS.encode())[:1] == b"[":
        out = _elements(raw)
    else:
        one = raw.strip(_WS.encode())
        out = [(0, one)] if one else []
    if not out:
        raise BadBody("the body holds nothing to ingest")
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _elements(raw: bytes) -> list[tuple[int, bytes]]:
    """The elements of a JSON array, as the bytes they were sent as. Invalid UTF-8 is carried
    through (surrogateescape) for the validator to refuse."""
    text = raw.decode("utf-8", "surrogateescape")
    i = _skip(text, _skip(text, 0) + 1)  # past "["
    out: list[tuple[int, bytes]] = []
    if text[i:i + 1] != "]":
        while True:
            try:
                _, end = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                raise BadBody(f"element {len(out)} of the array is not JSON: {exc.msg} (character {exc.pos})") from None
            except RecursionError:
                raise BadBody(f"element {len(out)} of the array is nested too deeply") from None
            out.append((len(out), text[i:end].encode("utf-8", "surrogateescape")))
            i = _skip(text, end)
            if text[i:i + 1] == ",":
                i = _skip(text, i + 1)
                continue
            if text[i:i + 1] == "]":
                break
            raise BadBody(f"the array is not closed after element {len(out) - 1} (character {i})")
    if _skip(text, i + 1) != len(text):
        raise BadBody("the body goes on after its array")
    return out
