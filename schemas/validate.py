"""Bytes in, a BillingEvent or a specific reason out."""

from __future__ import annotations

import datetime as dt

import orjson
from pydantic import ValidationError

from schemas.billing_event import MAX_EVENT_BYTES, MAX_FUTURE, BillingEvent


class InvalidEvent(ValueError):
    """An input that is not a valid billing_event v1; ``reason`` says why."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _event_id_of(raw: bytes | str) -> str | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("event_id"), str):
        return doc["event_id"][:128]
    return None


def parse_event(raw: bytes | str, *, now: dt.datetime | None = None) -> BillingEvent:
    """Validate one serialized event. ``now`` bounds how far ``ts`` may lie ahead."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")
    try:
        event = BillingEvent.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise InvalidEvent(f"not JSON: {exc.errors()[0]['msg']}") from None
        raise InvalidEvent(_reason(exc), _event_id_of(raw)) from None
    limit = (now or dt.datetime.now(dt.timezone.utc)) + MAX_FUTURE
    if event.ts > limit:
        raise InvalidEvent(
            f"ts: {event.ts.isoformat()} is more than {int(MAX_FUTURE.total_seconds() // 60)} "
            "minutes in the future",
            event.event_id,
        )
    return event
