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
is refused whole, with nothing written."""

from __future__ import annotations

from typing import Any

from adapters import ConversionError, Ids, convert_line
from schemas.redact import stored_payload
from schemas.validate import MAX_REASON, InvalidEvent, ids_of, parse_common, parse_event
from streams.ingest.tokens import Producer


def check(raw: bytes) -> None:
    """Raise InvalidEvent with the reason unless the stream's validator accepts the event."""
    if parse_common(raw) is None:  # never refuses: the full path decides what it does not accept
        parse_event(raw)


class Intake:
    """`source` names the request in refused records (endpoint and producer)."""

    def __init__(self, source: str, producer: Producer | None = None) -> None:
        self.source = source
        self.producer = producer or Producer("-")
        self.forbidden: list[int] = []  # indexes of items naming a tenant the producer may not write for
        self.events: list[bytes] = []
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
        if self.producer.tenants is not None:
            tenant_id = ids_of(raw)[1]
            if tenant_id is not None and not self._allowed(index, tenant_id):
                return
        reason = reason[:MAX_REASON]
        self.rejected.append({"index": index, "reason": reason})
        self.refusals.append((stored_payload(raw).encode(), f"{self.source}, index {index}: {reason}"[:MAX_REASON]))
