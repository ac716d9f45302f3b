"""OpenTelemetry GenAI spans, OTLP JSON (``{"resourceSpans": [...]}``): one event per span that
has ``gen_ai.usage.*`` attributes (others are skipped, not errors). Attributes: the GenAI semantic
conventions (open-telemetry/semantic-conventions ``docs/registry/attributes/gen-ai.md`` and
``docs/gen-ai/openai.md`` at 7b0c0fe1, since moved to open-telemetry/semantic-conventions-genai);
docs/events-and-adapters.md has the table.

  gen_ai.operation.name                     chat, text_completion, generate_content (a model
                                            call: input and output counts required) or
                                            embeddings (input required); another (invoke_agent,
                                            execute_tool...: an agent's usage sums its model
                                            calls, which have spans of their own) or none -> refused
  gen_ai.usage.input_tokens                 input; under the current semantic conventions it
                                            INCLUDES cached tokens (cached="included", the
                                            default); senders that already subtract them exist:
                                            cached="excluded" for those. The choice is per source.
                                            Missing on a model call: refused (an unknown count)
  gen_ai.usage.cache_read.input_tokens      cache reads   -> cached_input_tokens (Bailian: refused,
                                            implicit and explicit hits are priced apart)
  gen_ai.usage.cache_creation.input_tokens  cache writes  -> refused when > 0: a span does not say
                                            their TTL (Anthropic, Bedrock: 5 minutes or 1 hour,
                                            priced apart; OpenAI: see its adapter); Bailian (one
                                            5-minute TTL) -> cache_write_tokens
  gen_ai.usage.output_tokens                output        -> output_tokens (missing on a model
                                            call: refused)
  gen_ai.usage.reasoning.output_tokens      -> reasoning_tokens (part of output; Bailian: thinking
                                            output is priced apart -> refused when > 0)
  any other gen_ai.usage.* attribute        -> refused (a count this adapter does not know)
  gen_ai.provider.name (or gen_ai.system)   openai, anthropic, aws.bedrock, alibaba/dashscope
  gen_ai.response.model (or gen_ai.request.model), gen_ai.response.id
  openai.response.service_tier (or gen_ai.openai.response.service_tier; without either, the
  request's openai.request.service_tier / gen_ai.openai.request.service_tier)
                                            judged from an allow-list: default; OpenAI's response
                                            tier flex or priority -> the event's service_tier
                                            (1.1); any other value (auto: the tier that served is
                                            unknown; a request's flex or priority without the
                                            response's: the tier that served is not stated; scale,
                                            fast...: no price here) -> refused. Any other
                                            ``*service_tier`` attribute: the provider's standard
                                            tier (anthropic standard, aws.bedrock default) or refused
Ids: tenant from the span's or resource's ``tenant.id`` attribute, user from ``user.id`` (or
``enduser.id``), else the options; event_id = gen_ai.response.id, else ``<traceId>-<spanId>``;
ts = the span's end time."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Literal

from adapters.base import ConversionError, Ids, allowed, event
from schemas.validate import quoted

TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
RESPONSE_TIER_KEYS = TIER_KEYS[:2]  # the tier that served: it decides when present
STANDARD_TIERS = {"openai": {"default"}, "anthropic": {"standard"}, "bedrock": {"default"}, "bailian": set()}
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "bedrock",
    "alibaba": "bailian",
    "dashscope": "bailian",
    "bailian": "bailian",
}
INPUT, OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
READS, WRITES = "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens"
REASONING = "gen_ai.usage.reasoning.output_tokens"
USAGE = {INPUT, OUTPUT, READS, WRITES, REASONING}
MODEL_CALLS = {"chat", "text_completion", "generate_content"}  # a model call: input and output
OPERATIONS = MODEL_CALLS | {"embeddings"}


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


def _tiers(a: dict[str, Any], provider: str) -> str | None:
    """Every service-tier attribute judged from an allow-list: the response's tier decides when the
    span has one (it may differ from the one asked for); else the request's. Returns the event's
    service_tier: an OpenAI response tier the catalog prices apart (flex, priority), else None."""
    served = any(k in a for k in RESPONSE_TIER_KEYS)
    tiers = {a[k] for k in RESPONSE_TIER_KEYS if k in a}
    if len(tiers) > 1:
        raise ConversionError(f"the span names two response service tiers ({', '.join(sorted(map(quoted, tiers)))})")
    tier = None
    for key, value in a.items():
        if not key.endswith("service_tier") or (served and key in TIER_KEYS and key not in RESPONSE_TIER_KEYS):
            continue
        if provider == "openai" and key in RESPONSE_TIER_KEYS and value in ("flex", "priority"):
            tier = value
            continue
        allowed(
            value,
            {"default"} if key in TIER_KEYS else STANDARD_TIERS[provider],
            key,
            "only the standard tier, and OpenAI's flex and priority as the response states them, are priced "
            "(auto, or a request's tier alone, does not say which tier served; scale and other tiers have no "
            "price here)",
        )
    return tier


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
    service_tier = _tiers(a, provider)
    for key in a:
        if key.startswith("gen_ai.usage.") and key not in USAGE:
            raise ConversionError(
                f"{quoted(key)}: a gen_ai.usage attribute this adapter does not know (it may change the bill)"
            )
    reads, writes = _tokens(a, READS), _tokens(a, WRITES)
    inp, out, reasoning = _tokens(a, INPUT), _tokens(a, OUTPUT), _tokens(a, REASONING)
    operation = a.get("gen_ai.operation.name")
    if operation is None:
        raise ConversionError(
            "gen_ai.operation.name is missing: usage is billed only from a model call's span (chat, "
            "text_completion, generate_content, embeddings); an agent's span sums its calls' usage"
        )
    allowed(
        operation,
        OPERATIONS,
        "gen_ai.operation.name",
        "usage is billed only from a model call's span (chat, text_completion, generate_content, "
        "embeddings); an agent's or tool's span sums usage its model calls report again",
    )
    for key in (INPUT, OUTPUT) if operation in MODEL_CALLS else (INPUT,):
        if key not in a:
            raise ConversionError(
                f"{key} is missing from a {operation} span: an unknown count is refused, never taken as zero"
            )
    if writes and provider != "bailian":
        raise ConversionError(
            f"{WRITES} {writes}: a span does not say the writes' TTL or retention, and 5-minute and "
            "1-hour (or longer) writes are priced apart"
        )
    if provider == "bailian" and reads:
        raise ConversionError(
            f"{READS} {reads}: Model Studio prices implicit-cache hits (20% of input) apart from explicit "
            "ones (10%), and a span does not say which"
        )
    if provider == "bailian" and reasoning:
        raise ConversionError(
            f"{REASONING} {reasoning}: Model Studio prices thinking-mode output apart from plain output"
        )
    if cached == "included":
        if reads + writes > inp:
            raise ConversionError(
                f"cache reads and writes ({reads + writes}) exceed {INPUT} ({inp}), which this source says include them"
            )
        inp -= reads + writes
    if reasoning > out:
        raise ConversionError(f"reasoning tokens exceed {OUTPUT}, which include them")
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
        service_tier=service_tier,
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
