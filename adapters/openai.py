"""OpenAI Chat Completions (``object: "chat.completion"``) and Responses (``object: "response"``).
Shapes: openai-python ``src/openai/types/completion_usage.py``, ``types/chat/chat_completion.py``,
``types/responses/response_usage.py``, ``types/responses/response.py``,
``types/responses/response_output_item.py``; docs/events-and-adapters.md has the table.

Chat Completions ``usage``:
  prompt_tokens                              input, INCLUDING cached, audio and image input tokens
  prompt_tokens_details.cached_tokens        cache reads       -> cached_input_tokens
  prompt_tokens_details.cache_write_tokens   cache writes: billed apart on gpt-5.6 and later, and
                                             "unadjusted" (how they overlap cached_tokens is not
                                             documented) -> refused when > 0
  prompt_tokens_details.audio_tokens / image_tokens  -> refused when > 0 (priced apart per model)
  completion_tokens                          output, INCLUDING reasoning, audio and rejected predictions
  completion_tokens_details.reasoning_tokens reasoning         -> reasoning_tokens (a count, priced as output)
  completion_tokens_details.audio_tokens     audio output      -> refused when > 0
  total_tokens                               must be prompt_tokens + completion_tokens
input_tokens = prompt_tokens - cached_tokens; output_tokens = completion_tokens. Responses:
``input_tokens``, ``input_tokens_details.cached_tokens`` / ``cache_write_tokens``,
``output_tokens``, ``output_tokens_details.reasoning_tokens``, ``total_tokens``, the same rules;
an ``output`` item other than a message, reasoning or a call of the caller's own tool
(function_call, custom_tool_call) is a built-in tool billed per call or per container (web
search, file search, code interpreter, image generation...) -> refused. ``service_tier`` (the tier
that served it): default, or absent; any other (flex, priority, scale...) is priced apart from the
list prices and refused. Any other field in ``usage`` is refused. event_id = ``id``, ts =
``created`` / ``created_at``, model = ``model``."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, allowed, count, event, from_unix, known, obj, total
from schemas.validate import quoted

CHAT = {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"}
CHAT_IN = {"cached_tokens", "cache_write_tokens", "audio_tokens", "image_tokens", "text_tokens"}
CHAT_OUT = {
    "reasoning_tokens",
    "audio_tokens",
    "accepted_prediction_tokens",
    "rejected_prediction_tokens",
    "text_tokens",
}
RESPONSE = {"input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details"}
RESPONSE_IN = {"cached_tokens", "cache_write_tokens"}
RESPONSE_OUT = {"reasoning_tokens"}
# Responses output items that cost their tokens only: the model's own output, and calls of tools
# the caller runs itself. Built-in tools are billed per call or container on top.
TOKENS_ONLY = {"message", "reasoning", "function_call", "custom_tool_call"}


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    kind = payload.get("object")
    u = obj(payload, "usage", "response")
    if not u:
        raise ConversionError("the response has no usage (streamed without include_usage?)")
    if kind == "response":
        inp, out = "input_tokens", "output_tokens"
        keys, in_keys, out_keys = RESPONSE, RESPONSE_IN, RESPONSE_OUT
        idet_name, odet_name = "input_tokens_details", "output_tokens_details"
        created = payload.get("created_at")
        items = payload.get("output") or []
        if not isinstance(items, list):
            raise ConversionError("output is not an array")
        for i, item in enumerate(items):
            kind_of = item.get("type") if isinstance(item, dict) else None
            allowed(
                kind_of,
                TOKENS_ONLY,
                f"output[{i}].type",
                "a built-in tool, billed per call or per container on top of tokens, which billing_event v1 "
                "has no dimension for",
            )
    elif kind in ("chat.completion", "chat.completion.chunk"):
        inp, out = "prompt_tokens", "completion_tokens"
        keys, in_keys, out_keys = CHAT, CHAT_IN, CHAT_OUT
        idet_name, odet_name = "prompt_tokens_details", "completion_tokens_details"
        created = payload.get("created")
    else:
        raise ConversionError(f"not an OpenAI chat.completion or response object (object: {quoted(kind)})")
    allowed(
        payload.get("service_tier"),
        (None, "default"),
        "service_tier",
        "only the default tier is priced by the catalog (flex, priority, scale and other tiers are priced apart)",
    )
    known(u, keys, "usage")
    idet, odet = obj(u, idet_name, "usage"), obj(u, odet_name, "usage")
    known(idet, in_keys, f"usage.{idet_name}")
    known(odet, out_keys, f"usage.{odet_name}")
    prompt, completion = count(u, inp, "usage", default=None), count(u, out, "usage", default=None)
    total(u.get("total_tokens"), prompt + completion, "usage.total_tokens", f"{inp} + {out}")
    cached = count(idet, "cached_tokens", f"usage.{idet_name}")
    reasoning = count(odet, "reasoning_tokens", f"usage.{odet_name}")
    audio = count(idet, "audio_tokens", f"usage.{idet_name}") + count(odet, "audio_tokens", f"usage.{odet_name}")
    if audio:
        raise ConversionError(
            f"{audio} audio tokens: billing_event v1 has no audio-token bucket, and no catalog prices them"
        )
    if images := count(idet, "image_tokens", f"usage.{idet_name}"):
        raise ConversionError(
            f"{images} image input tokens (usage.{idet_name}.image_tokens): priced per model apart from text "
            "input, which billing_event v1 cannot tell apart"
        )
    if writes := count(idet, "cache_write_tokens", f"usage.{idet_name}"):
        raise ConversionError(
            f"{writes} cache-write tokens (usage.{idet_name}.cache_write_tokens): OpenAI bills cache writes apart "
            "from input on gpt-5.6 and later models and states them unadjusted, without saying how they overlap "
            "cached_tokens; billing_event v1 cannot hold them exactly"
        )
    for name in ("accepted_prediction_tokens", "rejected_prediction_tokens", "text_tokens"):
        if count(odet, name, f"usage.{odet_name}") > completion:
            raise ConversionError(f"{name} exceed {out} ({completion}), which include them")
    if count(idet, "text_tokens", f"usage.{idet_name}") > prompt:
        raise ConversionError(f"text_tokens exceed {inp} ({prompt}), which include them")
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
