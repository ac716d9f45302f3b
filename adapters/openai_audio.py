"""OpenAI audio transcriptions (``POST /v1/audio/transcriptions``, response_format json or
verbose_json) -> billing_event v1. whisper-1 is billed by audio duration. Shape: openai-python
``src/openai/types/audio/transcription.py`` (Usage: UsageTokens | UsageDuration).

  usage.type "duration", usage.seconds     -> audio_seconds (whisper-1: $0.006 per 60 seconds in
                                              openai-usd.yaml); an integer, or a decimal of at most
                                              3 places, as written
  usage.type "tokens" (gpt-4o-transcribe)  -> input_token_details.audio_tokens -> audio_input_tokens,
                                              .text_tokens -> input_tokens (billing_event 1.1; they
                                              must add up to input_tokens, and without the details
                                              the two prices cannot be told apart: refused);
                                              output_tokens -> output_tokens; total_tokens checked.
                                              A model the catalog does not price is refused there
  no usage (text, srt, vtt responses)      -> refused: nothing says how long the audio was
  any other field in usage                 -> refused (it may change the bill)
  text, segments, words                    -> not used (a transcript is never stored)

The response names no id, time or model: they come from the options (``--event-id``, ``--ts``,
``--model``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.base import ConversionError, Ids, count, event, known, obj, total
from schemas.validate import quoted


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    usage = obj(payload, "usage", "response")
    if not usage:
        raise ConversionError("no usage: ask for response_format json or verbose_json (usage.seconds)")
    kind = usage.get("type")
    if kind == "tokens":
        return _tokens(usage, ids)
    if kind != "duration":
        raise ConversionError(f"usage.type must be duration, not {quoted(kind)}")
    known(usage, {"type", "seconds"}, "usage")
    seconds = usage.get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise ConversionError(f"usage.seconds must be a number, not {quoted(seconds)}")
    try:
        exact = Decimal(repr(seconds)) if type(seconds) is float else Decimal(seconds)
    except InvalidOperation:
        raise ConversionError(f"usage.seconds is not a number: {quoted(seconds)}") from None
    if exact <= 0 or exact.as_tuple().exponent < -3:  # type: ignore[operator]
        raise ConversionError(f"usage.seconds must be > 0 with at most 3 decimal places, not {quoted(seconds)}")
    text = str(int(exact)) if exact == exact.to_integral() else str(exact.normalize())
    return [event("openai", None, {"audio_seconds": text}, ids, event_id=None, ts=None)]


def _tokens(usage: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    """A token-billed transcription (UsageTokens): audio and text input priced apart."""
    known(usage, {"type", "input_tokens", "output_tokens", "total_tokens", "input_token_details"}, "usage")
    inp, out = count(usage, "input_tokens", "usage", default=None), count(usage, "output_tokens", "usage", default=None)
    total(usage.get("total_tokens"), inp + out, "usage.total_tokens", "input_tokens + output_tokens")
    details = obj(usage, "input_token_details", "usage")
    if not details:
        raise ConversionError(
            "usage.input_token_details is missing: audio and text input tokens are priced apart, and "
            "input_tokens alone does not say how many of each"
        )
    known(details, {"audio_tokens", "text_tokens"}, "usage.input_token_details")
    audio, text = (count(details, k, "usage.input_token_details") for k in ("audio_tokens", "text_tokens"))
    total(inp, audio + text, "usage.input_tokens", "audio_tokens + text_tokens")
    buckets = {"input_tokens": text, "audio_input_tokens": audio, "output_tokens": out}
    return [event("openai", None, buckets, ids, event_id=None, ts=None)]
