"""A refused payload on the events topic: what a producer could not convert into an event.

``meterstream produce --format`` (and the HTTP ingest) write a payload they could not convert
as one record under the header ``meterstream-refused: <reason>``, its value the payload as
stored for rejections (schemas/redact.py: no prompt text). The rating worker rejects it with
that reason, as it rejects a bad event: it reaches the dead-letter topic and the
``rejected_events`` table with its Kafka position. A producer can only refuse its own records:
the header never makes anything count."""

from __future__ import annotations

from schemas.record import MAX_REASON_BYTES, REFUSED, read_kind

REFUSED_HEADER = REFUSED


def refusal_header(reason: str) -> tuple[str, bytes]:
    return REFUSED_HEADER, reason.encode()[:MAX_REASON_BYTES]


def refusal_of(headers: object) -> str | None:
    """The reason of a refused-payload record (control characters written out), or None for any
    other record (schemas/record.py)."""
    return read_kind(headers).refused
