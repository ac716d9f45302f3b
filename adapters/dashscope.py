"""DashScope (Alibaba Cloud Bailian), the native API's generation result.

``usage``:
  input_tokens                          input, INCLUDING cached tokens -> input_tokens - cached
  prompt_tokens_details.cached_tokens   context-cache hits             -> cached_input_tokens
  output_tokens                         output                         -> output_tokens
A result that failed (``status_code`` not 200) is refused with its code. event_id =
``request_id``; a result carries no time (``ts`` is an option) and names no model unless the
caller's SDK adds ``model`` (else an option)."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, count, event, obj
from schemas.validate import quoted


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    status = payload.get("status_code", 200)
    if status != 200:
        raise ConversionError(f"a failed call (status_code {quoted(status)}, code {quoted(payload.get('code'))})")
    u = obj(payload, "usage", "result")
    if not u:
        raise ConversionError("not a DashScope result: no usage")
    inp = count(u, "input_tokens", "usage", default=None)
    cached = count(obj(u, "prompt_tokens_details", "usage"), "cached_tokens", "usage.prompt_tokens_details")
    if cached > inp:
        raise ConversionError(f"cached_tokens ({cached}) exceed input_tokens ({inp}), which include them")
    usage = {
        "input_tokens": inp - cached,
        "cached_input_tokens": cached,
        "output_tokens": count(u, "output_tokens", "usage", default=None),
    }
    return [event("bailian", payload.get("model"), usage, ids, event_id=payload.get("request_id"), ts=None)]
