"""Google Gemini ``generateContent`` responses: the Gemini Developer API (``--format gemini``,
provider ``google``) and Vertex AI (``--format vertex``, provider ``vertex``; its prices differ,
pricing/catalogs/google-usd.yaml and vertex-usd.yaml). One event per response. Shapes:
googleapis/python-genai ``google/genai/types.py`` (66807187, 2026-08-21)
``GenerateContentResponse``, ``GenerateContentResponseUsageMetadata``, ``ModalityTokenCount``,
``MediaModality``, ``TrafficType``, ``Candidate``; the REST reference
https://ai.google.dev/api/generate-content#UsageMetadata. The REST JSON is camelCase; the SDK's
``to_json_dict()`` gives the same fields in snake_case: both are read. docs/events-and-adapters.md
has the table.

``usageMetadata``:
  promptTokenCount            every prompt token, cached content INCLUDED (required)
  cachedContentTokenCount     the cached part of the prompt          -> cached_input_tokens
  toolUsePromptTokenCount     tool results fed back to the model: input, NOT in promptTokenCount
  candidatesTokenCount        the response, thoughts NOT included
  thoughtsTokenCount          thinking: billed as output ("Output price (including thinking
                              tokens)", ai.google.dev/gemini-api/docs/pricing) -> output_tokens,
                              and reasoning_tokens (a count)
  totalTokenCount             must be prompt + candidates + toolUsePrompt + thoughts, else refused
  promptTokensDetails, cacheTokensDetails, toolUsePromptTokensDetails, candidatesTokensDetails
                              [{modality, tokenCount}]: each list must add up to its count. TEXT
                              (and MODALITY_UNSPECIFIED, "treated as TEXT") -> the text buckets;
                              IMAGE and DOCUMENT ("billed at the image token rate", the pricing
                              page's notes) -> image_input_tokens / image_output_tokens; AUDIO ->
                              audio_input_tokens / audio_output_tokens; VIDEO -> refused
                              (billing_event has no video bucket, and the Live API models price
                              video apart from text). Cached AUDIO -> refused (one cached bucket;
                              the page prices cached audio apart). A list absent: all text.
  trafficType                 Vertex only: ON_DEMAND is the list price; ON_DEMAND_PRIORITY,
                              ON_DEMAND_FLEX, PROVISIONED_THROUGHPUT, TRAFFIC_TYPE_UNSPECIFIED or
                              absent -> refused
  any other field             -> refused
Counts the REST JSON leaves out are zero (proto3 JSON omits default values); promptTokenCount is
required. The uncached prompt by modality is the prompt's list less the cache's.

Also judged: ``candidates[].groundingMetadata`` (Grounding with Google Search or Maps, billed per
grounded prompt or search query beyond free daily allowances) -> refused; a candidate without
``finishReason`` (a stream chunk before the last, whose usage is partial) -> refused; an unknown
top-level or candidate field -> refused. The Gemini API states the service tier that served only
in the ``x-gemini-service-tier`` response header, read from the SDK's ``sdk_http_response``
when the payload has it: ``standard``; ``flex``, ``priority`` or any other -> refused. Without it
the request is priced at the standard tier, the default when a request names none.

Ids: event_id = ``responseId``, model = ``modelVersion``, ts = ``createTime`` (Vertex; the
Gemini API has none: --ts), tenant and user from the options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

from adapters.base import ConversionError, Ids, allowed, count, event, known, total
from schemas.validate import quoted

Backend = Literal["gemini", "vertex"]
PROVIDER: dict[Backend, str] = {"gemini": "google", "vertex": "vertex"}

# GenerateContentResponse fields (REST names); sdkHttpResponse, automaticFunctionCallingHistory
# and parsed are the SDK's own
TOP = {
    "candidates",
    "promptFeedback",
    "usageMetadata",
    "modelVersion",
    "responseId",
    "createTime",
    "modelStatus",
    "sdkHttpResponse",
    "automaticFunctionCallingHistory",
    "parsed",
}
CANDIDATE = {
    "content",
    "citationMetadata",
    "finishMessage",
    "tokenCount",
    "finishReason",
    "groundingMetadata",
    "avgLogprobs",
    "index",
    "logprobsResult",
    "safetyRatings",
    "urlContextMetadata",
}
USAGE = {
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "toolUsePromptTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
    "promptTokensDetails",
    "cacheTokensDetails",
    "candidatesTokensDetails",
    "toolUsePromptTokensDetails",
    "trafficType",
}
# MediaModality -> the billing group it is priced in
MODALITIES = {
    "MODALITY_UNSPECIFIED": "text",  # "When a modality is not specified, it is treated as TEXT"
    "TEXT": "text",
    "IMAGE": "image",
    "DOCUMENT": "image",  # "Tokens for the DOCUMENT modality ... are billed at the image token rate"
    "AUDIO": "audio",
    "VIDEO": "video",
}
TRAFFIC_STANDARD = {"ON_DEMAND"}
TIER_HEADER = "x-gemini-service-tier"
TIER_STANDARD = {"standard"}
_CREATE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def _enum(value: Any, where: str) -> Any:
    """An enum value as JSON gives it: a string (or absent); anything else is refused."""
    if value is not None and not isinstance(value, str):
        raise ConversionError(f"{where} is not a string: {quoted(value)}")
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _fields(o: Any, where: str) -> dict[str, Any]:
    """An object's fields under their REST (camelCase) names: the SDK's snake_case ones are
    renamed; a field given under both names is refused."""
    if not isinstance(o, dict):
        raise ConversionError(f"{where} is not an object")
    out: dict[str, Any] = {}
    for k, v in o.items():
        name = _camel(k) if isinstance(k, str) else k
        if name in out:
            raise ConversionError(f"{where} gives {quoted(name)} twice (camelCase and snake_case)")
        out[name] = v
    return out


def _by_modality(details: Any, stated: int, where: str, what: str) -> dict[str, int]:
    """A [{modality, tokenCount}] list as counts per billing group; it must add up to ``stated``.
    Absent: all ``stated`` tokens are text."""
    groups = dict.fromkeys(("text", "image", "audio", "video"), 0)
    if details is None:
        groups["text"] = stated
        return groups
    if not isinstance(details, list):
        raise ConversionError(f"{where} is not a list")
    seen: set[str] = set()
    for i, entry in enumerate(details):
        e = _fields(entry, f"{where}[{i}]")
        known(e, {"modality", "tokenCount"}, f"{where}[{i}]")
        modality = _enum(e.get("modality", "MODALITY_UNSPECIFIED"), f"{where}[{i}].modality")
        allowed(
            modality,
            MODALITIES,
            f"{where}[{i}].modality",
            "a modality this adapter does not know (MediaModality: TEXT, IMAGE, VIDEO, AUDIO, DOCUMENT)",
        )
        if modality in seen:
            raise ConversionError(f"{where} lists the modality {modality} twice")
        seen.add(modality)
        groups[MODALITIES[modality]] += count(e, "tokenCount", f"{where}[{i}]")
    listed = sum(groups.values())
    if listed != stated:
        raise ConversionError(f"{where} add up to {listed}, not {what} ({stated}): the counts do not add up")
    return groups


def _ts(value: Any) -> str:
    """Vertex's createTime (RFC 3339, up to nanoseconds) to microseconds, as the OTLP adapter
    reads nanosecond times: the digits past the sixth are dropped."""
    m = _CREATE_TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConversionError(f"createTime {quoted(value)} is not an RFC 3339 time")
    base, frac, offset = m.groups()
    return f"{base}{'.' + frac[:6] if frac else ''}{offset}"


def _tier(response: dict[str, Any]) -> None:
    """The Gemini API's service tier, from the response header the SDK keeps (absent: the request
    named none, so the standard tier served)."""
    http = response.get("sdkHttpResponse")
    if http is None:
        return
    h = _fields(http, "sdkHttpResponse")
    known(h, {"headers", "body"}, "sdkHttpResponse")
    headers = h.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ConversionError("sdkHttpResponse.headers is not an object")
    tiers = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == TIER_HEADER]
    if len(tiers) > 1:
        raise ConversionError(f"the response gives the header {TIER_HEADER} twice")
    if tiers:
        tier = _enum(tiers[0], TIER_HEADER)
        tier = tier.lower() if tier is not None else None
        allowed(
            tier,
            TIER_STANDARD,
            TIER_HEADER,
            "only the standard tier is priced here (flex and priority are priced apart; "
            "billing_event has no Google service tier)",
        )


def _candidates(response: dict[str, Any]) -> None:
    cands = response.get("candidates")
    if cands is None:
        return
    if not isinstance(cands, list):
        raise ConversionError("candidates is not a list")
    for i, raw in enumerate(cands):
        c = _fields(raw, f"candidates[{i}]")
        known(c, CANDIDATE, f"candidates[{i}]")
        grounding = c.get("groundingMetadata")
        if isinstance(grounding, dict) and any(grounding.values()):
            raise ConversionError(
                f"candidates[{i}].groundingMetadata: Grounding with Google Search or Maps is billed per "
                "grounded prompt or search query beyond a free daily allowance, which billing_event cannot hold"
            )
        if c.get("finishReason") is None:
            raise ConversionError(
                f"candidates[{i}] has no finishReason: a stream chunk before the last, whose usage is partial "
                "(send the last chunk, or the whole response)"
            )


def convert(payload: dict[str, Any], ids: Ids, backend: Backend = "gemini") -> list[dict[str, Any]]:
    response = _fields(payload, "response")
    known(response, TOP, "response")
    raw_usage = response.get("usageMetadata")
    if raw_usage is None:
        raise ConversionError("the response has no usageMetadata")
    u = _fields(raw_usage, "usageMetadata")
    known(u, USAGE, "usageMetadata")
    if backend == "gemini":
        for vertex_only in ("createTime", "trafficType"):
            if vertex_only in response or vertex_only in u:
                raise ConversionError(
                    f"{vertex_only} is a Vertex AI field: send Vertex AI responses as --format vertex "
                    "(Vertex prices differ from the Gemini API's)"
                )
        _tier(response)
    else:
        if "modelStatus" in response:
            raise ConversionError(
                "modelStatus is a Gemini API field: send Gemini API responses as --format gemini "
                "(its prices differ from Vertex AI's)"
            )
        if "sdkHttpResponse" in response:
            known(_fields(response["sdkHttpResponse"], "sdkHttpResponse"), {"headers", "body"}, "sdkHttpResponse")
        allowed(
            _enum(u.get("trafficType"), "usageMetadata.trafficType"),
            TRAFFIC_STANDARD,
            "usageMetadata.trafficType",
            "only ON_DEMAND (pay-as-you-go) is priced here: Priority and Flex pay-as-you-go are priced apart, "
            "Provisioned Throughput is billed per GSU, not per token, and an unstated type is not known",
        )
    _candidates(response)

    where = "usageMetadata"
    prompt = count(u, "promptTokenCount", where, default=None)
    cached = count(u, "cachedContentTokenCount", where)
    tool = count(u, "toolUsePromptTokenCount", where)
    candidates = count(u, "candidatesTokenCount", where)
    thoughts = count(u, "thoughtsTokenCount", where)
    total(
        u.get("totalTokenCount"),
        prompt + candidates + tool + thoughts,
        f"{where}.totalTokenCount",
        "promptTokenCount + candidatesTokenCount + toolUsePromptTokenCount + thoughtsTokenCount",
    )
    if cached > prompt:
        raise ConversionError(
            f"cachedContentTokenCount ({cached}) exceeds promptTokenCount ({prompt}), which includes it"
        )
    in_prompt = _by_modality(u.get("promptTokensDetails"), prompt, f"{where}.promptTokensDetails", "promptTokenCount")
    in_cache = _by_modality(
        u.get("cacheTokensDetails"), cached, f"{where}.cacheTokensDetails", "cachedContentTokenCount"
    )
    in_tool = _by_modality(
        u.get("toolUsePromptTokensDetails"), tool, f"{where}.toolUsePromptTokensDetails", "toolUsePromptTokenCount"
    )
    out = _by_modality(
        u.get("candidatesTokensDetails"), candidates, f"{where}.candidatesTokensDetails", "candidatesTokenCount"
    )
    uncached = {}
    for group, n in in_prompt.items():
        if in_cache[group] > n:
            raise ConversionError(
                f"{in_cache[group]} cached {group} tokens (cacheTokensDetails) exceed the prompt's {n} "
                "(promptTokensDetails), which include them"
            )
        uncached[group] = n - in_cache[group] + in_tool[group]
    if in_cache["audio"]:
        raise ConversionError(
            f"{in_cache['audio']} cached audio tokens: the Gemini pricing pages price cached audio apart from "
            "cached text, image and video, and billing_event has one cached-input bucket"
        )
    if uncached["video"]:
        raise ConversionError(
            f"{uncached['video']} video input tokens: billing_event has no video bucket (the Live API models "
            "price video apart from text)"
        )
    if out["video"]:
        raise ConversionError(f"{out['video']} video output tokens: billing_event has no video bucket")
    usage = {
        "input_tokens": uncached["text"],
        "cached_input_tokens": cached,
        "image_input_tokens": uncached["image"],
        "audio_input_tokens": uncached["audio"],
        "output_tokens": out["text"] + thoughts,
        "image_output_tokens": out["image"],
        "audio_output_tokens": out["audio"],
        "reasoning_tokens": thoughts,
    }
    created = response.get("createTime")
    return [
        event(
            PROVIDER[backend],
            response.get("modelVersion"),
            usage,
            ids,
            event_id=response.get("responseId"),
            ts=_ts(created) if created is not None else None,
        )
    ]


convert_gemini = partial(convert, backend="gemini")
convert_vertex = partial(convert, backend="vertex")
