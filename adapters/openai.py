"""OpenAI Chat Completions (``object: "chat.completion"``) and Responses (``object: "response"``).

Chat Completions ``usage``:
  prompt_tokens                              input, INCLUDING cached and audio input tokens
  prompt_tokens_details.cached_tokens        cache reads       -> cached_input_tokens
  prompt_tokens_details.audio_tokens         audio input       -> refused (no audio-token price)
  completion_tokens                          output, INCLUDING reasoning and audio output
  completion_tokens_details.reasoning_tokens reasoning         -> reasoning_tokens (a count, priced as output)
  completion_tokens_details.audio_tokens     audio output      -> refused
input_tokens = prompt_tokens - cached_tokens; output_tokens = completion_tokens. OpenAI writes no
separate cache-write count (its caching has no write price). Responses: ``input_tokens``,
``input_tokens_details.cached_tokens``, ``output_tokens``, ``output_tokens_details.reasoning_tokens``,
the same rules. ``service_tier`` (the tier that served it): default, or absent; flex, priority and
scale are priced apart from the list prices and refused. event_id = ``id``, ts = ``created`` /
``created_at``, model = ``model``."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, count, event, from_unix, obj
from schemas.validate import quoted


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    kind = payload.get("object")
    u = obj(payload, "usage", "response")
    if not u:
        raise ConversionError("the response has no usage (streamed without include_usage?)")
    if kind == "response":
        inp, out = "input_tokens", "output_tokens"
        idet, odet = obj(u, "input_tokens_details", "usage"), obj(u, "output_tokens_details", "usage")
        created = payload.get("created_at")
    elif kind in ("chat.completion", "chat.completion.chunk"):
        inp, out = "prompt_tokens", "completion_tokens"
        idet, odet = obj(u, "prompt_tokens_details", "usage"), obj(u, "completion_tokens_details", "usage")
        created = payload.get("created")
    else:
        raise ConversionError(f"not an OpenAI chat.completion or response object (object: {quoted(kind)})")
    tier = payload.get("service_tier")
    if tier not in (None, "default"):
        raise ConversionError(
            f"service_tier {quoted(tier)}: only the default tier is priced by the catalog "
            "(flex, priority and scale processing are priced apart)"
        )
    prompt, completion = count(u, inp, "usage", default=None), count(u, out, "usage", default=None)
    cached = count(idet, "cached_tokens", "usage.input details")
    reasoning = count(odet, "reasoning_tokens", "usage.output details")
    audio = count(idet, "audio_tokens", "usage.input details") + count(odet, "audio_tokens", "usage.output details")
    if audio:
        raise ConversionError(
            f"{audio} audio tokens: billing_event v1 has no audio-token bucket, and no catalog prices them"
        )
    if cached > prompt:
        raise ConversionError(f"cached_tokens ({cached}) exceed {inp} ({prompt}), which include them")
    if reasoning > completion:
        raise ConversionError(f"reasoning_tokens ({reasoning}) exceed {out} ({completion}), which include them")
    usage = {
        "input_tokens": prompt - cached,
        "cached_input_tokens": cached,
        "output_tokens": completion,
        "reasoning_tokens": reasoning,
    }
    return [
        event(
            "openai",
            payload.get("model"),
            usage,
            ids,
            event_id=payload.get("id"),
            ts=from_unix(created, "created") if created is not None else None,
        )
    ]
