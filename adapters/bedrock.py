"""Amazon Bedrock: Converse replies and InvokeModel response headers. Shapes: botocore
``botocore/data/bedrock-runtime/2023-09-30/service-2.json`` (ConverseResponse, TokenUsage,
CacheDetail, ServiceTier, PerformanceConfiguration, ConverseTrace, InvokeModelResponse), the
Converse API reference; docs/events-and-adapters.md has the table.

Converse ``usage`` (totalTokens = the four below: they are disjoint):
  inputTokens             input, EXCLUDING cache reads and writes -> input_tokens
  cacheReadInputTokens    cache reads                             -> cached_input_tokens
  cacheWriteInputTokens   cache writes (every TTL)
  cacheDetails            the writes by TTL (must add up): 5m -> cache_write_tokens; 1h ->
                          cache_write_1h_tokens (billing_event 1.1). Absent: every write is a
                          5-minute one (botocore added cacheDetails and the cachePoint ttl in the
                          same release, 84888057)
  outputTokens            output                                  -> output_tokens
Converse ``serviceTier.type`` default (or absent: the field came with the request's tier): the
list price; priority, flex -> the event's service_tier (1.1; the catalog prices them per model);
reserved -> refused (priced by commitment). ``performanceConfig.latency`` standard (or absent);
optimized -> refused (latency-optimized inference has its own prices). ``trace.guardrail`` or
stopReason guardrail_intervened (a guardrail assessed the call: billed per policy text unit) ->
refused; ``trace.promptRouter.invokedModelId`` (a prompt router chose the model that is billed)
must be the ``model`` given.
InvokeModel: the headers ``X-Amzn-Bedrock-Input-Token-Count``, ``-Output-Token-Count``,
``-Cache-Read-Input-Token-Count`` and ``-Cache-Write-Input-Token-Count`` (case-insensitive; a
flat object of headers, or boto3's reply with ``ResponseMetadata.HTTPHeaders``), same buckets; a
cache write there is refused (the headers do not say its TTL), and so are ``X-Amzn-Bedrock-Service-Tier``
other than default, priority or flex (mapped as above), ``X-Amzn-Bedrock-PerformanceConfig-Latency``
other than standard, and any other ``X-Amzn-Bedrock-*`` header this adapter does not know.
Neither names the model or a time: ``model`` (the modelId called, e.g. a cross-region profile id
``us.anthropic...``: the catalog decides it, never a guess here), ``ts``, ``event_id`` are
options, as is ``region``. InvokeModel's ``X-Amzn-Requestid`` / Converse's
``ResponseMetadata.RequestId`` is the default event_id."""

from __future__ import annotations

from typing import Any

from adapters.base import ConversionError, Ids, allowed, count, event, known, obj, total
from schemas.validate import quoted

USAGE = {"inputTokens", "outputTokens", "totalTokens", "cacheReadInputTokens", "cacheWriteInputTokens", "cacheDetails"}
TIER_WHY = "only the default (on-demand), priority and flex tiers have list prices; reserved is priced by commitment"
TIERS = {None: None, "default": None, "priority": "priority", "flex": "flex"}  # -> the event's service_tier
LATENCY_WHY = "latency-optimized inference is priced apart from the standard list price"


def _cache_writes(u: dict[str, Any]) -> tuple[int, int]:
    """(5-minute writes, 1-hour writes)."""
    writes = count(u, "cacheWriteInputTokens", "usage")
    details = u.get("cacheDetails")
    if details is None:
        return writes, 0
    if not isinstance(details, list):
        raise ConversionError("usage.cacheDetails is not an array")
    by_ttl = {"5m": 0, "1h": 0}
    for i, d in enumerate(details):
        where = f"usage.cacheDetails[{i}]"
        if not isinstance(d, dict):
            raise ConversionError(f"{where} is not an object")
        known(d, {"ttl", "inputTokens"}, where)
        n = count(d, "inputTokens", where, default=None)
        allowed(d.get("ttl"), by_ttl, f"{where}.ttl", "a cache TTL whose price is not known")
        by_ttl[d["ttl"]] += n
    if sum(by_ttl.values()) != writes:
        raise ConversionError(
            f"usage.cacheDetails add up to {sum(by_ttl.values())} tokens, not the cacheWriteInputTokens {writes}: "
            "the counts do not add up"
        )
    return by_ttl["5m"], by_ttl["1h"]


def converse(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    u = obj(payload, "usage", "reply")
    if not u:
        raise ConversionError("not a Converse reply: no usage")
    known(u, USAGE, "usage")
    tier = obj(payload, "serviceTier", "reply")
    if payload.get("serviceTier") is not None:  # present: its type is required (ServiceTier)
        known(tier, {"type"}, "serviceTier")
        allowed(tier.get("type"), set(TIERS) - {None}, "serviceTier.type", TIER_WHY)
    performance = obj(payload, "performanceConfig", "reply")
    known(performance, {"latency"}, "performanceConfig")
    allowed(performance.get("latency"), (None, "standard"), "performanceConfig.latency", LATENCY_WHY)
    trace = obj(payload, "trace", "reply")
    if trace.get("guardrail") or payload.get("stopReason") == "guardrail_intervened":
        raise ConversionError(
            "a guardrail assessed this call: guardrails are billed per policy text unit, apart from the "
            "model's tokens; send the guardrail usage as a billing event"
        )
    router = obj(trace, "promptRouter", "trace")
    if router:
        invoked = router.get("invokedModelId")
        if not isinstance(invoked, str) or ids.model not in (invoked, invoked.rsplit("/", 1)[-1]):
            raise ConversionError(
                f"a prompt router served this call with {quoted(invoked)}, the model that is billed: "
                "give that model as the model option"
            )
    five, hour = _cache_writes(u)
    usage = {
        "input_tokens": count(u, "inputTokens", "usage", default=None),
        "cached_input_tokens": count(u, "cacheReadInputTokens", "usage"),
        "cache_write_tokens": five,
        "cache_write_1h_tokens": hour,
        "output_tokens": count(u, "outputTokens", "usage", default=None),
    }
    total(u.get("totalTokens"), sum(usage.values()), "totalTokens", "the sum of the input, cache and output counts")
    request_id = obj(payload, "ResponseMetadata", "reply").get("RequestId")
    return [event("bedrock", None, usage, ids, event_id=request_id, ts=None, service_tier=TIERS[tier.get("type")])]


_HEADERS = {
    "input_tokens": "x-amzn-bedrock-input-token-count",
    "output_tokens": "x-amzn-bedrock-output-token-count",
    "cached_input_tokens": "x-amzn-bedrock-cache-read-input-token-count",
    "cache_write_tokens": "x-amzn-bedrock-cache-write-input-token-count",
}
_TIER = "x-amzn-bedrock-service-tier"
_LATENCY = "x-amzn-bedrock-performanceconfig-latency"
_OTHER = {"x-amzn-bedrock-invocation-latency", "x-amzn-bedrock-content-type", _TIER, _LATENCY}


def invoke(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    headers = obj(obj(payload, "ResponseMetadata", "reply"), "HTTPHeaders", "ResponseMetadata") or payload
    h = {str(k).lower(): v for k, v in headers.items()}
    if _HEADERS["input_tokens"] not in h or _HEADERS["output_tokens"] not in h:
        raise ConversionError("not InvokeModel response headers: no X-Amzn-Bedrock-Input/Output-Token-Count")
    for name in h:
        if name.startswith("x-amzn-bedrock-") and name not in _OTHER and name not in _HEADERS.values():
            raise ConversionError(
                f"the header {quoted(name)} is not one this adapter knows: it may change the bill, "
                "so the payload is refused rather than priced without it"
            )
    allowed(h.get(_TIER), TIERS, "X-Amzn-Bedrock-Service-Tier", TIER_WHY)
    allowed(h.get(_LATENCY), (None, "standard"), "X-Amzn-Bedrock-PerformanceConfig-Latency", LATENCY_WHY)
    usage = {}
    for bucket, name in _HEADERS.items():
        raw = h.get(name, "0")
        if not (isinstance(raw, str) and raw.isascii() and raw.isdigit()):
            raise ConversionError(f"header {name} is not a count: {quoted(raw)}")
        usage[bucket] = int(raw)
    if usage["cache_write_tokens"]:
        raise ConversionError(
            f"{usage['cache_write_tokens']} cache-write tokens in X-Amzn-Bedrock-Cache-Write-Input-Token-Count: "
            "the headers do not say their TTL, and 1-hour writes are priced apart from 5-minute ones "
            "(the Converse reply's usage.cacheDetails does)"
        )
    return [
        event(
            "bedrock", None, usage, ids, event_id=h.get("x-amzn-requestid"), ts=None, service_tier=TIERS[h.get(_TIER)]
        )
    ]
