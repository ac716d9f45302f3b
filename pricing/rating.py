"""One raw input -> a priced event or a rejection with its reason. Shared by the `price`
command and the stream worker, so both reject exactly the same inputs for the same reasons."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pricing.catalog import Catalog
from pricing.engine import price_common, price_event
from pricing.errors import PricingError
from schemas.records import PricedEvent
from schemas.validate import InvalidEvent, parse_common, parse_event


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    event_id: str | None


def rate(raw: bytes | str, catalog: Catalog, *, now: dt.datetime | None = None) -> PricedEvent | Rejection:
    common = parse_common(raw, now)  # fast path: the usual shapes, same results; None -> full path
    if common is not None:
        priced = price_common(*common, catalog)
        if priced is not None:
            return priced
    try:
        event = parse_event(raw, now=now)
    except InvalidEvent as exc:
        return Rejection(exc.reason, exc.event_id)
    try:
        return price_event(event, catalog)
    except PricingError as exc:
        return Rejection(exc.reason, event.event_id)
