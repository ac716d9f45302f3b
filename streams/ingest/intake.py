"""One request's items judged before anything is written: the events to write, and each refusal
with its index and reason, for the answer and as a refused record (schemas/refusal.py).

An event is judged by the stream's own validator (schemas/validate.py: the common shape's fast
path, else the full one), so what is written passes the checks the rating workers make of its
form; pricing (an unknown model or region) and lateness are still theirs to judge. A provider payload
is converted first (adapters/), each event it gives then judged the same way. A refusal is
written as `meterstream produce --format` writes the payloads it refuses: the payload as stored
for rejections (schemas/redact.py: no prompt text) under the header ``meterstream-refused``
with the reason and where it came from (the request and the index). The rater rejects it into
the dead-letter topic and ``rejected_events``.

A producer whose token is limited to some tenants (tokens.py) may not write for another: an
item naming another tenant, as an event or as a refused payload, is `forbidden` and the request
is refused whole, with nothing written. For a refused item, every tenant it may be filed under
is checked: each top-level ``tenant_id`` it carries (a repeated key: every occurrence), and the
one the rater reads from the stored payload it would be written as.

Then `fit` (once the events topic's record limit is known, writer.py): an event whose record
would be larger than the broker accepts is refused like any other (its own item only), and a
refused record that would not fit is only reported, never written."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from adapters import ConversionError, Ids, convert_line
from schemas.redact import stored_payload
from schemas.validate import MAX_REASON, InvalidEvent, ids_of, parse_common, parse_event
from streams.ingest.tokens import Producer


def check(raw: bytes) -> None:
    """Raise InvalidEvent with the reason unless the stream's validator accepts the event."""
    if parse_common(raw) is None:  # never refuses: the full path decides what it does not accept
        parse_event(raw)


class _Object(list):
    """A JSON object as its (key, value) pairs, repeated keys kept."""


def _as_text(s: str) -> str:  # numbers are not converted: no int digit limit, no work
    return s


def top_level_tenants(raw: bytes) -> list[Any]:
    """Every value of a top-level ``tenant_id`` key of the item, repeated keys each (Python's json
    reads it, NaN and all); [] when it is not a JSON object or cannot be read."""
    try:
        doc = json.loads(
            raw, object_pairs_hook=_Object, parse_int=_as_text, parse_float=_as_text, parse_constant=_as_text
        )
    except (ValueError, RecursionError):
        return []
    return [v for k, v in doc if k == "tenant_id"] if isinstance(doc, _Object) else []


class Intake:
    """`source` names the request in refused records (endpoint and producer)."""

    def __init__(self, source: str, producer: Producer | None = None) -> None:
        self.source = source
        self.producer = producer or Producer("-")
        self.forbidden: list[int] = []  # indexes of items naming a tenant the producer may not write for
        self.events: list[bytes] = []
        self._placed: list[tuple[int, str]] = []  # each event's (index, where in its payload)
        self.rejected: list[dict[str, Any]] = []  # {"index", "reason"}, in index order
        self.refusals: list[tuple[bytes, str]] = []  # (stored payload, reason with its source)

    def event(self, index: int, raw: bytes, where: str = "") -> None:
        try:
            check(raw)
        except InvalidEvent as exc:
            self._refuse(index, raw, where + exc.reason)
            return
        if self.producer.tenants is None or self._allowed(index, ids_of(raw)[1]):
            self.events.append(raw)
            self._placed.append((index, where))

    def _allowed(self, index: int, tenant_id: str | None) -> bool:
        """Whether the producer may write for the item's tenant; if not, the item is forbidden."""
        if self.producer.may_write(tenant_id):
            return True
        if not self.forbidden or self.forbidden[-1] != index:
            self.forbidden.append(index)
        return False

    def payload(self, index: int, fmt: str, raw: bytes, ids: Ids) -> None:
        try:
            events = convert_line(fmt, raw, ids)
        except ConversionError as exc:
            self._refuse(index, raw, f"not converted ({fmt}): {exc}")
            return
        for k, event in enumerate(events):
            self.event(index, event, f"event {k} of the payload: " if len(events) > 1 else "")

    def _refuse(self, index: int, raw: bytes, reason: str) -> None:
        stored = stored_payload(raw).encode()
        if self.producer.tenants is not None:
            named: list[str | None] = [t for t in top_level_tenants(raw) if isinstance(t, str)]
            named.append(ids_of(stored)[1])  # the tenant the rater files the refused record under
            if any(t is not None and not self._allowed(index, t) for t in named):
                return
        reason = reason[:MAX_REASON]
        self.rejected.append({"index": index, "reason": reason})
        self.refusals.append((stored, f"{self.source}, index {index}: {reason}"[:MAX_REASON]))

    def fit(self, too_large: Callable[[bytes], str | None], refusal_fits: Callable[[bytes, str], bool]) -> None:
        """Refuse each event `too_large` gives a reason for (its record would be over the broker's
        limit) as any refused item; then keep only the refused records that `refusal_fits` (the
        others stay in `rejected`, reported only)."""
        kept: list[bytes] = []
        placed: list[tuple[int, str]] = []
        moved = False
        for raw, (index, where) in zip(self.events, self._placed):
            why = too_large(raw)
            if why is None:
                kept.append(raw)
                placed.append((index, where))
            else:
                self._refuse(index, raw, where + why)
                moved = True
        self.events, self._placed = kept, placed
        if moved:  # in index order again (stable: an item's own refusals keep theirs)
            order = sorted(range(len(self.rejected)), key=lambda i: self.rejected[i]["index"])
            self.rejected = [self.rejected[i] for i in order]
            self.refusals = [self.refusals[i] for i in order]
        self.refusals = [(value, reason) for value, reason in self.refusals if refusal_fits(value, reason)]
