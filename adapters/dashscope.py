"""DashScope (Alibaba Cloud Bailian / Model Studio), the native API's generation result. Shapes:
the DashScope API reference (https://www.alibabacloud.com/help/en/model-studio/qwen-api-via-dashscope)
and the context cache page (https://www.alibabacloud.com/help/en/model-studio/context-cache);
docs/events-and-adapters.md has the table.

``usage``:
  input_tokens                          input, INCLUDING cache hits and cache creation
                                        -> input_tokens - cached - created
  output_tokens                         output                         -> output_tokens
  total_tokens                          must be input + output
  prompt_tokens_details.cached_tokens   cache hits: implicit-cache hits (no cache_type: 20% of the
                                        input price) -> cached_input_tokens; explicit-cache hits
                                        (cache_type ephemeral: 10%) -> refused, one bucket cannot
                                        hold both prices
  prompt_tokens_details.cache_creation_input_tokens (and cache_creation.ephemeral_5m_input_tokens)
                                        explicit-cache creation (5 minutes, 125%) -> cache_write_tokens
  output_tokens_details.reasoning_tokens  thinking output: Model Studio prices thinking-mode output
                                        apart from plain output; billing_event v1 prices reasoning
                                        as output -> refused when > 0
  image_tokens, video_tokens, audio_tokens (and in *_tokens_details): other modalities priced
                                        apart -> refused when > 0
  plugins.search.count                  web search, billed per search -> refused when > 0
Any other field in ``usage`` is refused. A result that failed (``status_code`` not 200) is
refused with its code. event_id = ``request_id``; a result carries no time (``ts`` is an option)
and names no model unless the caller's SDK adds ``model`` (else an option)."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, allowed, count, event, known, obj, total
from schemas.validate import quoted

MODALITIES = ("image_tokens", "video_tokens", "audio_tokens")
USAGE = {
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "input_tokens_details",
    "output_tokens_details",
    "plugins",
    *MODALITIES,
}
PROMPT_DETAILS = {"cached_tokens", "cache_creation_input_tokens", "cache_creation", "cache_type", "text_tokens"}


def _none_of_other_modalities(o: dict[str, Any], where: str) -> None:
    for key in MODALITIES:
        if n := count(o, key, where):
            raise ConversionError(
                f"{n} {where}.{key}: priced apart from text tokens, and billing_event v1 has no bucket"
            )


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    status = payload.get("status_code", 200)
    if status != 200:
        raise ConversionError(f"a failed call (status_code {quoted(status)}, code {quoted(payload.get('code'))})")
    u = obj(payload, "usage", "result")
    if not u:
        raise ConversionError("not a DashScope result: no usage")
    known(u, USAGE, "usage")
    inp = count(u, "input_tokens", "usage", default=None)
    out = count(u, "output_tokens", "usage", default=None)
    total(u.get("total_tokens"), inp + out, "usage.total_tokens", "input_tokens + output_tokens")
    _none_of_other_modalities(u, "usage")
    in_details = obj(u, "input_tokens_details", "usage")
    known(in_details, {"text_tokens", *MODALITIES}, "usage.input_tokens_details")
    _none_of_other_modalities(in_details, "usage.input_tokens_details")
    out_details = obj(u, "output_tokens_details", "usage")
    known(out_details, {"text_tokens", "reasoning_tokens", *MODALITIES}, "usage.output_tokens_details")
    _none_of_other_modalities(out_details, "usage.output_tokens_details")
    if reasoning := count(out_details, "reasoning_tokens", "usage.output_tokens_details"):
        raise ConversionError(
            f"{reasoning} reasoning tokens (usage.output_tokens_details.reasoning_tokens): Model Studio prices "
            "thinking-mode output apart from plain output, and billing_event v1 prices reasoning as output"
        )
    plugins = obj(u, "plugins", "usage")
    known(plugins, {"search"}, "usage.plugins")
    search = obj(plugins, "search", "usage.plugins")
    known(search, {"count", "strategy"}, "usage.plugins.search")
    if searches := count(search, "count", "usage.plugins.search"):
        raise ConversionError(
            f"{searches} web searches (usage.plugins.search.count): billed per search, "
            "and billing_event v1 has no dimension for them"
        )
    prompt = obj(u, "prompt_tokens_details", "usage")
    known(prompt, PROMPT_DETAILS, "usage.prompt_tokens_details")
    cached = count(prompt, "cached_tokens", "usage.prompt_tokens_details")
    created = count(prompt, "cache_creation_input_tokens", "usage.prompt_tokens_details")
    split = obj(prompt, "cache_creation", "usage.prompt_tokens_details")
    known(split, {"ephemeral_5m_input_tokens"}, "usage.prompt_tokens_details.cache_creation")
    if split and count(split, "ephemeral_5m_input_tokens", "usage.prompt_tokens_details.cache_creation") != created:
        raise ConversionError(
            "usage.prompt_tokens_details.cache_creation does not add up to its cache_creation_input_tokens"
        )
    explicit = "cache_type" in prompt
    if explicit:
        allowed(
            prompt["cache_type"],
            ("ephemeral",),
            "usage.prompt_tokens_details.cache_type",
            "a cache type whose prices are not known",
        )
        if cached:
            raise ConversionError(
                f"{cached} explicit-cache hits (cache_type ephemeral): priced at 10% of input, apart from "
                "implicit-cache hits (20%), which billing_event v1's one cached bucket cannot tell apart"
            )
    elif created:
        raise ConversionError("cache_creation_input_tokens without a cache_type: not a documented explicit cache")
    if cached + created > inp:
        raise ConversionError(
            f"cached_tokens and cache_creation_input_tokens ({cached + created}) exceed input_tokens ({inp}), "
            "which include them"
        )
    usage = {
        "input_tokens": inp - cached - created,
        "cached_input_tokens": cached,
        "cache_write_tokens": created,
        "output_tokens": out,
    }
    return [event("bailian", payload.get("model"), usage, ids, event_id=payload.get("request_id"), ts=None)]
