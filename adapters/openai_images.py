"""OpenAI image generation and edits (``POST /v1/images/generations``, ``/v1/images/edits``) with
a token-billed model (gpt-image-1 and later) -> billing_event 1.1. Shape: openai-python
``src/openai/types/images_response.py`` (ImagesResponse, Usage, UsageInputTokensDetails,
UsageOutputTokensDetails; openai-python e43b4224, 2026-08-21).

  usage.input_tokens                         text and image input: the details must add up to it
  usage.input_tokens_details.text_tokens     -> input_tokens
  usage.input_tokens_details.image_tokens    -> image_input_tokens (images given to an edit)
  usage.output_tokens                        output: the details, when present, must add up to it
  usage.output_tokens_details.image_tokens   -> image_output_tokens
  usage.output_tokens_details.text_tokens    -> output_tokens (a model without a text-output price
                                                refuses it in the catalog)
  no output_tokens_details                   every output token is an image token: the type named
                                             output_tokens "the number of image tokens in the output
                                             image" before it added the details (openai-python 0444895)
  usage.total_tokens                         must be input_tokens + output_tokens
  no usage (dall-e-2, dall-e-3: priced per image) -> refused: send `images` usage as a billing event
Any other field in ``usage`` or its details is refused. The response names no model or id: they
are options (``--model``, ``--event-id``); ts = ``created``. Cached input is not reported here,
so it is never assumed."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, count, event, from_unix, known, obj, total

USAGE = {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}
DETAILS = {"image_tokens", "text_tokens"}


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    u = obj(payload, "usage", "response")
    if not u:
        raise ConversionError(
            "an images response without usage: a model priced per image (dall-e-2, dall-e-3); "
            "send its `images` usage as a billing event"
        )
    known(u, USAGE, "usage")
    inp, out = count(u, "input_tokens", "usage", default=None), count(u, "output_tokens", "usage", default=None)
    total(u.get("total_tokens"), inp + out, "usage.total_tokens", "input_tokens + output_tokens")
    idet = obj(u, "input_tokens_details", "usage")
    if not idet:
        raise ConversionError(
            "usage.input_tokens_details is missing: text and image input tokens are priced apart, and "
            "input_tokens alone does not say how many of each"
        )
    known(idet, DETAILS, "usage.input_tokens_details")
    text_in = count(idet, "text_tokens", "usage.input_tokens_details", default=None)
    image_in = count(idet, "image_tokens", "usage.input_tokens_details", default=None)
    total(inp, text_in + image_in, "usage.input_tokens", "text_tokens + image_tokens")
    odet = obj(u, "output_tokens_details", "usage")
    if odet:
        known(odet, DETAILS, "usage.output_tokens_details")
        text_out = count(odet, "text_tokens", "usage.output_tokens_details", default=None)
        image_out = count(odet, "image_tokens", "usage.output_tokens_details", default=None)
        total(out, text_out + image_out, "usage.output_tokens", "text_tokens + image_tokens")
    else:
        text_out, image_out = 0, out
    created = payload.get("created")
    usage = {
        "input_tokens": text_in,
        "image_input_tokens": image_in,
        "output_tokens": text_out,
        "image_output_tokens": image_out,
    }
    return [
        event(
            "openai",
            None,
            usage,
            ids,
            event_id=None,
            ts=from_unix(created, "created") if created is not None else None,
        )
    ]
