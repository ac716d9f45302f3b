"""Issue 23, the adapters' part: every payload field that changes the bill is mapped exactly or
refused with a reason naming it; counts that do not add up are refused; a missing count is never
taken as zero; tiers, speeds and regions are judged from allow-lists.

Each payload is shaped as the provider's own SDK type or API reference shows it (cited above
it); each test asserts the exact events, or the refusal and its reason. Costs are worked by hand
from the shipped catalogs (pricing/catalogs/*.yaml), which cite the providers' pages."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest

from adapters import ConversionError, Ids, convert
from pricing import load_catalog
from pricing.rating import Rejection, rate

CAT = load_catalog()
IDS = Ids(tenant_id="acme", user_id="alice")
TS = "2026-11-01T12:00:00Z"  # claude-sonnet-4-5-20250929 is in force (it ends 2026-11-30)
NOW = dt.datetime(2026, 11, 1, 13, 0, tzinfo=dt.UTC)


def refused(fmt: str, payload: dict[str, Any], ids: Ids = IDS) -> str:
    with pytest.raises(ConversionError) as exc:
        convert(fmt, payload, ids)
    return str(exc.value)


def cost(events: list[dict[str, Any]]) -> Decimal:
    out = Decimal(0)
    for e in events:
        priced = rate(orjson.dumps(e), CAT, now=NOW)
        assert not isinstance(priced, Rejection), priced
        out += Decimal(priced["cost"])
    return out


# ===================================================================================== Anthropic
# The Message shape: anthropic-sdk-python src/anthropic/types/message.py and types/usage.py
# (Usage: input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
# cache_creation {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}, output_tokens_details
# {thinking_tokens}, server_tool_use {web_search_requests, web_fetch_requests}, service_tier,
# inference_geo); the beta fields from types/beta/beta_usage.py (speed, iterations,
# fallback_credit).


def message(usage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_01HCDu5LRGeP2o7s2xGmxyFE",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
        **extra,
    }


A_IDS = Ids("acme", "alice", ts=TS)

# The compaction page's own example (https://platform.claude.com/docs/en/build-with-claude/compaction,
# "Understanding usage"): "The top-level input_tokens and output_tokens do not include compaction
# iteration usage ... To calculate total tokens consumed and billed for a request, sum across all
# entries in the usage.iterations array." Item shapes: types/beta/beta_compaction_iteration_usage.py
# and beta_message_iteration_usage.py.
COMPACTED: dict[str, Any] = message(
    {
        "input_tokens": 23000,
        "output_tokens": 1000,
        "iterations": [
            {"type": "compaction", "input_tokens": 180000, "output_tokens": 3500},
            {"type": "message", "input_tokens": 23000, "output_tokens": 1000},
        ],
    }
)


def test_a_compaction_iteration_is_billed_and_each_iteration_is_an_event_of_its_own():
    events = convert("anthropic", COMPACTED, A_IDS)
    assert [(e["event_id"], e["usage"]) for e in events] == [
        ("msg_01HCDu5LRGeP2o7s2xGmxyFE:0", {"input_tokens": 180000, "output_tokens": 3500}),
        ("msg_01HCDu5LRGeP2o7s2xGmxyFE:1", {"input_tokens": 23000, "output_tokens": 1000}),
    ]
    assert {e["model"] for e in events} == {"claude-sonnet-4-5-20250929"}
    # By hand, Sonnet 4.5 at $3 / $15 per 1M: 203,000 x 3/1M = 0.609; 4,500 x 15/1M = 0.0675.
    # Each iteration is judged on its own against the 200K long-context tier (the SDK's
    # iterations docstring: "Determine which iterations exceeded long context thresholds");
    # one summed event of 203,000 input tokens would be priced at the tier (1.31925).
    assert cost(events) == Decimal("0.6765")
    # what the top level alone bills (before: 23,000 x 3/1M + 1,000 x 15/1M): 8x less
    top = convert("anthropic", message({"input_tokens": 23000, "output_tokens": 1000}), A_IDS)
    assert cost(top) == Decimal("0.084")


def test_one_iteration_is_the_whole_message_and_an_empty_list_says_nothing():
    # A Messages reply with the compaction beta on but no compaction: "every response includes
    # usage.iterations, even if no compaction occurred" (same page); the item names the model
    # (beta_message_iteration_usage.py: model: Model).
    usage = {
        "input_tokens": 2,
        "output_tokens": 511,
        "cache_read_input_tokens": 3743,
        "cache_creation_input_tokens": 1928,
        "cache_creation": {"ephemeral_5m_input_tokens": 1928, "ephemeral_1h_input_tokens": 0},
        "iterations": [
            {
                "type": "message",
                "model": "claude-sonnet-4-5-20250929",
                "input_tokens": 2,
                "output_tokens": 511,
                "cache_read_input_tokens": 3743,
                "cache_creation_input_tokens": 1928,
                "cache_creation": {"ephemeral_5m_input_tokens": 1928, "ephemeral_1h_input_tokens": 0},
            }
        ],
        "service_tier": "standard",
    }
    (e,) = convert("anthropic", message(usage), A_IDS)
    assert e["event_id"] == "msg_01HCDu5LRGeP2o7s2xGmxyFE"
    assert e["usage"] == {
        "input_tokens": 2,
        "cached_input_tokens": 3743,
        "cache_write_tokens": 1928,
        "output_tokens": 511,
    }
    (plain,) = convert("anthropic", message({**usage, "iterations": []}), A_IDS)
    assert plain == e


ADVISED: dict[str, Any] = message(
    # The advisor tool page's example (https://platform.claude.com/docs/en/agents-and-tools/tool-use/advisor-tool,
    # "Usage and billing"): "Iterations with type: advisor_message are billed at the advisor
    # model's rates"; "Priority Tier applies to each model independently".
    {
        "input_tokens": 412,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens": 531,
        "iterations": [
            {
                "type": "message",
                "input_tokens": 412,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "output_tokens": 89,
            },
            {
                "type": "advisor_message",
                "model": "claude-fable-5",
                "input_tokens": 823,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "output_tokens": 1612,
            },
            {
                "type": "message",
                "input_tokens": 1348,
                "cache_read_input_tokens": 412,
                "cache_creation_input_tokens": 0,
                "output_tokens": 442,
            },
        ],
    },
)
FELL_BACK: dict[str, Any] = {
    # The server-side fallback example (https://platform.claude.com/docs/en/build-with-claude/refusals-and-fallback,
    # "What the response contains"): "Each attempt is billed separately, at the rates of the model
    # that ran it"; "An attempt that declined before producing output costs nothing".
    **message({}),
    "model": "claude-opus-4-8",
    "content": [
        {"type": "fallback", "from": {"model": "claude-fable-5"}, "to": {"model": "claude-opus-4-8"}},
        {"type": "text", "text": "Hi! How can I help you today?"},
    ],
    "usage": {
        "input_tokens": 412,
        "output_tokens": 264,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "iterations": [
            {
                "type": "message",
                "model": "claude-fable-5",
                "input_tokens": 535,
                "output_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
            {
                "type": "fallback_message",
                "model": "claude-opus-4-8",
                "input_tokens": 412,
                "output_tokens": 264,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        ],
    },
}


def with_usage(payload: dict[str, Any], **patch: Any) -> dict[str, Any]:
    return {**payload, "usage": {**payload["usage"], **patch}}


def iteration_patch(payload: dict[str, Any], index: int, **patch: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out["usage"]["iterations"][index].update(patch)
    return out


@pytest.mark.parametrize(
    "payload, reason",
    [
        (
            ADVISED,
            "usage.iterations[1] is an advisor_message (model 'claude-fable-5'): billed at the advisor model's rates "
            "under a service tier the message does not state",
        ),
        (
            FELL_BACK,
            "usage.iterations[0] names the model 'claude-fable-5', not the message's 'claude-opus-4-8': "
            "each model bills at its own rates",
        ),
        (
            iteration_patch(FELL_BACK, 0, model="claude-opus-4-8"),
            "usage.iterations[1] is a fallback_message (model 'claude-opus-4-8'): a server-side fallback bills each "
            "attempt at its own model's rates, and a declined attempt without output costs nothing",
        ),
        (
            iteration_patch(COMPACTED, 1, type="tool_result_summary"),
            "usage.iterations[1].type 'tool_result_summary': an iteration whose billing is not documented",
        ),
        (
            iteration_patch(COMPACTED, 1, output_tokens=999),
            "usage.output_tokens (1000) is not the sum of the message iterations' output_tokens (999): "
            "the counts do not add up",
        ),
        (
            iteration_patch(
                COMPACTED,
                0,
                cache_creation_input_tokens=2000,
                cache_creation={"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1999},
            ),
            "usage.iterations[0].cache_creation splits into 0 + 1999 tokens, not the cache_creation_input_tokens 2000",
        ),
        (
            {**COMPACTED, "usage": {**COMPACTED["usage"], "iterations": [{"type": "compaction", "output_tokens": 9}]}},
            "usage.iterations[0].input_tokens is missing",
        ),
        (iteration_patch(COMPACTED, 1, duration_ms=5), "usage.iterations[1] has the field 'duration_ms'"),
        (with_usage(COMPACTED, iterations={"type": "message"}), "usage.iterations is not an array"),
    ],
)
def test_iterations_that_cannot_be_billed_exactly_are_refused_with_the_reason(payload, reason):
    assert reason in refused("anthropic", payload, A_IDS)


SONNET: dict[str, Any] = message(
    {
        "input_tokens": 50,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2051, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
    }
)


@pytest.mark.parametrize("status", [{"type": "redeemed"}, {"type": "not_applied", "reason": "expired"}])
def test_a_fallback_credit_is_billed_from_the_counts_it_already_shows(status):
    # types/beta/beta_fallback_credit_usage.py (status: redeemed | not_applied); the fallback
    # credit page (https://platform.claude.com/docs/en/build-with-claude/fallback-credit, "Checking
    # that the credit applied"): "The refund is visible in the retry's usage ...
    # cache_creation_input_tokens is lower, and cache_read_input_tokens is higher by the same amount."
    (e,) = convert("anthropic", with_usage(SONNET, fallback_credit={"status": status}), A_IDS)
    assert e == convert("anthropic", SONNET, A_IDS)[0]
    assert "fallback_credit.status.type 'voided'" in refused(
        "anthropic", with_usage(SONNET, fallback_credit={"status": {"type": "voided"}}), A_IDS
    )
    assert "fallback_credit.status.type None" in refused("anthropic", with_usage(SONNET, fallback_credit={}), A_IDS)


@pytest.mark.parametrize(
    "payload, reason",
    [
        # types/beta/beta_container.py: "the container used in the request (for the code execution tool)"
        (
            {**SONNET, "container": {"id": "container_011CZ", "expires_at": "2026-11-01T13:00:00Z"}},
            "code execution container: billed per container-hour",
        ),
        # usage.py: inference_geo is a free string; the data residency page lists global and us
        (
            with_usage(SONNET, inference_geo="not_available"),
            "inference_geo 'not_available': only global and US-only (us) inference are documented with a price",
        ),
        (with_usage(SONNET, speed="fast"), "speed 'fast'"),
        (with_usage(SONNET, service_tier="priority"), "service_tier 'priority'"),
        (
            with_usage(SONNET, server_tool_use={"web_search_requests": 0, "web_fetch_requests": 0, "code_runs": 2}),
            "usage.server_tool_use has the field 'code_runs'",
        ),
        (with_usage(SONNET, cache_creation_output_tokens=7), "usage has the field 'cache_creation_output_tokens'"),
        (
            with_usage(SONNET, output_tokens_details={"thinking_tokens": 504}),
            "thinking_tokens exceed output_tokens",
        ),
    ],
)
def test_message_fields_that_change_the_bill_are_refused_when_not_standard(payload, reason):
    assert reason in refused("anthropic", payload, A_IDS)


def test_thinking_tokens_are_checked_and_not_kept():
    # output_tokens_details.thinking_tokens: "output_tokens remains the inclusive, authoritative
    # total used for billing"; the count is approximate (types/output_tokens_details.py)
    (e,) = convert("anthropic", with_usage(SONNET, output_tokens_details={"thinking_tokens": 400}), A_IDS)
    assert e == convert("anthropic", SONNET, A_IDS)[0]


# ======================================================================================= Bedrock
# ConverseResponse, TokenUsage, CacheDetail, ServiceTier, PerformanceConfiguration, ConverseTrace:
# botocore/data/bedrock-runtime/2023-09-30/service-2.json (botocore 0e6e2404); the Converse API
# reference (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html).

B_IDS = Ids(
    "acme", "alice", ts="2026-12-01T12:00:00Z", model="anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1"
)
CONVERSE: dict[str, Any] = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 1200,
        "outputTokens": 300,
        "totalTokens": 2400,
        "cacheReadInputTokens": 800,
        "cacheWriteInputTokens": 100,
        # "Detailed breakdown of cache writes by TTL. Empty if no cache creation occurred. Sorted
        # by TTL duration (1h before 5m)."
        "cacheDetails": [{"ttl": "5m", "inputTokens": 100}],
    },
    "metrics": {"latencyMs": 1275},
    "serviceTier": {"type": "default"},
    "performanceConfig": {"latency": "standard"},
    "ResponseMetadata": {"RequestId": "5c1b5e1a-req", "HTTPStatusCode": 200},
}
CONVERSE_USAGE = {"input_tokens": 1200, "cached_input_tokens": 800, "cache_write_tokens": 100, "output_tokens": 300}


def test_converse_five_minute_writes_default_tier_and_standard_latency_are_the_list_price():
    (e,) = convert("bedrock-converse", CONVERSE, B_IDS)
    assert e["usage"] == CONVERSE_USAGE and e["event_id"] == "5c1b5e1a-req"
    bare = {k: v for k, v in CONVERSE.items() if k not in ("serviceTier", "performanceConfig")}
    bare["usage"] = {k: v for k, v in CONVERSE["usage"].items() if k != "cacheDetails"}
    assert convert("bedrock-converse", bare, B_IDS) == [e]  # absent: the fields came with the request's options


def test_converse_priority_flex_and_one_hour_writes_are_mapped_and_priced_where_the_catalog_prices_them():
    """serviceTier.type priority / flex -> the event's service_tier (billing_event 1.1), and
    cacheDetails ttl 1h -> cache_write_1h_tokens: the shipped Bedrock catalog prices no service
    tier (Claude 3 Haiku) and no 1-hour write (Claude Sonnet 4.5) yet, so the rater refuses them
    with the reason; the conversion itself is exact."""
    (p,) = convert("bedrock-converse", {**CONVERSE, "serviceTier": {"type": "priority"}}, B_IDS)
    assert p["service_tier"] == "priority" and p["usage"] == CONVERSE_USAGE
    (f,) = convert("bedrock-converse", {**CONVERSE, "serviceTier": {"type": "flex"}}, B_IDS)
    assert f["service_tier"] == "flex"
    hour = {
        **CONVERSE,
        "usage": {
            **CONVERSE["usage"],
            "cacheDetails": [{"ttl": "1h", "inputTokens": 60}, {"ttl": "5m", "inputTokens": 40}],
        },
    }
    sonnet = dataclasses.replace(B_IDS, model="global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    (h,) = convert("bedrock-converse", hour, sonnet)
    assert h["usage"] == {**CONVERSE_USAGE, "cache_write_tokens": 40, "cache_write_1h_tokens": 60}
    later = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    assert (
        "does not price the service tier priority (it prices: standard)" in rate(orjson.dumps(p), CAT, now=later).reason
    )
    assert "has no price for cache_write_1h_tokens" in rate(orjson.dumps(h), CAT, now=later).reason
    (i,) = convert("bedrock-invoke", {**INVOKE, "X-Amzn-Bedrock-Service-Tier": "flex"}, B_IDS)
    assert i["service_tier"] == "flex" and i["usage"] == {"input_tokens": 1200, "output_tokens": 300}


@pytest.mark.parametrize(
    "patch, reason",
    [
        (
            {"serviceTier": {"type": "reserved"}},
            "serviceTier.type 'reserved': only the default (on-demand), priority and flex tiers have list prices",
        ),
        ({"serviceTier": {}}, "serviceTier.type None"),
        ({"performanceConfig": {"latency": "optimized"}}, "performanceConfig.latency 'optimized': latency-optimized"),
        (
            {
                "usage": {
                    **CONVERSE["usage"],
                    "cacheDetails": [{"ttl": "1h", "inputTokens": 0}, {"ttl": "5m", "inputTokens": 90}],
                }
            },
            "usage.cacheDetails add up to 90 tokens, not the cacheWriteInputTokens 100",
        ),
        (
            {"usage": {**CONVERSE["usage"], "cacheDetails": [{"ttl": "24h", "inputTokens": 100}]}},
            "usage.cacheDetails[0].ttl '24h'",
        ),
        ({"usage": {**CONVERSE["usage"], "totalTokens": 1500}}, "totalTokens 1500 is not the sum"),
        ({"usage": {**CONVERSE["usage"], "serverToolUsage": {}}}, "usage has the field 'serverToolUsage'"),
        (
            {"trace": {"guardrail": {"inputAssessment": {"gr-1": {"invocationMetrics": {"usage": {}}}}}}},
            "a guardrail assessed this call",
        ),
        ({"stopReason": "guardrail_intervened"}, "a guardrail assessed this call"),
        (
            {
                "trace": {
                    "promptRouter": {"invokedModelId": "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b"}
                }
            },
            "a prompt router served this call with 'arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b'",
        ),
    ],
)
def test_converse_tiers_latency_ttls_and_guardrails_priced_apart_are_refused(patch, reason):
    assert reason in refused("bedrock-converse", {**CONVERSE, **patch}, B_IDS)


def test_a_prompt_routers_invoked_model_is_the_one_billed():
    routed = {
        **CONVERSE,
        "trace": {
            "promptRouter": {
                "invokedModelId": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
            }
        },
    }
    assert convert("bedrock-converse", routed, B_IDS)[0]["usage"] == CONVERSE_USAGE


# InvokeModelResponse in the same service-2.json: X-Amzn-Bedrock-Service-Tier and
# X-Amzn-Bedrock-PerformanceConfig-Latency are response headers; the token counts are the
# X-Amzn-Bedrock-*-Token-Count headers.
INVOKE: dict[str, Any] = {
    "x-amzn-requestid": "9a2e-req",
    "x-amzn-bedrock-input-token-count": "1200",
    "x-amzn-bedrock-output-token-count": "300",
    "x-amzn-bedrock-invocation-latency": "812",
    "x-amzn-bedrock-service-tier": "default",
    "x-amzn-bedrock-performanceconfig-latency": "standard",
}


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"X-Amzn-Bedrock-Service-Tier": "reserved"}, "X-Amzn-Bedrock-Service-Tier 'reserved'"),
        ({"x-amzn-bedrock-performanceconfig-latency": "optimized"}, "PerformanceConfig-Latency 'optimized'"),
        (
            {"x-amzn-bedrock-cache-write-input-token-count": "100"},
            "100 cache-write tokens in X-Amzn-Bedrock-Cache-Write-Input-Token-Count: the headers do not say their TTL",
        ),
        ({"x-amzn-bedrock-guardrail-action": "INTERVENED"}, "the header 'x-amzn-bedrock-guardrail-action'"),
    ],
)
def test_invoke_headers_priced_apart_are_refused(patch, reason):
    headers = {k: v for k, v in INVOKE.items() if k.lower() not in {p.lower() for p in patch}}
    assert reason in refused("bedrock-invoke", {**headers, **patch}, B_IDS)
    (e,) = convert("bedrock-invoke", INVOKE, B_IDS)
    assert e["usage"] == {"input_tokens": 1200, "output_tokens": 300}


# ======================================================================================== OpenAI
# openai-python (e43b4224) src/openai/types/completion_usage.py (CompletionUsage: total_tokens
# "prompt + completion"; PromptTokensDetails: audio_tokens, cache_write_tokens, cached_tokens,
# image_tokens, text_tokens; CompletionTokensDetails: accepted/rejected_prediction_tokens,
# audio_tokens, reasoning_tokens, text_tokens), types/chat/chat_completion.py (service_tier:
# auto, default, flex, scale, priority, fast), types/responses/response_usage.py,
# types/responses/service_tier.py (adds ultrafast), types/responses/response_output_item.py.

CHAT: dict[str, Any] = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1764590400,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "service_tier": "default",
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0, "cache_write_tokens": 0, "image_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 12,
        },
    },
}
RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc054267",
    "object": "response",
    "created_at": 1764590400,
    "status": "completed",
    "model": "o3-2025-04-16",
    "service_tier": "default",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
    ],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128, "cache_write_tokens": 0},
        "output_tokens": 1052,
        "output_tokens_details": {"reasoning_tokens": 896},
        "total_tokens": 1380,
    },
}


def test_openai_payloads_whose_fields_are_all_standard_convert_as_before():
    (chat,) = convert("openai", CHAT, IDS)
    # rejected prediction tokens are "counted in the total completion tokens for purposes of
    # billing" (completion_usage.py): priced as output, within completion_tokens
    assert chat["usage"] == {"input_tokens": 86, "cached_input_tokens": 1920, "output_tokens": 300}
    (resp,) = convert("openai", RESPONSE, IDS)
    assert resp["usage"] == {
        "input_tokens": 200,
        "cached_input_tokens": 128,
        "output_tokens": 1052,
        "reasoning_tokens": 896,
    }


def usage_patch(payload: dict[str, Any], **patch: Any) -> dict[str, Any]:
    return {**payload, "usage": {**payload["usage"], **patch}}


@pytest.mark.parametrize(
    "payload, reason",
    [
        *(
            ({**CHAT, "service_tier": tier}, f"service_tier '{tier}': only default, flex and priority are priced")
            for tier in ("auto", "scale", "fast", "ultrafast")
        ),
        (
            usage_patch(CHAT, total_tokens=2300),
            "usage.total_tokens 2300 is not prompt_tokens + completion_tokens (2306): the counts do not add up",
        ),
        (
            usage_patch(RESPONSE, total_tokens=1052),
            "usage.total_tokens 1052 is not input_tokens + output_tokens (1380)",
        ),
        (
            usage_patch(CHAT, prompt_tokens_details={"cached_tokens": 0, "cache_write_tokens": 1500}),
            "1500 cache-write tokens (usage.prompt_tokens_details.cache_write_tokens): OpenAI bills cache writes apart",
        ),
        (
            usage_patch(RESPONSE, input_tokens_details={"cached_tokens": 0, "cache_write_tokens": 200}),
            "200 cache-write tokens (usage.input_tokens_details.cache_write_tokens)",
        ),
        (
            usage_patch(CHAT, prompt_tokens_details={"cached_tokens": 1920, "image_tokens": 65}),
            "1920 cached tokens with 0 audio and 65 image input tokens: which of them were cached",
        ),
        (usage_patch(CHAT, prompt_tokens_details={"video_tokens": 9}), "usage.prompt_tokens_details has the field"),
        (usage_patch(RESPONSE, tool_usage={"web_search": 1}), "usage has the field 'tool_usage'"),
        (
            {**RESPONSE, "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]},
            "output[0].type 'web_search_call': a built-in tool, billed per call or per container",
        ),
        (
            {**RESPONSE, "output": [*RESPONSE["output"], {"type": "code_interpreter_call", "id": "ci_1"}]},
            "output[3].type 'code_interpreter_call'",
        ),
        (usage_patch(CHAT, completion_tokens_details={"rejected_prediction_tokens": 301}), "exceed completion_tokens"),
    ],
)
def test_openai_fields_that_change_the_bill_are_refused_with_the_reason(payload, reason):
    assert reason in refused("openai", payload)


def test_a_transcription_usage_field_not_known_is_refused():
    # types/audio/transcription.py UsageDuration: {seconds, type: "duration"}
    ids = Ids(tenant_id="acme", user_id="u1", event_id="tr-1", ts="2026-12-02T08:00:00Z", model="whisper-1")
    assert "usage has the field 'billed_seconds'" in refused(
        "openai-transcription", {"usage": {"type": "duration", "seconds": 9, "billed_seconds": 10}}, ids
    )


# ===================================================================================== DashScope
# The DashScope API reference (https://www.alibabacloud.com/help/en/model-studio/qwen-api-via-dashscope):
# usage {input_tokens, output_tokens, total_tokens, prompt_tokens_details {cached_tokens},
# output_tokens_details {reasoning_tokens}, plugins {search {count, strategy}}}; the context
# cache page (https://www.alibabacloud.com/help/en/model-studio/context-cache): explicit cache
# creation 125% of input (cache_creation_input_tokens, cache_type "ephemeral"), explicit hits
# 10%, implicit hits 20%, "explicit cache and implicit cache are mutually exclusive".

D_IDS = Ids("acme", "alice", ts="2026-12-01T12:00:00Z", model="qwen-plus")
RESULT: dict[str, Any] = {
    "status_code": 200,
    "request_id": "902fee3b-f7f0-9a8c-96a1-6b4ea25af114",
    "code": "",
    "message": "",
    "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}]},
    "usage": {
        "input_tokens": 1000,
        "output_tokens": 200,
        "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 400},
        "output_tokens_details": {"reasoning_tokens": 0, "text_tokens": 200},
        "plugins": {"search": {"count": 0, "strategy": "turbo"}},
    },
}
# the context cache page's session-cache example, its x_details entry: explicit creation of 213
# tokens and hits of 1305 within input_tokens 1524
EXPLICIT: dict[str, Any] = {
    **RESULT,
    "usage": {
        "input_tokens": 1524,
        "output_tokens": 1534,
        "total_tokens": 3058,
        "prompt_tokens_details": {
            "cache_creation": {"ephemeral_5m_input_tokens": 213},
            "cache_creation_input_tokens": 213,
            "cache_type": "ephemeral",
            "cached_tokens": 0,
        },
    },
}


def test_dashscope_implicit_hits_and_explicit_creation_land_in_their_buckets():
    (e,) = convert("dashscope", RESULT, D_IDS)
    assert e["usage"] == {"input_tokens": 600, "cached_input_tokens": 400, "output_tokens": 200}
    (x,) = convert("dashscope", EXPLICIT, D_IDS)
    assert x["usage"] == {"input_tokens": 1311, "cache_write_tokens": 213, "output_tokens": 1534}


@pytest.mark.parametrize(
    "payload, reason",
    [
        (
            usage_patch(RESULT, output_tokens_details={"reasoning_tokens": 120, "text_tokens": 200}),
            "120 reasoning tokens (usage.output_tokens_details.reasoning_tokens): Model Studio prices thinking-mode "
            "output apart",
        ),
        (
            usage_patch(RESULT, total_tokens=1000),
            "usage.total_tokens 1000 is not input_tokens + output_tokens (1200): the counts do not add up",
        ),
        (
            usage_patch(
                EXPLICIT,
                prompt_tokens_details={**EXPLICIT["usage"]["prompt_tokens_details"], "cached_tokens": 1305},
            ),
            "1305 explicit-cache hits (cache_type ephemeral): priced at 10% of input",
        ),
        (
            usage_patch(RESULT, prompt_tokens_details={"cached_tokens": 0, "cache_creation_input_tokens": 50}),
            "cache_creation_input_tokens without a cache_type",
        ),
        (
            usage_patch(
                EXPLICIT,
                prompt_tokens_details={**EXPLICIT["usage"]["prompt_tokens_details"], "cache_type": "persistent"},
            ),
            "usage.prompt_tokens_details.cache_type 'persistent'",
        ),
        (
            usage_patch(RESULT, plugins={"search": {"count": 2, "strategy": "pro"}}),
            "2 web searches (usage.plugins.search.count): billed per search",
        ),
        (usage_patch(RESULT, image_tokens=1200), "1200 usage.image_tokens: priced apart from text tokens"),
        (
            usage_patch(RESULT, input_tokens_details={"text_tokens": 100, "audio_tokens": 900}),
            "900 usage.input_tokens_details.audio_tokens",
        ),
        (usage_patch(RESULT, characters=42), "usage has the field 'characters'"),
        (usage_patch(RESULT, output_tokens=None), "usage.output_tokens is missing"),
    ],
)
def test_dashscope_fields_that_change_the_bill_are_refused_with_the_reason(payload, reason):
    assert reason in refused("dashscope", payload, D_IDS)


# ========================================================================================== OTLP
# The GenAI semantic conventions (open-telemetry/semantic-conventions 7b0c0fe1,
# docs/registry/attributes/gen-ai.md and docs/gen-ai/openai.md; since moved to
# open-telemetry/semantic-conventions-genai): gen_ai.operation.name (chat, embeddings,
# generate_content, text_completion, invoke_agent, execute_tool...), gen_ai.usage.* (input
# "SHOULD include all types of input tokens, including cached tokens"), openai.request.service_tier
# ("if the request includes a service_tier and the value is not 'auto'") and
# openai.response.service_tier ("if the response was received and includes a service_tier").


def otlp(attrs: dict[str, Any]) -> dict[str, Any]:
    kv = [
        {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
        for k, v in attrs.items()
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "tenant.id", "value": {"stringValue": "acme"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "endTimeUnixNano": "1764590400250000000",
                                "attributes": kv,
                            }
                        ],
                    }
                ],
            }
        ]
    }


SPAN: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o",
    "gen_ai.response.id": "chatcmpl-otel-1",
    "gen_ai.usage.input_tokens": 2006,
    "gen_ai.usage.cache_read.input_tokens": 1920,
    "gen_ai.usage.output_tokens": 300,
    "user.id": "alice",
}
SPAN_USAGE = {"input_tokens": 86, "cached_input_tokens": 1920, "output_tokens": 300}


def without(attrs: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in keys}


def test_otlp_spans_priced_as_listed():
    (e,) = convert("otlp-json", otlp(SPAN), Ids())
    assert e["usage"] == SPAN_USAGE
    # the tier that served decides: flex asked for, default served (the response value "may be
    # different from the value set in the parameter", chat_completion.py)
    served = {**SPAN, "openai.request.service_tier": "flex", "openai.response.service_tier": "default"}
    assert convert("otlp-json", otlp(served), Ids())[0]["usage"] == SPAN_USAGE
    asked = {**SPAN, "openai.request.service_tier": "default"}
    assert convert("otlp-json", otlp(asked), Ids())[0]["usage"] == SPAN_USAGE
    embed = {
        **without(SPAN, "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens"),
        "gen_ai.operation.name": "embeddings",
        "gen_ai.response.model": "text-embedding-3-small",
    }
    assert convert("otlp-json", otlp(embed), Ids())[0]["usage"] == {"input_tokens": 2006}
    anthropic = {
        **SPAN,
        "gen_ai.provider.name": "anthropic",
        "gen_ai.response.model": "claude-sonnet-4-5",
        "anthropic.response.service_tier": "standard",
    }
    assert convert("otlp-json", otlp(anthropic), Ids())[0]["usage"] == SPAN_USAGE


@pytest.mark.parametrize(
    "attrs, reason",
    [
        (
            without(SPAN, "gen_ai.usage.input_tokens", "gen_ai.usage.cache_read.input_tokens"),
            "gen_ai.usage.input_tokens is missing from a chat span: an unknown count is refused, never taken as zero",
        ),
        (without(SPAN, "gen_ai.usage.output_tokens"), "gen_ai.usage.output_tokens is missing from a chat span"),
        (without(SPAN, "gen_ai.operation.name"), "gen_ai.operation.name is missing"),
        (
            {**SPAN, "gen_ai.operation.name": "invoke_agent"},
            "gen_ai.operation.name 'invoke_agent': usage is billed only from a model call's span",
        ),
        (
            {**SPAN, "openai.response.service_tier": "priority", "gen_ai.openai.response.service_tier": "default"},
            "the span names two response service tiers",
        ),
        ({**SPAN, "openai.response.service_tier": "ultrafast"}, "openai.response.service_tier 'ultrafast'"),
        ({**SPAN, "gen_ai.openai.response.service_tier": "scale"}, "gen_ai.openai.response.service_tier 'scale'"),
        ({**SPAN, "openai.request.service_tier": "auto"}, "openai.request.service_tier 'auto'"),
        ({**SPAN, "openai.request.service_tier": "flex"}, "openai.request.service_tier 'flex'"),
        (
            {**SPAN, "gen_ai.provider.name": "anthropic", "anthropic.response.service_tier": "priority"},
            "anthropic.response.service_tier 'priority'",
        ),
        ({**SPAN, "gen_ai.usage.prompt_tokens": 2006}, "'gen_ai.usage.prompt_tokens': a gen_ai.usage attribute"),
        (
            {**SPAN, "gen_ai.provider.name": "anthropic", "gen_ai.usage.cache_creation.input_tokens": 50},
            "gen_ai.usage.cache_creation.input_tokens 50: a span does not say the writes' TTL",
        ),
        (
            {**SPAN, "gen_ai.provider.name": "dashscope"},
            "gen_ai.usage.cache_read.input_tokens 1920: Model Studio prices implicit-cache hits",
        ),
        (
            {
                **without(SPAN, "gen_ai.usage.cache_read.input_tokens"),
                "gen_ai.provider.name": "dashscope",
                "gen_ai.usage.reasoning.output_tokens": 10,
            },
            "gen_ai.usage.reasoning.output_tokens 10: Model Studio prices thinking-mode output apart",
        ),
    ],
)
def test_otlp_spans_that_cannot_be_priced_exactly_are_refused_with_the_reason(attrs, reason):
    assert reason in refused("otlp-json", otlp(attrs), Ids())


# ================================================================== billing_event 1.1 buckets
# Audio, image and embedding payloads, priced from the shipped openai-usd.yaml (its sources: the
# OpenAI pricing page, each price checked against LiteLLM 1.110.2's map). Shapes: openai-python
# e43b4224: types/completion_usage.py (PromptTokensDetails.audio_tokens, text_tokens;
# CompletionTokensDetails.audio_tokens, text_tokens), types/create_embedding_response.py,
# types/images_response.py, types/audio/transcription.py (UsageTokens).

AUDIO_CHAT: dict[str, Any] = {
    "id": "chatcmpl-audio-1",
    "object": "chat.completion",
    "created": 1761998400,  # 2025-11-01T12:00:00Z
    "model": "gpt-audio",
    "choices": [{"index": 0, "message": {"role": "assistant", "audio": {"id": "audio_1"}}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 1062,
        "completion_tokens": 420,
        "total_tokens": 1482,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1000, "text_tokens": 62},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400, "text_tokens": 20},
    },
}


def test_chat_audio_tokens_are_their_own_buckets_and_priced_at_the_models_audio_prices():
    (e,) = convert("openai", AUDIO_CHAT, IDS)
    assert e["usage"] == {
        "input_tokens": 62,
        "audio_input_tokens": 1000,
        "output_tokens": 20,
        "audio_output_tokens": 400,
    }
    # gpt-audio: 62 x 2.50 + 1,000 x 32 + 20 x 10 + 400 x 64 = 57,955 per 1M
    assert cost([e]) == Decimal("0.057955")
    # the same usage on gpt-4o, which has no audio price: refused by the catalog, never priced as text
    (t,) = convert("openai", {**AUDIO_CHAT, "model": "gpt-4o"}, IDS)
    assert rate(orjson.dumps(t), CAT, now=NOW).reason == "openai/gpt-4o has no price for audio_input_tokens"


EMBEDDINGS: dict[str, Any] = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}
E_IDS = Ids("acme", "alice", event_id="emb-1", ts=TS)


def test_embeddings_are_priced_by_their_prompt_tokens():
    (e,) = convert("openai", EMBEDDINGS, E_IDS)
    assert e["usage"] == {"input_tokens": 8} and e["model"] == "text-embedding-3-small"
    assert cost([e]) == Decimal("0.00000016")  # 8 x $0.02 / 1M
    (big,) = convert("openai", {**EMBEDDINGS, "model": "text-embedding-3-large"}, E_IDS)
    assert cost([big]) == Decimal("0.00000104")  # 8 x $0.13 / 1M


@pytest.mark.parametrize(
    "payload, reason",
    [
        (usage_patch(EMBEDDINGS, total_tokens=9), "usage.total_tokens 9 is not prompt_tokens (8)"),
        ({**EMBEDDINGS, "data": [{"object": "list"}]}, "not an embeddings response"),
        (usage_patch(EMBEDDINGS, cached_tokens=2), "usage has the field 'cached_tokens'"),
        ({**EMBEDDINGS, "usage": {"total_tokens": 8}}, "usage.prompt_tokens is missing"),
    ],
)
def test_embeddings_that_cannot_be_priced_exactly_are_refused(payload, reason):
    assert reason in refused("openai", payload, E_IDS)


IMAGE_EDIT: dict[str, Any] = {
    "created": 1748001600,  # 2025-05-23T12:00:00Z
    "data": [{"b64_json": "iVBORw0KGgo="}],
    "background": "opaque",
    "output_format": "png",
    "quality": "high",
    "size": "1024x1024",
    "usage": {
        "input_tokens": 1050,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 1000},
        "output_tokens": 4160,
        "total_tokens": 5210,
    },
}
I_IDS = Ids("acme", "alice", event_id="img-1", model="gpt-image-1")


def test_image_tokens_are_priced_text_and_image_apart():
    (e,) = convert("openai-image", IMAGE_EDIT, I_IDS)
    assert e["usage"] == {"input_tokens": 50, "image_input_tokens": 1000, "image_output_tokens": 4160}
    assert e["ts"] == "2025-05-23T12:00:00Z"
    # gpt-image-1: 50 x 5 + 1,000 x 10 + 4,160 x 40 = 176,650 per 1M (high 1024x1024: 4,160 output tokens)
    assert cost([e]) == Decimal("0.17665")
    detailed = usage_patch(IMAGE_EDIT, output_tokens_details={"image_tokens": 4160, "text_tokens": 0})
    assert convert("openai-image", detailed, I_IDS) == [e]


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"created": 1748001600, "data": [{"url": "https://x"}]}, "a model priced per image (dall-e-2, dall-e-3)"),
        (
            usage_patch(IMAGE_EDIT, input_tokens_details={"text_tokens": 50, "image_tokens": 999}),
            "usage.input_tokens 1050 is not text_tokens + image_tokens (1049)",
        ),
        (
            {**IMAGE_EDIT, "usage": {**IMAGE_EDIT["usage"], "input_tokens_details": None}},
            "input_tokens_details is missing",
        ),
        (
            usage_patch(IMAGE_EDIT, output_tokens_details={"image_tokens": 4000, "text_tokens": 100}),
            "usage.output_tokens 4160 is not text_tokens + image_tokens (4100)",
        ),
        (usage_patch(IMAGE_EDIT, total_tokens=5000), "usage.total_tokens 5000 is not input_tokens + output_tokens"),
    ],
)
def test_image_payloads_that_cannot_be_priced_exactly_are_refused(payload, reason):
    assert reason in refused("openai-image", payload, I_IDS)


def test_a_token_billed_transcription_splits_audio_and_text_input():
    usage = {
        "type": "tokens",
        "input_tokens": 1214,
        "input_token_details": {"audio_tokens": 1200, "text_tokens": 14},
        "output_tokens": 230,
        "total_tokens": 1444,
    }
    (e,) = convert(
        "openai-transcription", {"text": "...", "usage": usage}, Ids("a", "b", "t-1", TS, "gpt-4o-transcribe")
    )
    assert e["usage"] == {"input_tokens": 14, "audio_input_tokens": 1200, "output_tokens": 230}
    # gpt-4o-transcribe is not catalogued: refused where it is priced, with the reason
    assert "unknown model 'gpt-4o-transcribe'" in rate(orjson.dumps(e), CAT, now=NOW).reason


def test_iterations_keep_their_one_hour_writes_and_the_searches_are_counted_once():
    """usage.iterations (beta_message_iteration_usage.py, beta_compaction_iteration_usage.py) each
    with its cache_creation split; the top level's server_tool_use goes on the first event only."""
    usage = {
        "input_tokens": 100,
        "output_tokens": 300,
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        "iterations": [
            {
                "type": "compaction",
                "input_tokens": 5000,
                "output_tokens": 100,
                "cache_creation_input_tokens": 1000,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
            },
            {"type": "message", "input_tokens": 100, "output_tokens": 300},
        ],
    }
    payload = {
        "id": "msg_iter_1h",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "usage": usage,
    }
    first, second = convert("anthropic", payload, Ids("acme", "alice", ts=TS))
    assert first["event_id"] == "msg_iter_1h:0" and first["usage"] == {
        "input_tokens": 5000,
        "cache_write_1h_tokens": 1000,
        "output_tokens": 100,
        "server_tool_requests": {"web_search": 2},
    }
    assert second["usage"] == {"input_tokens": 100, "output_tokens": 300}
    # Haiku 4.5: (5,000 x 1 + 1,000 x 2 + 100 x 5) + (100 x 1 + 300 x 5) per 1M, 2 searches x $10 / 1,000
    assert cost([first, second]) == Decimal("0.0291")
