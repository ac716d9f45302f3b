"""Provider payloads -> billing_event v1 (adapters/), from payloads shaped as each provider
documents them: cached, cache-write and reasoning tokens land in their buckets, what v1 cannot
hold is refused with the reason, and the converted events price as the catalogs say."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import orjson
import pytest

from adapters import ConversionError, Ids, convert
from pricing import load_catalog
from pricing.rating import Rejection, rate

IDS = Ids(tenant_id="acme", user_id="alice")
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
CAT = load_catalog()

# OpenAI Chat Completions, as in the API reference (usage with prompt/completion details)
CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1764590400,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
}
RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc054267",
    "object": "response",
    "created_at": 1764590400,
    "status": "completed",
    "model": "o3-mini",
    "output": [],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128},
        "output_tokens": 1052,
        "output_tokens_details": {"reasoning_tokens": 896},
        "total_tokens": 1380,
    },
}
ANTHROPIC = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2051, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}
CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 1200,
        "outputTokens": 300,
        "totalTokens": 1500 + 800 + 100,
        "cacheReadInputTokens": 800,
        "cacheWriteInputTokens": 100,
    },
    "metrics": {"latencyMs": 1275},
    "ResponseMetadata": {"RequestId": "5c1b5e1a-req", "HTTPStatusCode": 200},
}
INVOKE = {
    "ResponseMetadata": {
        "RequestId": "9a2e-req",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {
            "x-amzn-requestid": "9a2e-req",
            "x-amzn-bedrock-input-token-count": "1200",
            "x-amzn-bedrock-output-token-count": "300",
            "x-amzn-bedrock-invocation-latency": "812",
        },
    }
}
DASHSCOPE = {
    "status_code": 200,
    "request_id": "902fee3b-f7f0-9a8c-96a1-6b4ea25af114",
    "code": "",
    "message": "",
    "output": {
        "text": None,
        "finish_reason": None,
        "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}],
    },
    "usage": {
        "input_tokens": 1000,
        "output_tokens": 200,
        "total_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 400},
    },
}


def otlp(attrs: dict, resource: dict | None = None) -> dict:
    def kv(d: dict) -> list:
        return [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in d.items()
        ]

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kv(resource or {"service.name": "chat", "tenant.id": "acme"})},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1764590399000000000",
                                "endTimeUnixNano": "1764590400250000000",
                                "attributes": kv(attrs),
                            }
                        ],
                    }
                ],
            }
        ]
    }


def one(fmt: str, payload: dict, ids: Ids = IDS) -> dict:
    (event,) = convert(fmt, payload, ids)
    return event


def test_openai_chat_subtracts_cached_tokens_from_prompt_tokens():
    e = one("openai", CHAT)
    assert e["usage"] == {"input_tokens": 86, "cached_input_tokens": 1920, "output_tokens": 300}
    assert (e["event_id"], e["ts"], e["model"], e["provider"]) == (
        CHAT["id"],
        "2025-12-01T12:00:00Z",
        "gpt-4o",
        "openai",
    )


def test_openai_responses_keep_reasoning_as_a_count_inside_output():
    e = one("openai", RESPONSE)
    assert e["usage"] == {
        "input_tokens": 200,
        "cached_input_tokens": 128,
        "output_tokens": 1052,
        "reasoning_tokens": 896,
    }


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"prompt_tokens_details": {"cached_tokens": 7, "audio_tokens": 12}}, "which of them were cached"),
        ({"completion_tokens_details": {"audio_tokens": 301}}, "audio output tokens \\(301\\) exceed"),
        ({"prompt_tokens_details": {"cached_tokens": 5000}}, "exceed prompt_tokens"),
        ({"completion_tokens_details": {"reasoning_tokens": 301}}, "exceed completion_tokens"),
        ({"prompt_tokens": -1}, "integer >= 0"),
        ({"completion_tokens": 1.5}, "integer >= 0"),
        ({"prompt_tokens": None}, "prompt_tokens is missing"),
    ],
)
def test_openai_payloads_that_cannot_be_converted_exactly_are_refused_with_the_reason(patch, reason):
    payload = {**CHAT, "usage": {**CHAT["usage"], **patch}}
    with pytest.raises(ConversionError, match=reason):
        convert("openai", payload, IDS)


def test_anthropic_input_excludes_cache_and_writes_are_their_own_bucket():
    e = one("anthropic", ANTHROPIC, Ids("acme", "alice", ts="2026-12-01T12:00:00Z"))
    assert e["usage"] == {
        "input_tokens": 50,
        "cached_input_tokens": 4000,
        "cache_write_tokens": 2051,
        "output_tokens": 503,
    }
    assert e["provider"] == "anthropic" and e["model"] == "claude-sonnet-4-5-20250929"


def test_anthropic_one_hour_cache_writes_are_their_own_bucket_and_a_missing_time_is_refused():
    """usage.cache_creation (anthropic-sdk-python types/cache_creation.py) splits the writes by TTL:
    5-minute -> cache_write_tokens, 1-hour -> cache_write_1h_tokens (billing_event 1.1), priced at
    2 x input (pricing page, prompt caching): Sonnet 4.5 $6 per 1M."""
    hour = {
        **ANTHROPIC,
        "usage": {
            **ANTHROPIC["usage"],
            "cache_creation": {"ephemeral_5m_input_tokens": 51, "ephemeral_1h_input_tokens": 2000},
        },
    }
    ev = one("anthropic", hour, Ids("acme", "alice", ts="2026-10-01T12:00:00Z"))
    assert ev["usage"] == {
        "input_tokens": 50,
        "cached_input_tokens": 4000,
        "cache_write_tokens": 51,
        "cache_write_1h_tokens": 2000,
        "output_tokens": 503,
    }
    priced = rate(orjson.dumps(ev), CAT, now=NOW)
    # (50 x 3 + 4,000 x 0.30 + 51 x 3.75 + 2,000 x 6 + 503 x 15) / 1M = 21,086.25 / 1M
    assert priced["cost"] == "0.02108625", priced
    bad_split = {**ANTHROPIC, "usage": {**ANTHROPIC["usage"], "cache_creation": {"ephemeral_5m_input_tokens": 1}}}
    with pytest.raises(ConversionError, match="splits"):
        convert("anthropic", bad_split, Ids("acme", "alice", ts="2026-12-01T12:00:00Z"))
    with pytest.raises(ConversionError, match="does not carry ts"):
        convert("anthropic", ANTHROPIC, IDS)


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"service_tier": "priority"}, "service_tier 'priority'"),
        ({"service_tier": "turbo"}, "service_tier 'turbo'"),
        ({"speed": "fast"}, "speed 'fast'"),
        ({"inference_geo": "not_available"}, "inference_geo 'not_available'"),
        ({"server_tool_use": {"web_fetch_requests": -1}}, "integer >= 0"),
    ],
)
def test_anthropic_tiers_and_tools_the_catalog_does_not_price_are_refused(patch, reason):
    """Each of these is billed at a price the list does not state: never priced as standard."""
    payload = {**ANTHROPIC, "usage": {**ANTHROPIC["usage"], **patch}}
    with pytest.raises(ConversionError, match=reason):
        convert("anthropic", payload, Ids("acme", "alice", ts="2026-12-01T12:00:00Z"))


def test_an_anthropic_batch_message_is_priced_as_batch_and_web_fetch_costs_its_tokens():
    ids = Ids("acme", "alice", ts="2026-12-01T12:00:00Z")
    usage = {
        **ANTHROPIC["usage"],
        "service_tier": "batch",
        "inference_geo": "global",
        "speed": "standard",
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 2},
    }
    e = one("anthropic", {**ANTHROPIC, "usage": usage}, ids)
    assert e["mode"] == "batch" and e["usage"] == one("anthropic", ANTHROPIC, ids)["usage"]
    assert "mode" not in one("anthropic", ANTHROPIC, ids)  # standard: realtime
    with pytest.raises(ConversionError, match="mode batch was given, but the message's service_tier is standard"):
        convert("anthropic", ANTHROPIC, dataclasses.replace(ids, mode="batch"))
    assert one("anthropic", {**ANTHROPIC, "usage": usage}, dataclasses.replace(ids, mode="batch"))["mode"] == "batch"
    in_force = dataclasses.replace(ids, ts="2026-11-01T12:00:00Z")  # Sonnet 4.5's entry ends 2026-11-30
    standard, batch = (
        rate(orjson.dumps(one("anthropic", {**ANTHROPIC, "usage": u}, in_force)), CAT, now=NOW)
        for u in (ANTHROPIC["usage"], usage)
    )
    assert Decimal(batch["cost"]) * 2 == Decimal(standard["cost"]) == Decimal("0.01658625")  # batch_factor 0.5


def test_anthropic_us_only_inference_and_web_search_are_priced():
    """usage.inference_geo us (data-residency page) -> the event's inference_geo; server_tool_use
    web_search_requests -> server_tool_requests.web_search (billing_event 1.1)."""
    usage = {
        **ANTHROPIC["usage"],
        "inference_geo": "us",
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
    }
    ev = one("anthropic", {**ANTHROPIC, "model": "claude-opus-4-8", "usage": usage}, Ids("acme", "alice", ts=TS_DEC))
    assert ev["inference_geo"] == "us" and ev["usage"]["server_tool_requests"] == {"web_search": 3}
    priced = rate(orjson.dumps(ev), CAT, now=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
    # tokens at 1.1 x (50 x 5 + 4,000 x 0.5 + 2,051 x 6.25 + 503 x 25 = 27,643.75 per 1M) = 0.030408125;
    # 3 searches x $10 / 1,000 = 0.03
    assert priced["cost"] == "0.060408125", priced
    # the same on a model released before Opus 4.6: the API does not take inference_geo there
    sonnet = one("anthropic", {**ANTHROPIC, "usage": usage}, Ids("acme", "alice", ts="2026-10-01T12:00:00Z"))
    assert "does not price the inference_geo us" in rate(orjson.dumps(sonnet), CAT, now=NOW).reason


TS_DEC = "2026-12-05T12:00:00Z"


@pytest.mark.parametrize("tier", ["flex", "priority"])
def test_openai_flex_and_priority_are_the_events_service_tier(tier):
    """service_tier as the response states it (openai-python types/chat/chat_completion.py)."""
    ev = one("openai", {**CHAT, "model": "gpt-5", "service_tier": tier}, dataclasses.replace(IDS, ts=TS_DEC))
    assert ev["service_tier"] == tier
    priced = rate(orjson.dumps(ev), CAT, now=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
    # gpt-5: 86 in + 1,920 cached + 300 out; flex x0.5 of 1.25 / 0.125 / 10, priority 2.5 / 0.25 / 20 per 1M
    assert priced["cost"] == {"flex": "0.0016737500", "priority": "0.006695"}[tier].rstrip("0"), priced
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-5",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "user.id": "alice",
    }
    span = one("otlp-json", otlp({**attrs, "openai.response.service_tier": tier}), Ids())
    assert span["service_tier"] == tier
    with pytest.raises(ConversionError, match=f"openai.request.service_tier '{tier}'"):
        convert("otlp-json", otlp({**attrs, "openai.request.service_tier": tier}), Ids())


@pytest.mark.parametrize("tier", ["scale", "auto", "fast"])
def test_openai_service_tiers_without_a_price_are_refused(tier):
    with pytest.raises(ConversionError, match=f"service_tier '{tier}'"):
        convert("openai", {**CHAT, "service_tier": tier}, IDS)
    assert one("openai", {**CHAT, "service_tier": "default"})["usage"] == one("openai", CHAT)["usage"]
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "user.id": "alice",
    }
    with pytest.raises(ConversionError, match=f"openai.response.service_tier '{tier}'"):
        convert("otlp-json", otlp({**attrs, "openai.response.service_tier": tier}), Ids())
    assert one("otlp-json", otlp({**attrs, "openai.response.service_tier": "default"}), Ids())["usage"]


def test_bedrock_converse_and_invoke_headers():
    ids = Ids(
        "acme", "alice", ts="2026-12-01T12:00:00Z", model="anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1"
    )
    c = one("bedrock-converse", CONVERSE, ids)
    assert c["usage"] == {
        "input_tokens": 1200,
        "cached_input_tokens": 800,
        "cache_write_tokens": 100,
        "output_tokens": 300,
    }
    assert c["event_id"] == "5c1b5e1a-req" and c["region"] == "us-east-1"
    i = one("bedrock-invoke", INVOKE, ids)
    assert i["usage"] == {"input_tokens": 1200, "output_tokens": 300} and i["event_id"] == "9a2e-req"
    flat = one(
        "bedrock-invoke",
        {"X-Amzn-Bedrock-Input-Token-Count": "7", "X-Amzn-Bedrock-Output-Token-Count": "2", "X-Amzn-RequestId": "r1"},
        ids,
    )
    assert flat["usage"] == {"input_tokens": 7, "output_tokens": 2}
    with pytest.raises(ConversionError, match="totalTokens"):
        convert("bedrock-converse", {**CONVERSE, "usage": {**CONVERSE["usage"], "totalTokens": 1500}}, ids)
    with pytest.raises(ConversionError, match="does not carry model"):
        convert("bedrock-converse", CONVERSE, Ids("acme", "alice", ts="2026-12-01T12:00:00Z"))
    with pytest.raises(ConversionError, match="not a count"):
        convert(
            "bedrock-invoke", {"x-amzn-bedrock-input-token-count": "1e3", "x-amzn-bedrock-output-token-count": "1"}, ids
        )


def test_dashscope_cached_tokens_are_part_of_input_tokens():
    e = one("dashscope", DASHSCOPE, Ids("acme", "alice", ts="2026-12-01T12:00:00Z", model="qwen-plus"))
    assert e["usage"] == {"input_tokens": 600, "cached_input_tokens": 400, "output_tokens": 200}
    assert e["provider"] == "bailian" and e["event_id"] == DASHSCOPE["request_id"]
    with pytest.raises(ConversionError, match="failed call"):
        convert("dashscope", {**DASHSCOPE, "status_code": 400, "code": "InvalidParameter"}, IDS)


def test_otlp_input_includes_cached_by_default_and_the_choice_is_per_source():
    attrs = {
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
    e = one("otlp-json", otlp(attrs), Ids())
    assert e["usage"] == {"input_tokens": 86, "cached_input_tokens": 1920, "output_tokens": 300}
    assert (e["tenant_id"], e["user_id"], e["event_id"], e["ts"]) == (
        "acme",
        "alice",
        "chatcmpl-otel-1",
        "2025-12-01T12:00:00.250000Z",
    )
    excluded = one("otlp-json-cached-excluded", otlp({**attrs, "gen_ai.usage.input_tokens": 86}), Ids())
    assert excluded["usage"] == e["usage"]
    with pytest.raises(ConversionError, match="exceed"):
        convert("otlp-json", otlp({**attrs, "gen_ai.usage.input_tokens": 10}), Ids())
    with pytest.raises(ConversionError, match="no catalog provider"):
        convert("otlp-json", otlp({**attrs, "gen_ai.provider.name": "gcp.vertex_ai"}), Ids())
    no_id = {k: v for k, v in attrs.items() if k != "gen_ai.response.id"}
    assert one("otlp-json", otlp(no_id), Ids())["event_id"] == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    with pytest.raises(ConversionError, match="no span with gen_ai.usage"):
        convert("otlp-json", otlp({"http.method": "GET"}), Ids())


def test_converted_events_price_exactly_as_the_catalog_says():
    """Priced through the engine: cached tokens at the cached price, reasoning as output (the
    gpt-4o prices of pricing/catalogs/openai-usd.yaml)."""
    chat = rate(orjson.dumps(one("openai", {**CHAT, "created": int(NOW.timestamp())})), CAT, now=NOW)
    assert not isinstance(chat, Rejection), chat
    # by hand: $2.50, $1.25 and $10.00 per 1M input, cached input and output tokens
    items = {i["dimension"]: Decimal(i["cost"]) for i in chat["line_items"]}
    assert items == {
        "input_tokens": Decimal(86) * Decimal("2.50") / 10**6,
        "cached_input_tokens": Decimal(1920) * Decimal("1.25") / 10**6,
        "output_tokens": Decimal(300) * Decimal("10.00") / 10**6,
    }
    assert Decimal(chat["cost"]) == Decimal("0.005615")
    bedrock = rate(
        orjson.dumps(
            one(
                "bedrock-invoke",
                INVOKE,
                Ids(
                    "acme",
                    "alice",
                    ts=NOW.isoformat(),
                    model="anthropic.claude-3-haiku-20240307-v1:0",
                    region="us-east-1",
                ),
            )
        ),
        CAT,
        now=NOW,
    )
    assert not isinstance(bedrock, Rejection), bedrock
    assert (
        Decimal(bedrock["cost"])
        == Decimal("1200") * Decimal("0.00025") / 1000 + Decimal("300") * Decimal("0.00125") / 1000
    )


def test_reasoning_tokens_cannot_exceed_output_tokens_in_an_event():
    raw = orjson.dumps(
        {
            "event_id": "r1",
            "ts": NOW.isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"input_tokens": 1, "output_tokens": 5, "reasoning_tokens": 6},
        }
    )
    result = rate(raw, CAT, now=NOW)
    assert isinstance(result, Rejection) and "reasoning_tokens" in result.reason


WHISPER_IDS = Ids(tenant_id="acme", user_id="u1", event_id="tr-1", ts="2026-12-02T08:00:00Z", model="whisper-1")


def test_openai_transcription_is_billed_by_audio_duration():
    # the json response of /v1/audio/transcriptions: the transcript is not kept
    [ev] = convert(
        "openai-transcription", {"text": "bonjour", "usage": {"type": "duration", "seconds": 90.5}}, WHISPER_IDS
    )
    assert ev["usage"] == {"audio_seconds": "90.5"} and "bonjour" not in orjson.dumps(ev).decode()
    priced = rate(orjson.dumps(ev), load_catalog(), now=dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC))
    assert not isinstance(priced, Rejection), priced
    assert Decimal(priced["cost"]) == Decimal("0.00905")  # 90.5 s x $0.006 / 60 s
    [whole] = convert("openai-transcription", {"usage": {"type": "duration", "seconds": 60}}, WHISPER_IDS)
    assert whole["usage"] == {"audio_seconds": "60"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"text": "x"}, "no usage"),
        ({"usage": {"type": "tokens", "input_tokens": 10, "output_tokens": 3}}, "input_token_details is missing"),
        (
            {
                "usage": {
                    "type": "tokens",
                    "input_tokens": 10,
                    "output_tokens": 3,
                    "input_token_details": {"audio_tokens": 9, "text_tokens": 2},
                }
            },
            "is not audio_tokens \\+ text_tokens",
        ),
        ({"usage": {"type": "duration", "seconds": 8.470000267028809}}, "at most 3 decimal places"),
        ({"usage": {"type": "duration", "seconds": "9"}}, "must be a number"),
        ({"usage": {"type": "duration", "seconds": 0}}, "must be > 0"),
    ],
)
def test_openai_transcriptions_that_cannot_be_billed_exactly_are_refused(payload, reason):
    with pytest.raises(ConversionError, match=reason):
        convert("openai-transcription", payload, WHISPER_IDS)


def test_a_created_time_beyond_the_calendar_is_refused_not_raised():
    from adapters import Ids, convert
    from adapters.base import ConversionError

    payload = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 10**12,  # about the year 33658: no datetime holds it
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    with pytest.raises(ConversionError, match="is not a unix time of a year 1-9999"):
        convert("openai", payload, Ids(tenant_id="acme", user_id="u"))
