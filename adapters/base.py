"""What every adapter shares: the ids a payload lacks (Ids), the one error (ConversionError),
and strict readers of counts and times. An adapter returns billing_event v1 dicts (1.1 where the
payload uses a 1.1 bucket or field); it never guesses: a count that is missing where it is
required, negative, not an integer, or a bucket billing_event cannot hold is a ConversionError
with the reason. So are counts that do not add
up, a usage field the adapter does not know, and a tier, speed or region that is not on the
adapter's allow-list of values priced at the list price (a value is standard only when known to
be; docs/events-and-adapters.md lists each provider's fields with their sources)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.errors import InputRejected
from schemas.validate import quoted


class ConversionError(InputRejected):
    """A payload that cannot be converted exactly; the message is the reason kept with it."""


@dataclass(frozen=True)
class Ids:
    """What the caller knows that a payload does not carry (or overrides what it does)."""

    tenant_id: str | None = None
    user_id: str | None = None
    event_id: str | None = None  # default: the payload's response id, where it has one
    ts: str | None = None  # RFC 3339; default: the payload's time, where it has one
    model: str | None = None  # Bedrock Converse/InvokeModel replies do not name the model
    region: str | None = None
    mode: str = "realtime"
    labels: dict[str, str] = field(default_factory=dict)


def count(obj: Any, key: str, where: str, *, default: int | None = 0) -> int:
    """A token count: a JSON integer >= 0 (absent: `default`, or an error when it is None)."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{where} is not an object")
    if key not in obj or obj[key] is None:
        if default is None:
            raise ConversionError(f"{where}.{key} is missing")
        return default
    v = obj[key]
    if type(v) is not int or v < 0:
        raise ConversionError(f"{where}.{key} must be an integer >= 0, not {quoted(v)}")
    return v


def obj(parent: Any, key: str, where: str) -> dict[str, Any]:
    """A nested object, {} when absent."""
    v = parent.get(key) if isinstance(parent, dict) else None
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConversionError(f"{where}.{key} is not an object")
    return v


def known(o: dict[str, Any], allowed: Collection[str], where: str) -> None:
    """Every key of a usage object is one this adapter reads: a field it does not know may be a
    new way the provider bills (a tier, a tool, a modality), so it is refused, never ignored."""
    for k in o:
        if k not in allowed:
            raise ConversionError(
                f"{where} has the field {quoted(k)}, which this adapter does not know: it may change "
                "the bill, so the payload is refused rather than priced without it"
            )


def allowed(value: Any, standard: Collection[Any], where: str, why: str) -> None:
    """A tier, speed, region or mode judged from an allow-list: a value not known to be priced at
    the list price is refused with `why` (what it is priced at instead), never priced as standard."""
    if value not in standard:
        raise ConversionError(f"{where} {quoted(value)}: {why}")


def total(stated: Any, parts: int, where: str, what: str) -> None:
    """A provider's total that must equal the parts it is defined as (absent: nothing to check)."""
    if stated is None:
        return
    if type(stated) is not int or stated != parts:
        raise ConversionError(f"{where} {quoted(stated)} is not {what} ({parts}): the counts do not add up")


def derived_id(ids: Ids, event_id: str | None, suffix: str) -> Ids:
    """The ids of one of several events a payload gives: its event id (the caller's, else the
    payload's) with a suffix, so each is counted once and a retried payload gives the same ids."""
    base = ids.event_id or event_id
    if not base:
        raise ConversionError("the payload does not carry event_id: give it as an option")
    if len(base) + len(suffix) > 128:
        raise ConversionError(f"event_id {quoted(base)} is too long to number the events it gives ({suffix})")
    return replace(ids, event_id=base + suffix)


def from_unix(seconds: int | float, where: str) -> str:
    if type(seconds) not in (int, float) or seconds <= 0:
        raise ConversionError(f"{where} is not a unix time")
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # beyond the years a datetime holds
        raise ConversionError(f"{where} is not a unix time of a year 1-9999: {seconds}") from None


def event(
    provider: str,
    model: str | None,
    usage: Mapping[str, Any],
    ids: Ids,
    *,
    event_id: str | None,
    ts: str | None,
    service_tier: str | None = None,
    inference_geo: str | None = None,
) -> dict[str, Any]:
    """The billing_event: ids from the caller first, then the payload's; zero counts left out
    (and server-tool counts of zero). ``service_tier`` and ``inference_geo`` (billing_event 1.1)
    only when they are not the provider's standard: an event without them is a 1.0 event."""
    missing = [
        name
        for name, v in (
            ("tenant_id", ids.tenant_id),
            ("user_id", ids.user_id),
            ("event_id", ids.event_id or event_id),
            ("ts", ids.ts or ts),
            ("model", ids.model or model),
        )
        if not v
    ]
    if missing:
        raise ConversionError(f"the payload does not carry {', '.join(missing)}: give them as options")
    out: dict[str, Any] = {
        "event_id": ids.event_id or event_id,
        "ts": ids.ts or ts,
        "tenant_id": ids.tenant_id,
        "user_id": ids.user_id,
        "provider": provider,
        "model": ids.model or model,
        "usage": {k: v for k, v in usage.items() if v},
    }
    tools = out["usage"].get("server_tool_requests")
    if tools is not None:
        tools = {k: n for k, n in tools.items() if n}
        if tools:
            out["usage"]["server_tool_requests"] = tools
        else:
            del out["usage"]["server_tool_requests"]
    if ids.region:
        out["region"] = ids.region
    if ids.mode != "realtime":
        out["mode"] = ids.mode
    if service_tier is not None:
        out["service_tier"] = service_tier
    if inference_geo is not None:
        out["inference_geo"] = inference_geo
    if ids.labels:
        out["labels"] = dict(ids.labels)
    if not out["usage"]:
        raise ConversionError("the payload reports no tokens")
    return out
