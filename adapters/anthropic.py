"""Anthropic Messages (``type: "message"``).

``usage``:
  input_tokens                   input AFTER the last cache breakpoint: EXCLUDES cache -> input_tokens
  cache_read_input_tokens        cache reads                                           -> cached_input_tokens
  cache_creation_input_tokens    cache writes (all TTLs)                               -> cache_write_tokens
  cache_creation.ephemeral_5m_input_tokens / ephemeral_1h_input_tokens: the split of the writes
                                 by TTL; 1-hour writes are priced higher than 5-minute ones and
                                 billing_event v1 has one cache-write bucket: refused when > 0
  output_tokens                  output (thinking included)                            -> output_tokens
  service_tier                   standard -> realtime; batch -> mode batch (the catalog's batch
                                 factor); priority -> refused (priced by commitment, not the list)
  speed                          standard; fast -> refused (priced at a multiple the catalog lacks)
  inference_geo                  global; another (US-only inference, priced x1.1) -> refused
  server_tool_use                web_search_requests > 0 -> refused (billed per search: no
                                 dimension in billing_event v1); web_fetch_requests: tokens only
Any other value of these is refused too: a price the catalog does not state is never assumed.
event_id = ``id``, model = ``model``; a Message carries no time: ``ts`` is an option."""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.base import ConversionError, Ids, count, event, obj
from schemas.validate import quoted

TIERS = {None: "realtime", "standard": "realtime", "batch": "batch"}


def _priced_as_listed(u: dict[str, Any], ids: Ids) -> Ids:
    """The ids with the mode the usage's service tier names; ConversionError for a tier, speed,
    inference region or server tool the catalog prices apart."""
    tier = u.get("service_tier")
    if tier not in TIERS:
        raise ConversionError(
            f"service_tier {quoted(tier)}: only standard and batch are priced by the catalog "
            "(Priority Tier is priced by commitment)"
        )
    mode = TIERS[tier]
    if tier is not None and ids.mode != "realtime" and ids.mode != mode:
        raise ConversionError(f"mode {ids.mode} was given, but the message's service_tier is {tier}")
    if u.get("speed") not in (None, "standard"):
        raise ConversionError(
            f"speed {quoted(u.get('speed'))}: fast mode is priced at a multiple the catalog does not state"
        )
    if u.get("inference_geo") not in (None, "global"):
        raise ConversionError(
            f"inference_geo {quoted(u.get('inference_geo'))}: inference kept in one geography "
            "is priced at a multiple (x1.1 for US-only) the catalog does not state"
        )
    tools = obj(u, "server_tool_use", "usage")
    if searches := count(tools, "web_search_requests", "usage.server_tool_use"):
        raise ConversionError(
            f"{searches} web search requests: billed per search, and billing_event v1 has no dimension for them"
        )
    count(tools, "web_fetch_requests", "usage.server_tool_use")  # checked; web fetch costs its tokens only
    return dataclasses.replace(ids, mode=mode) if tier is not None and ids.mode == "realtime" else ids


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    if payload.get("type") != "message":
        raise ConversionError(f"not an Anthropic message (type: {quoted(payload.get('type'))})")
    u = obj(payload, "usage", "message")
    if not u:
        raise ConversionError("the message has no usage")
    writes = count(u, "cache_creation_input_tokens", "usage")
    split = obj(u, "cache_creation", "usage")
    if split:
        five, hour = (
            count(split, "ephemeral_5m_input_tokens", "usage.cache_creation"),
            count(split, "ephemeral_1h_input_tokens", "usage.cache_creation"),
        )
        if five + hour != writes:
            raise ConversionError(
                f"cache_creation splits into {five} + {hour} tokens, not the cache_creation_input_tokens {writes}"
            )
        if hour:
            raise ConversionError(
                f"{hour} 1-hour cache-write tokens: priced apart from 5-minute writes, "
                "which billing_event v1 cannot tell apart"
            )
    ids = _priced_as_listed(u, ids)
    usage = {
        "input_tokens": count(u, "input_tokens", "usage", default=None),
        "cached_input_tokens": count(u, "cache_read_input_tokens", "usage"),
        "cache_write_tokens": writes,
        "output_tokens": count(u, "output_tokens", "usage", default=None),
    }
    return [event("anthropic", payload.get("model"), usage, ids, event_id=payload.get("id"), ts=None)]
