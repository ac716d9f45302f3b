"""One request's items judged before anything is written: the events to write, and each refusal
with its index and reason, for the answer and as a dead-letter record.

An event is judged by the stream's own validator (schemas/validate.py: the common shape's fast
path, else the full one), so what is written passes the checks the rating workers make of its
form; pricing (an unknown model or region) and lateness are still theirs to judge. A provider payload
is converted first (adapters/), each event it gives then judged the same way. A refusal's
dead-letter record is the one `meterstream produce --format` writes for the payloads it refuses
(streams.rating.agent.dead_letter_value of a rejection row without a source position, with a
`source` naming the request), so the payload is kept without prompt text (schemas/redact.py)."""

from __future__ import annotations

from typing import Any

from adapters import ConversionError, Ids, convert_line
from schemas.redact import stored_payload
from schemas.validate import MAX_REASON, InvalidEvent, ids_of, parse_common, parse_event
from streams.rating.agent import dead_letter_value


def check(raw: bytes) -> None:
    """Raise InvalidEvent with the reason unless the stream's validator accepts the event."""
    if parse_common(raw) is None:  # never refuses: the full path decides what it does not accept
        parse_event(raw)


class Intake:
    """`source` names the request in dead-letter records (endpoint and producer)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.events: list[bytes] = []
        self.rejected: list[dict[str, Any]] = []  # {"index", "reason"}, in index order
        self.dead_letters: list[bytes] = []

    def event(self, index: int, raw: bytes, where: str = "") -> None:
        try:
            check(raw)
        except InvalidEvent as exc:
            self._refuse(index, raw, where + exc.reason, exc.event_id, ids_of(raw)[1])
        else:
            self.events.append(raw)

    def payload(self, index: int, fmt: str, raw: bytes, ids: Ids) -> None:
        try:
            events = convert_line(fmt, raw, ids)
        except ConversionError as exc:
            self._refuse(index, raw, f"not converted ({fmt}): {exc}", None, ids.tenant_id)
            return
        for k, event in enumerate(events):
            self.event(index, event, f"event {k} of the payload: " if len(events) > 1 else "")

    def _refuse(self, index: int, raw: bytes, reason: str, event_id: str | None, tenant_id: str | None) -> None:
        reason = reason[:MAX_REASON]
        self.rejected.append({"index": index, "reason": reason})
        self.dead_letters.append(dead_letter_value({
            "src_topic": None, "src_partition": None, "src_offset": None, "src_index": None,
            "source": f"{self.source}, index {index}", "event_id": event_id, "tenant_id": tenant_id,
            "reason": reason, "payload": stored_payload(raw)}))
