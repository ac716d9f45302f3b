"""OpenAI audio transcriptions (``POST /v1/audio/transcriptions``, response_format json or
verbose_json) -> billing_event v1. whisper-1 is billed by audio duration. Shape: openai-python
``src/openai/types/audio/transcription.py`` (Usage: UsageTokens | UsageDuration).

  usage.type "duration", usage.seconds     -> audio_seconds (whisper-1: $0.006 per 60 seconds in
                                              openai-usd.yaml); an integer, or a decimal of at most
                                              3 places, as written
  usage.type "tokens" (gpt-4o-transcribe)  -> refused: its audio input tokens have no bucket in v1
  no usage (text, srt, vtt responses)      -> refused: nothing says how long the audio was
  any other field in usage                 -> refused (it may change the bill)
  text, segments, words                    -> not used (a transcript is never stored)

The response names no id, time or model: they come from the options (``--event-id``, ``--ts``,
``--model``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.base import ConversionError, Ids, event, known, obj
from schemas.validate import quoted


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    usage = obj(payload, "usage", "response")
    if not usage:
        raise ConversionError("no usage: ask for response_format json or verbose_json (usage.seconds)")
    kind = usage.get("type")
    if kind == "tokens":
        raise ConversionError(
            "a token-billed transcription (usage.type tokens): billing_event v1 has no audio-token bucket"
        )
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
