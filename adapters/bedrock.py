"""Amazon Bedrock: Converse replies and InvokeModel response headers.

Converse ``usage`` (totalTokens = the four below: they are disjoint):
  inputTokens             input, EXCLUDING cache reads and writes -> input_tokens
  cacheReadInputTokens    cache reads                             -> cached_input_tokens
  cacheWriteInputTokens   cache writes                            -> cache_write_tokens
  outputTokens            output                                  -> output_tokens
InvokeModel: the headers ``X-Amzn-Bedrock-Input-Token-Count``, ``-Output-Token-Count``,
``-Cache-Read-Input-Token-Count`` and ``-Cache-Write-Input-Token-Count`` (case-insensitive; a
flat object of headers, or boto3's reply with ``ResponseMetadata.HTTPHeaders``), same buckets.
Neither names the model or a time: ``model`` (the modelId called, e.g. a cross-region profile id
``us.anthropic...``: the catalog decides it, never a guess here), ``ts``, ``event_id`` are
options, as is ``region``. InvokeModel's ``X-Amzn-Requestid`` / Converse's
``ResponseMetadata.RequestId`` is the default event_id."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, count, event, obj
from schemas.validate import quoted


def converse(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    u = obj(payload, "usage", "reply")
    if not u:
        raise ConversionError("not a Converse reply: no usage")
    usage = {
        "input_tokens": count(u, "inputTokens", "usage", default=None),
        "cached_input_tokens": count(u, "cacheReadInputTokens", "usage"),
        "cache_write_tokens": count(u, "cacheWriteInputTokens", "usage"),
        "output_tokens": count(u, "outputTokens", "usage", default=None),
    }
    total = u.get("totalTokens")
    if total is not None and total != sum(usage.values()):
        raise ConversionError(
            f"totalTokens {quoted(total)} is not the sum of the input, cache and output counts ({sum(usage.values())})"
        )
    request_id = obj(payload, "ResponseMetadata", "reply").get("RequestId")
    return [event("bedrock", None, usage, ids, event_id=request_id, ts=None)]


_HEADERS = {
    "input_tokens": "x-amzn-bedrock-input-token-count",
    "output_tokens": "x-amzn-bedrock-output-token-count",
    "cached_input_tokens": "x-amzn-bedrock-cache-read-input-token-count",
    "cache_write_tokens": "x-amzn-bedrock-cache-write-input-token-count",
}


def invoke(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    headers = obj(obj(payload, "ResponseMetadata", "reply"), "HTTPHeaders", "ResponseMetadata") or payload
    h = {str(k).lower(): v for k, v in headers.items()}
    if _HEADERS["input_tokens"] not in h or _HEADERS["output_tokens"] not in h:
        raise ConversionError("not InvokeModel response headers: no X-Amzn-Bedrock-Input/Output-Token-Count")
    usage = {}
    for bucket, name in _HEADERS.items():
        raw = h.get(name, "0")
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
            raise ConversionError(f"header {name} is not a count: {quoted(raw)}")
        usage[bucket] = int(raw)
    return [event("bedrock", None, usage, ids, event_id=h.get("x-amzn-requestid"), ts=None)]
