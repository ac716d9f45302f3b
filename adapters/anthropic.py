"""Anthropic Messages (``type: "message"``).

``usage``:
  input_tokens                   input AFTER the last cache breakpoint: EXCLUDES cache -> input_tokens
  cache_read_input_tokens        cache reads                                           -> cached_input_tokens
  cache_creation_input_tokens    cache writes (all TTLs)                               -> cache_write_tokens
  cache_creation.ephemeral_5m_input_tokens / ephemeral_1h_input_tokens: the split of the writes
                                 by TTL; 1-hour writes are priced higher than 5-minute ones and
                                 billing_event v1 has one cache-write bucket: refused when > 0
  output_tokens                  output (thinking included)                            -> output_tokens
event_id = ``id``, model = ``model``; a Message carries no time: ``ts`` is an option."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, count, event, obj


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    if payload.get("type") != "message":
        raise ConversionError(f"not an Anthropic message (type: {str(payload.get('type'))[:40]!r})")
    u = obj(payload, "usage", "message")
    if not u:
        raise ConversionError("the message has no usage")
    writes = count(u, "cache_creation_input_tokens", "usage")
    split = obj(u, "cache_creation", "usage")
    if split:
        five, hour = (count(split, "ephemeral_5m_input_tokens", "usage.cache_creation"),
                      count(split, "ephemeral_1h_input_tokens", "usage.cache_creation"))
        if five + hour != writes:
            raise ConversionError(f"cache_creation splits into {five} + {hour} tokens, not the "
                                  f"cache_creation_input_tokens {writes}")
        if hour:
            raise ConversionError(f"{hour} 1-hour cache-write tokens: priced apart from 5-minute writes, "
                                  "which billing_event v1 cannot tell apart")
    usage = {"input_tokens": count(u, "input_tokens", "usage", default=None),
             "cached_input_tokens": count(u, "cache_read_input_tokens", "usage"),
             "cache_write_tokens": writes,
             "output_tokens": count(u, "output_tokens", "usage", default=None)}
    return [event("anthropic", payload.get("model"), usage, ids, event_id=payload.get("id"), ts=None)]
