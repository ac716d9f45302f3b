"""OpenAI Chat Completions (``object: "chat.completion"``), Responses (``object: "response"``) and
embeddings (``object: "list"``). Shapes: openai-python ``src/openai/types/completion_usage.py``,
``types/chat/chat_completion.py``, ``types/responses/response_usage.py``,
``types/responses/response.py``, ``types/responses/response_output_item.py``,
``types/create_embedding_response.py``; docs/events-and-adapters.md has the table.

Chat Completions ``usage``:
  prompt_tokens                              input, INCLUDING cached, audio and image input tokens
  prompt_tokens_details.cached_tokens        cache reads       -> cached_input_tokens
  prompt_tokens_details.cache_write_tokens   cache writes: billed apart on gpt-5.6 and later, and
                                             "unadjusted" (how they overlap cached_tokens is not
                                             documented) -> refused when > 0
  prompt_tokens_details.audio_tokens         audio input       -> audio_input_tokens (1.1)
  prompt_tokens_details.image_tokens         image input       -> image_input_tokens (1.1)
                                             (with cached tokens as well: refused, the overlap is
                                             not documented)
  completion_tokens                          output, INCLUDING reasoning, audio and rejected predictions
  completion_tokens_details.reasoning_tokens reasoning         -> reasoning_tokens (a count, priced as output)
  completion_tokens_details.audio_tokens     audio output      -> audio_output_tokens (1.1)
  total_tokens                               must be prompt_tokens + completion_tokens
input_tokens = prompt_tokens - cached - audio - image input tokens; output_tokens =
completion_tokens - audio output tokens. A catalog product without a price for a bucket refuses
the event (gpt-4o has no audio price: gpt-audio does). Responses:
``input_tokens``, ``input_tokens_details.cached_tokens`` / ``cache_write_tokens``,
``output_tokens``, ``output_tokens_details.reasoning_tokens``, ``total_tokens``, the same rules;
an ``output`` item other than a message, reasoning or a call of the caller's own tool
(function_call, custom_tool_call) is a built-in tool billed per call or per container (web
search, file search, code interpreter, image generation...) -> refused. ``service_tier`` (the tier that served
it): default, or absent: the list price; flex, priority -> the event's service_tier (1.1; the
catalog prices them per model); any other (auto, scale, fast, ultrafast) -> refused. Any other
field in ``usage`` is refused. event_id = ``id``, ts = ``created`` / ``created_at``, model =
``model``. Embeddings: ``usage.prompt_tokens`` -> input_tokens (``total_tokens`` must equal it);
the response has no id or time: ``event_id`` and ``ts`` are options."""

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
TIERS = {None: None, "default": None, "flex": "flex", "priority": "priority"}  # -> the event's service_tier
EMBEDDING = {"prompt_tokens", "total_tokens"}


def _embeddings(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    """A CreateEmbeddingResponse: its prompt tokens, priced as the model's input."""
    data = payload.get("data")
    if not isinstance(data, list) or any(not isinstance(d, dict) or d.get("object") != "embedding" for d in data):
        raise ConversionError("an object list that is not an embeddings response (data[].object must be embedding)")
    u = obj(payload, "usage", "response")
    if not u:
        raise ConversionError("the embeddings response has no usage")
    known(u, EMBEDDING, "usage")
    prompt = count(u, "prompt_tokens", "usage", default=None)
    total(u.get("total_tokens"), prompt, "usage.total_tokens", "prompt_tokens")
    return [event("openai", payload.get("model"), {"input_tokens": prompt}, ids, event_id=None, ts=None)]


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    kind = payload.get("object")
    if kind == "list":
        return _embeddings(payload, ids)
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
        TIERS,
        "service_tier",
        "only default, flex and priority are priced by the catalog (auto does not say which tier served; "
        "scale, fast and ultrafast have no public price here)",
    )
    known(u, keys, "usage")
    idet, odet = obj(u, idet_name, "usage"), obj(u, odet_name, "usage")
    known(idet, in_keys, f"usage.{idet_name}")
    known(odet, out_keys, f"usage.{odet_name}")
    prompt, completion = count(u, inp, "usage", default=None), count(u, out, "usage", default=None)
    total(u.get("total_tokens"), prompt + completion, "usage.total_tokens", f"{inp} + {out}")
    cached = count(idet, "cached_tokens", f"usage.{idet_name}")
    reasoning = count(odet, "reasoning_tokens", f"usage.{odet_name}")
    audio_in = count(idet, "audio_tokens", f"usage.{idet_name}")
    audio_out = count(odet, "audio_tokens", f"usage.{odet_name}")
    images = count(idet, "image_tokens", f"usage.{idet_name}")
    if cached and (audio_in or images):
        raise ConversionError(
            f"{cached} cached tokens with {audio_in} audio and {images} image input tokens: which of them were "
            "cached (text, audio or image, each priced apart) is not documented"
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
    if cached + audio_in + images > prompt:
        raise ConversionError(
            f"audio and image input tokens ({audio_in + images}) exceed {inp} ({prompt}), which include them"
        )
    if audio_out > completion:
        raise ConversionError(f"audio output tokens ({audio_out}) exceed {out} ({completion}), which include them")
    if reasoning > completion - audio_out:
        raise ConversionError(
            f"reasoning_tokens ({reasoning}) exceed {out} ({completion - audio_out} without audio), which include them"
        )
    usage = {
        "input_tokens": prompt - cached - audio_in - images,
        "cached_input_tokens": cached,
        "audio_input_tokens": audio_in,
        "image_input_tokens": images,
        "output_tokens": completion - audio_out,
        "audio_output_tokens": audio_out,
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
            service_tier=TIERS[payload.get("service_tier")],
        )
    ]
