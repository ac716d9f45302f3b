"""Provider payloads -> billing_event v1, 1.1 where a payload uses a 1.1 bucket or field (one module
per format, each documented field by field).

    from adapters import Ids, convert
    events = convert("openai", response_json, Ids(tenant_id="acme", user_id="alice"))

A payload that cannot be converted exactly raises ConversionError with the reason; nothing is
guessed. The events are then validated and priced like any other (pricing.rating)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from adapters import anthropic, azure, bedrock, dashscope, gemini, openai, openai_audio, openai_images, otlp
from adapters.base import ConversionError, Ids
from schemas.validate import quoted

FORMATS: dict[str, Callable[[dict[str, Any], Ids], list[dict[str, Any]]]] = {
    "openai": openai.convert,
    "openai-transcription": openai_audio.convert,
    "openai-image": openai_images.convert,
    "anthropic": anthropic.convert,
    "bedrock-converse": bedrock.converse,
    "bedrock-invoke": bedrock.invoke,
    "dashscope": dashscope.convert,
    "otlp-json": otlp.convert,
    "otlp-json-cached-excluded": partial(otlp.convert, cached="excluded"),
    "gemini": gemini.convert_gemini,
    "vertex": gemini.convert_vertex,
    "azure-openai": azure.convert,
}

__all__ = ["FORMATS", "ConversionError", "Ids", "convert", "convert_line"]


def convert(fmt: str, payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    if fmt not in FORMATS:
        raise ConversionError(f"unknown format {quoted(fmt)}: one of {', '.join(FORMATS)}")
    if not isinstance(payload, dict):
        raise ConversionError("a payload is one JSON object")
    return FORMATS[fmt](payload, ids)


def convert_line(fmt: str, line: bytes, ids: Ids) -> list[bytes]:
    """One JSON payload (a line of a file) as billing_event lines."""
    try:
        payload = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ConversionError(f"not JSON: {exc}"[:200]) from None
    return [orjson.dumps(e) for e in convert(fmt, payload, ids)]
