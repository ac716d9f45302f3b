"""OpenTelemetry GenAI spans, OTLP JSON (``{"resourceSpans": [...]}``): one event per span that
has ``gen_ai.usage.*`` attributes (others are skipped, not errors).

  gen_ai.usage.input_tokens                 input; under the current semantic conventions it
                                            INCLUDES cached tokens (cached="included", the
                                            default); senders that already subtract them exist:
                                            cached="excluded" for those. The choice is per source.
  gen_ai.usage.cache_read.input_tokens      cache reads   -> cached_input_tokens
  gen_ai.usage.cache_creation.input_tokens  cache writes  -> cache_write_tokens (counted in
                                            input_tokens as well when cached="included")
  gen_ai.usage.output_tokens                output        -> output_tokens
  gen_ai.usage.reasoning.output_tokens      -> reasoning_tokens (part of output)
  gen_ai.provider.name (or gen_ai.system)   openai, anthropic, aws.bedrock, alibaba/dashscope
  gen_ai.response.model (or gen_ai.request.model), gen_ai.response.id
  openai.response.service_tier (or gen_ai.openai.response.service_tier, or the request's)
                                            flex, priority, scale: priced apart -> refused
Ids: tenant from the span's or resource's ``tenant.id`` attribute, user from ``user.id`` (or
``enduser.id``), else the options; event_id = gen_ai.response.id, else ``<traceId>-<spanId>``;
ts = the span's end time."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Literal

from adapters.base import ConversionError, Ids, event
from schemas.validate import quoted

TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
PRICED_APART = {"flex", "priority", "scale"}  # OpenAI's tiers whose prices are not the list's
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "bedrock",
    "alibaba": "bailian",
    "dashscope": "bailian",
    "bailian": "bailian",
}


def _value(v: dict[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in v:
            return v[kind]
    if "intValue" in v:  # int64 is a JSON string in OTLP JSON
        raw = v["intValue"]
        if type(raw) is int or (isinstance(raw, str) and raw.lstrip("-").isdigit()):
            return int(raw)
        raise ConversionError(f"intValue {quoted(raw)} is not an integer")
    return None


def _attrs(items: Any) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value") or {}) for a in items or [] if isinstance(a, dict) and "key" in a}


def _tokens(a: dict[str, Any], key: str) -> int:
    v = a.get(key, 0)
    if type(v) is not int or v < 0:
        raise ConversionError(f"{key} must be an integer >= 0, not {quoted(v)}")
    return v


def span_event(
    span: dict[str, Any], resource: dict[str, Any], ids: Ids, cached: Literal["included", "excluded"]
) -> dict[str, Any] | None:
    a = {**resource, **_attrs(span.get("attributes"))}
    if not any(k.startswith("gen_ai.usage.") for k in a):
        return None
    system = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
    provider = PROVIDERS.get(str(system))
    if provider is None:
        raise ConversionError(f"gen_ai provider {quoted(system)} has no catalog provider here")
    for key in TIER_KEYS:
        if a.get(key) in PRICED_APART:
            raise ConversionError(f"{key} {quoted(a[key])}: priced apart from the list prices the catalog holds")
    reads, writes = (
        _tokens(a, "gen_ai.usage.cache_read.input_tokens"),
        _tokens(a, "gen_ai.usage.cache_creation.input_tokens"),
    )
    inp, out = _tokens(a, "gen_ai.usage.input_tokens"), _tokens(a, "gen_ai.usage.output_tokens")
    reasoning = _tokens(a, "gen_ai.usage.reasoning.output_tokens")
    if cached == "included":
        if reads + writes > inp:
            raise ConversionError(
                f"cache reads and writes ({reads + writes}) exceed gen_ai.usage.input_tokens "
                f"({inp}), which this source says include them"
            )
        inp -= reads + writes
    if reasoning > out:
        raise ConversionError("reasoning tokens exceed gen_ai.usage.output_tokens, which include them")
    end = span.get("endTimeUnixNano")
    ts = None
    if end is not None:
        if not (type(end) is int or (isinstance(end, str) and end.isdigit())) or int(end) <= 0:
            raise ConversionError("endTimeUnixNano is not a time")
        ns = int(end)
        ts = (
            (
                dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)
                + dt.timedelta(microseconds=ns % 1_000_000_000 // 1000)
            )
            .isoformat()
            .replace("+00:00", "Z")
        )
    span_ids = replace(
        ids,
        tenant_id=ids.tenant_id or a.get("tenant.id"),
        user_id=ids.user_id or a.get("user.id") or a.get("enduser.id"),
    )
    trace, sid = span.get("traceId"), span.get("spanId")
    fallback = f"{trace}-{sid}" if trace and sid else None
    usage = {
        "input_tokens": inp,
        "cached_input_tokens": reads,
        "cache_write_tokens": writes,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
    }
    return event(
        provider,
        a.get("gen_ai.response.model") or a.get("gen_ai.request.model"),
        usage,
        span_ids,
        event_id=a.get("gen_ai.response.id") or fallback,
        ts=ts,
    )


def convert(
    payload: dict[str, Any], ids: Ids, cached: Literal["included", "excluded"] = "included"
) -> list[dict[str, Any]]:
    if "resourceSpans" not in payload:
        raise ConversionError("not OTLP JSON traces: no resourceSpans")
    out = []
    for rs in payload["resourceSpans"] or []:
        resource = _attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or []:
            for span in ss.get("spans") or []:
                ev = span_event(span, resource, ids, cached)
                if ev is not None:
                    out.append(ev)
    if not out:
        raise ConversionError("no span with gen_ai.usage attributes")
    return out
