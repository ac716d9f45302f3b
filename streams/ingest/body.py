"""A request body -> the items it carries (events or provider payloads), each byte for byte.

JSON Lines (``application/jsonl``, ``application/x-ndjson``): one item per line, its line ending
dropped; blank lines are skipped but keep their number. JSON (``application/json``): an array,
whose elements are cut out of the body as they were sent, or else the whole body as one item
(surrounding whitespace dropped). Each item comes with its index: its line number or its place
in the array (0-based). Only the framing is judged here: an item that is no valid event is still
an item (the validator gives the reason); a body that cannot be framed is a BadBody. An array
must be JSON to its end; NaN, Infinity, repeated keys and numbers of any length frame (they are
the validator's to refuse). A body of more than MAX_ITEMS items is TooMany, found as soon as
item MAX_ITEMS + 1 is (the rest is not framed)."""

from __future__ import annotations

import json
import re

from schemas.batch import MAX_BATCH_EVENTS
from schemas.errors import InputRejected
from schemas.validate import strip_line

JSON = "application/json"
JSON_LINES = frozenset({"application/jsonl", "application/x-ndjson"})
CONTENT_TYPES = JSON_LINES | {JSON}
_WS = " \t\r\n"  # JSON's whitespace
MAX_ITEMS = MAX_BATCH_EVENTS  # items a request may carry (schemas/batch.py: what one record may)


def _as_text(s: str) -> str:  # a number is framed, never converted: no int digit limit, no work
    return s


# Framing needs only where each element ends: numbers and constants are kept as text.
_DECODER = json.JSONDecoder(parse_int=_as_text, parse_float=_as_text, parse_constant=_as_text)
# A line that is not blank (bytes.strip()'s whitespace), from its start to its end: anchored at
# line starts, with no overlap between the classes, so finding them is linear in the body.
_LINE = re.compile(rb"(?m)^[ \t\r\x0b\x0c]*[^ \t\r\n\x0b\x0c][^\n]*")


class BadBody(InputRejected):
    """A body that cannot be split into items; the message says why."""


class TooMany(BadBody):
    """A body of more than MAX_ITEMS items."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body holds more than {limit} items: send them in several requests")


def items(raw: bytes, content_type: str, max_items: int = MAX_ITEMS) -> list[tuple[int, bytes]]:
    """(index, item) of every item in the body; TooMany past `max_items` items."""
    if content_type in JSON_LINES:
        out = _lines(raw, max_items)
    elif raw.lstrip(_WS.encode())[:1] == b"[":
        out = _elements(raw, max_items)
    else:
        one = raw.strip(_WS.encode())
        out = [(0, one)] if one else []
    if not out:
        raise BadBody("the body holds nothing to ingest")
    return out


def _lines(raw: bytes, max_items: int) -> list[tuple[int, bytes]]:
    """The lines that are not blank, with their line numbers (blank lines counted)."""
    out: list[tuple[int, bytes]] = []
    line, seen = 0, 0
    for m in _LINE.finditer(raw):
        if len(out) == max_items:
            raise TooMany(max_items)
        start = m.start()
        line += raw.count(b"\n", seen, start)
        seen = start
        out.append((line, strip_line(m.group())))
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _elements(raw: bytes, max_items: int) -> list[tuple[int, bytes]]:
    """The elements of a JSON array, as the bytes they were sent as. Invalid UTF-8 is carried
    through (surrogateescape) for the validator to refuse."""
    text = raw.decode("utf-8", "surrogateescape")
    i = _skip(text, _skip(text, 0) + 1)  # past "["
    out: list[tuple[int, bytes]] = []
    if text[i : i + 1] != "]":
        while True:
            try:
                _, end = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                raise BadBody(f"element {len(out)} of the array is not JSON: {exc.msg} (character {exc.pos})") from None
            except RecursionError:
                raise BadBody(f"element {len(out)} of the array is nested too deeply") from None
            except ValueError as exc:  # whatever else Python's json refuses: still the body's reason
                raise BadBody(f"element {len(out)} of the array cannot be read: {str(exc)[:200]}") from None
            if len(out) == max_items:
                raise TooMany(max_items)
            out.append((len(out), text[i:end].encode("utf-8", "surrogateescape")))
            i = _skip(text, end)
            if text[i : i + 1] == ",":
                i = _skip(text, i + 1)
                continue
            if text[i : i + 1] == "]":
                break
            raise BadBody(f"the array is not closed after element {len(out) - 1} (character {i})")
    if _skip(text, i + 1) != len(text):
        raise BadBody("the body goes on after its array")
    return out
