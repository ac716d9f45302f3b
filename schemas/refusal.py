"""A refused payload on the events topic: what a producer could not convert into an event.

``meterstream produce --format`` (and the HTTP ingest) write a payload they could not convert
as one record under the header ``meterstream-refused: <reason>``, its value the payload as
stored for rejections (schemas/redact.py: no prompt text). The rating worker rejects it with
that reason, as it rejects a bad event: it reaches the dead-letter topic and the
``rejected_events`` table with its Kafka position. A producer can only refuse its own records:
the header never makes anything count."""

from __future__ import annotations

REFUSED_HEADER = "meterstream-refused"
MAX_REASON_BYTES = 1024


def refusal_header(reason: str) -> tuple[str, bytes]:
    return REFUSED_HEADER, reason.encode()[:MAX_REASON_BYTES]


def refusal_of(headers: object) -> str | None:
    """The reason of a refused-payload record, or None for any other record."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:  # type: ignore[union-attr]
        if k.lower() == REFUSED_HEADER:
            return bytes(v).decode("utf-8", "replace") or "refused by its producer"
    return None
