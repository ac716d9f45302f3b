"""What of a rejected input may be stored: an allow-list, never prompt text, never much, never raw.

A rejected input is kept with its reason (dead-letter topic, rejected_events). Its payload is:

- strict JSON (what orjson reads): the input re-serialized keeping only what is known to carry no
  free text, whatever its key or depth:
    * numbers, true, false, null;
    * the value of an id field (event_id, tenant_id, user_id, provider, model, region, ts, and a
      provider payload's request, response, trace and span ids) when it is a short identifier
      (schemas.validate.ID_LIKE: ``[A-Za-z0-9._:/@+-]{1,128}``); a quantity field's (hours,
      months, audio_seconds, storage_months, OTLP intValue, ...) when it is a plain number;
      an enum field's (mode, commitment, method, guardrail policies, a provider payload's
      object, type, service_tier, ...) when it is one of its values;
    * a key of the schema (billing_event v1, the adapters' provider payloads, this module's own
      forms), as it is; an OTLP attribute's name when the adapters know it, and its string value
      when the attribute is an id (gen_ai.response.id, gen_ai.response.model, tenant.id, ...).
  Every other string is stored as ``"<string: 53 chars, sha256:ab12cd34>"`` (its length and the
  first 8 hex digits of its SHA-256), every other key as ``"<key: 7 chars, sha256:...>"``, label
  keys and values included. The value of a prompt-like key (``text``, ``messages``, ``prompt``,
  ``content``, ... in any case) is ``"<removed>"``; nesting beyond 16 levels is replaced. What
  is stored is printable ASCII. Redacting a stored payload again gives it back unchanged (a
  producer's refused record carries one, and the rater stores it again).
- anything else (not JSON, NaN, a BOM, invalid UTF-8, truncated), or a payload still over
  MAX_PAYLOAD bytes: ``{"not_stored": {"why", "sha256", "bytes"}}``, the input's SHA-256 and its
  length, nothing of its text. The rejection's event_id and tenant_id (schemas.validate.ids_of)
  still name the event.

So a stored payload is at most MAX_PAYLOAD bytes, and every record that carries one is bounded.
The walk stops as soon as what it has kept is over MAX_PAYLOAD: a large input costs a parse and
at most ~MAX_PAYLOAD bytes of work past it.
"""

from __future__ import annotations

import hashlib
import re
import typing
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.billing_event import FORBIDDEN_CHARS, BillingEvent
from schemas.validate import ID_LIKE, hidden

PROMPT_KEYS = frozenset(
    {
        "text",
        "texts",
        "message",
        "messages",
        "prompt",
        "prompts",
        "content",
        "contents",
        "completion",
        "completions",
        "input",
        "inputs",
        "output",
        "outputs",
        "system",
        "instructions",
        "query",
        "response",
        "responses",
        "choices",
    }
)
REMOVED = "<removed>"
MAX_PAYLOAD = 16 * 1024  # bytes of a stored payload
MAX_DEPTH = 16  # the schema nests 4 levels
DEEP = f"<removed: nested deeper than {MAX_DEPTH} levels>"
NOT_JSON = "not JSON"
TOO_BIG = f"over {MAX_PAYLOAD} bytes even redacted"


def _schema(model: type[BaseModel], keys: set[str], enums: dict[str, set[str]], quantities: set[str]) -> None:
    """billing_event v1's keys, its enum fields' values and its decimal quantities, read from the models."""
    for name, f in model.model_fields.items():
        keys.add(name)
        todo: list[Any] = [f.annotation]
        while todo:
            t = todo.pop()
            origin = typing.get_origin(t)
            if origin is typing.Literal:
                enums.setdefault(name, set()).update(str(a) for a in typing.get_args(t))
            elif origin is typing.Annotated:
                todo.append(typing.get_args(t)[0])
            elif origin is dict:
                continue  # labels: keys and values are the sender's, never shown
            elif origin is not None:  # Optional / Union / list
                todo.extend(typing.get_args(t))
            elif isinstance(t, type) and issubclass(t, Enum):
                enums.setdefault(name, set()).update(str(m.value) for m in t)
            elif isinstance(t, type) and issubclass(t, BaseModel):
                _schema(t, keys, enums, quantities)
            elif t is Decimal:
                quantities.add(name)


_keys: set[str] = set()
_enums: dict[str, set[str]] = {}
_quantities: set[str] = set()
_schema(BillingEvent, _keys, _enums, _quantities)

# The adapters' provider payloads (adapters/): the keys they read or document, their ids, their
# counts written as strings and their enum values. Refused provider payloads are stored too.
PROVIDER_KEYS = frozenset(
    {
        # OpenAI chat.completion / response / transcription
        "id",
        "object",
        "created",
        "created_at",
        "model",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "cached_tokens",
        "audio_tokens",
        "reasoning_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
        "input_tokens_details",
        "output_tokens_details",
        "input_token_details",  # a token-billed transcription's usage
        "service_tier",
        "system_fingerprint",
        "status",
        "index",
        "finish_reason",
        "type",
        "seconds",
        "role",
        # read by the adapters since they judge every field that changes the bill (counts, tiers,
        # cache TTLs: no text; a Responses `output` or a Bedrock `trace` can hold text and stays out)
        "iterations",
        "fallback_credit",
        "container",
        "thinking_tokens",
        "cache_write_tokens",
        "image_tokens",
        "text_tokens",
        "serviceTier",
        "performanceConfig",
        "latency",
        "cacheDetails",
        "ttl",
        "plugins",
        "search",
        "count",
        "strategy",
        "cache_type",
        # Gemini / Vertex usageMetadata (counts and modality names; no text)
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "cachedContentTokenCount",
        "thoughtsTokenCount",
        "toolUsePromptTokenCount",
        "totalTokenCount",
        "promptTokensDetails",
        "cacheTokensDetails",
        "candidatesTokensDetails",
        "toolUsePromptTokensDetails",
        "modality",
        "tokenCount",
        "modelVersion",
        "responseId",
        "trafficType",
        # Anthropic message
        "stop_reason",
        "stop_sequence",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens",
        "speed",
        "inference_geo",
        "server_tool_use",
        "web_search_requests",
        "web_fetch_requests",
        # Bedrock Converse and InvokeModel
        "stopReason",
        "inputTokens",
        "outputTokens",
        "totalTokens",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
        "metrics",
        "latencyMs",
        "ResponseMetadata",
        "RequestId",
        "HTTPStatusCode",
        "HTTPHeaders",
        "RetryAttempts",
        "x-amzn-requestid",
        "x-amzn-bedrock-input-token-count",
        "x-amzn-bedrock-output-token-count",
        "x-amzn-bedrock-cache-read-input-token-count",
        "x-amzn-bedrock-cache-write-input-token-count",
        "x-amzn-bedrock-invocation-latency",
        # DashScope
        "status_code",
        "request_id",
        "code",
        # OTLP JSON traces
        "resourceSpans",
        "resource",
        "attributes",
        "scopeSpans",
        "scope",
        "name",
        "version",
        "spans",
        "traceId",
        "spanId",
        "parentSpanId",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "timeUnixNano",
        "key",
        "value",
        "stringValue",
        "intValue",
        "boolValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "bytesValue",
        "values",
        "events",
        "links",
        "flags",
        "traceState",
        "schemaUrl",
        "droppedAttributesCount",
    }
)
# OTLP attribute names the adapter reads (adapters/otlp.py) and the GenAI ones worth naming; a
# prompt or completion attribute keeps its name, never its value.
OTLP_ID_ATTRIBUTES = frozenset(
    {
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.response.model",
        "gen_ai.request.model",
        "gen_ai.response.id",
        "tenant.id",
        "user.id",
        "enduser.id",
        "service.name",
        "openai.response.service_tier",
        "gen_ai.openai.response.service_tier",
        "openai.request.service_tier",
        "gen_ai.openai.request.service_tier",
        "gen_ai.operation.name",
    }
)
OTLP_ATTRIBUTES = (
    OTLP_ID_ATTRIBUTES
    | {
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.request.max_tokens",
        "gen_ai.request.temperature",
        "gen_ai.request.top_p",
        "gen_ai.response.finish_reasons",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
    }
    | {
        f"gen_ai.{kind}.{i}.{part}"
        for kind in ("prompt", "completion")
        for i in range(16)
        for part in ("content", "role")
    }
)

# keys shown as they are: the schema's, the provider payloads', this module's own forms
KEYS = frozenset(_keys | PROVIDER_KEYS | PROMPT_KEYS | {"not_stored", "why", "sha256", "bytes"})
# string values shown when they are identifiers (ID_LIKE)
ID_FIELDS = frozenset(
    {
        "event_id",
        "tenant_id",
        "user_id",
        "provider",
        "model",
        "region",
        "ts",
        "id",
        "request_id",
        "RequestId",
        "x-amzn-requestid",
        "traceId",
        "spanId",
        "parentSpanId",
        "code",
        "sha256",
    }
)
# string values shown when they are plain numbers
NUMERIC_FIELDS = frozenset(
    _quantities
    | {
        "intValue",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "timeUnixNano",
        "x-amzn-bedrock-input-token-count",
        "x-amzn-bedrock-output-token-count",
        "x-amzn-bedrock-cache-read-input-token-count",
        "x-amzn-bedrock-cache-write-input-token-count",
        "x-amzn-bedrock-invocation-latency",
    }
)
# string values shown when they are one of these
ENUMS: dict[str, frozenset[str]] = {
    k: frozenset(v)
    for k, v in {
        **_enums,
        "object": {"chat.completion", "chat.completion.chunk", "response", "list"},
        "type": {"message", "duration", "tokens"},
        "service_tier": {"default", "auto", "standard", "batch", "flex", "priority", "scale", "standard_only"},
        "speed": {"standard", "fast"},
        "inference_geo": {"global", "us"},
        "role": {"system", "user", "assistant", "tool", "developer", "function"},
        "finish_reason": {"stop", "length", "tool_calls", "content_filter", "function_call"},
        "stop_reason": {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"},
        "stopReason": {
            "end_turn",
            "tool_use",
            "max_tokens",
            "stop_sequence",
            "guardrail_intervened",
            "content_filtered",
        },
        "status": {"completed", "incomplete", "failed", "in_progress", "cancelled", "queued"},
        "why": {NOT_JSON, TOO_BIG},
        "key": OTLP_ATTRIBUTES,
    }.items()
}
LABELS = "labels"
_OTLP_ID = "\x00otlp id"  # context of an OTLP id attribute's value object (no key is this)
_ID_VALUE = "id"  # context whose string is shown when ID_LIKE
_NUMBER = re.compile(r"[-+]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][-+]?[0-9]{1,10})?").fullmatch
# this module's own forms: left as they are when a stored payload is redacted again
_OURS = re.compile(r"<(?:string|key): [0-9]{1,10} chars, sha256:[0-9a-f]{8}>|<removed>|" + re.escape(DEEP)).fullmatch


def _is_prompt_key(key: str) -> bool:
    return FORBIDDEN_CHARS.sub("", key).strip().casefold() in PROMPT_KEYS


class _Over(Exception):
    """What is kept is already over MAX_PAYLOAD bytes."""


class _Redact:
    """One walk: ``left`` counts down a lower bound of the bytes written (quotes and separators
    included, escapes not), so stopping at zero never stops a payload that would fit."""

    def __init__(self) -> None:
        self.left = MAX_PAYLOAD

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise _Over

    def string(self, s: str, ctx: str | None) -> str:
        if ctx is not None:
            if ctx in ID_FIELDS:
                if ID_LIKE(s):
                    return s
            elif ctx in NUMERIC_FIELDS:
                if len(s) <= 100 and _NUMBER(s):
                    return s
            else:
                allowed = ENUMS.get(ctx)
                if allowed is not None and s in allowed:
                    return s
        if len(s) <= 64 and _OURS(s):
            return s
        return hidden(s)

    def key(self, k: str) -> str:
        return k if k in KEYS or (len(k) <= 64 and _OURS(k)) else hidden(k, "key")

    def value(self, v: Any, ctx: str | None, depth: int) -> Any:
        t = type(v)
        if t is str:
            out = self.string(v, ctx)
            self.spend(len(out) + 2)
            return out
        if t is dict or t is list:
            self.spend(2)
            if depth >= MAX_DEPTH:
                self.spend(len(DEEP))
                return DEEP
            if t is list:
                return [self.value(x, ctx, depth + 1) for x in v]
            return self.members(v, ctx, depth + 1)
        self.spend(1)
        return v  # number, true, false, null

    def members(self, d: dict[str, Any], ctx: str | None, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if ctx == LABELS:  # the sender's own keys and values
            for k, x in d.items():
                hk = k if len(k) <= 64 and _OURS(k) else hidden(k, "key")
                self.spend(len(hk) + 3)
                out[hk] = self.value(x, None, depth)
            return out
        otlp_id = type(d.get("key")) is str and d["key"] in OTLP_ID_ATTRIBUTES  # an OTLP attribute naming an id
        for k, x in d.items():
            sk = self.key(k)
            self.spend(len(sk) + 3)
            if (k in PROMPT_KEYS) if sk is k else (len(k) <= 256 and _is_prompt_key(k)):
                self.spend(len(REMOVED) + 2)
                out[sk] = REMOVED
                continue
            if ctx == _OTLP_ID and k == "stringValue":
                child: str | None = _ID_VALUE
            elif otlp_id and k == "value":
                child = _OTLP_ID
            else:
                child = k if sk is k else None  # under a key not shown, nothing is an id or an enum
            out[sk] = self.value(x, child, depth)
        return out


def digest(raw: bytes, why: str) -> str:
    """The stored form of an input not kept as JSON: its hash and its length, nothing of its text."""
    return orjson.dumps(
        {"not_stored": {"why": why, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}}
    ).decode()


def stored_payload(raw: bytes | str) -> str:
    """The payload a rejection keeps (the module docstring says what it is)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return digest(data, NOT_JSON)
    try:
        kept = _Redact().value(doc, None, 0)
    except _Over:
        return digest(data, TOO_BIG)
    text = orjson.dumps(kept)
    if len(text) > MAX_PAYLOAD:
        return digest(data, TOO_BIG)
    return text.decode()
