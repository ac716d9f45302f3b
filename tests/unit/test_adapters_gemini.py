"""Gemini Developer API (`--format gemini`) and Vertex AI (`--format vertex`) generateContent
responses -> billing events (adapters/gemini.py), from payloads shaped as googleapis/python-genai
types.py (GenerateContentResponse, GenerateContentResponseUsageMetadata, ModalityTokenCount)
and the REST reference show them: cached content is part of promptTokenCount, thoughts are
output, tool-use prompt tokens are input, modalities land in their buckets or are refused, and
the converted events price to the figures of each provider's page (google-usd.yaml, vertex-usd.yaml)."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from adapters import ConversionError, Ids, convert
from pricing import load_catalog
from pricing.rating import Rejection, rate
from streams.cli.main import main
from streams.ingest.intake import Intake

CAT = load_catalog()
NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
TS = "2026-11-20T10:00:00Z"
IDS = Ids(tenant_id="acme", user_id="alice", ts=TS)

# A Gemini API response to an image prompt with implicit-cache hits and thinking, as the API
# returns it (REST camelCase; proto3 JSON leaves zero counts out)
GEMINI: dict[str, Any] = {
    "candidates": [
        {
            "content": {"parts": [{"text": "She has bright blue eyes."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 326,
        "candidatesTokenCount": 63,
        "totalTokenCount": 543,
        "cachedContentTokenCount": 173,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 68}, {"modality": "IMAGE", "tokenCount": 258}],
        "cacheTokensDetails": [{"modality": "IMAGE", "tokenCount": 137}, {"modality": "TEXT", "tokenCount": 36}],
        "thoughtsTokenCount": 154,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "VkH2aIbVB7_l1e8P4rrl0A4",
}
# Vertex AI adds createTime (a protobuf Timestamp, up to nanoseconds) and trafficType
VERTEX: dict[str, Any] = {
    **copy.deepcopy(GEMINI),
    "createTime": "2026-11-20T10:00:00.123456789Z",
    "responseId": "vtx-resp-1",
}
VERTEX["usageMetadata"]["trafficType"] = "ON_DEMAND"


def with_usage(base: dict, **usage) -> dict:
    out = copy.deepcopy(base)
    for k, v in usage.items():
        if v is None:
            out["usageMetadata"].pop(k, None)
        else:
            out["usageMetadata"][k] = v
    return out


def text_only(model: str, prompt: int, cached: int, candidates: int, thoughts: int = 0, tool: int = 0) -> dict:
    u = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": cached,
        "candidatesTokenCount": candidates,
        "thoughtsTokenCount": thoughts,
        "toolUsePromptTokenCount": tool,
        "totalTokenCount": prompt + candidates + thoughts + tool,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": cached}],
    }
    return {**copy.deepcopy(GEMINI), "modelVersion": model, "usageMetadata": {k: v for k, v in u.items() if v}}


def priced(fmt: str, payload: dict, ids: Ids = IDS) -> dict[str, Any]:
    (ev,) = convert(fmt, payload, ids)
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert not isinstance(result, Rejection), result.reason
    return dict(result)


def test_gemini_cached_content_is_part_of_the_prompt_and_thoughts_are_output():
    (ev,) = convert("gemini", GEMINI, IDS)
    assert ev["provider"] == "google" and ev["model"] == "gemini-2.5-flash"
    assert ev["event_id"] == "VkH2aIbVB7_l1e8P4rrl0A4" and ev["ts"] == TS
    # uncached by modality: text 68 - 36 = 32, image 258 - 137 = 121; output 63 + 154 thinking
    assert ev["usage"] == {
        "input_tokens": 32,
        "cached_input_tokens": 173,
        "image_input_tokens": 121,
        "output_tokens": 217,
        "reasoning_tokens": 154,
    }
    # ai.google.dev/gemini-api/docs/pricing, 2.5 Flash: $0.30 text/image input, $0.03 cache, $2.50 output
    assert Decimal(priced("gemini", GEMINI)["cost"]) == (
        Decimal(32 * 30 + 121 * 30 + 173 * 3 + 217 * 250) / Decimal(100_000_000)
    )


def test_the_sdk_snake_case_dump_reads_the_same():
    sdk = {
        "candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finish_reason": "STOP", "index": 0}],
        "usage_metadata": {
            "prompt_token_count": 326,
            "candidates_token_count": 63,
            "total_token_count": 543,
            "cached_content_token_count": 173,
            "prompt_tokens_details": [
                {"modality": "TEXT", "token_count": 68},
                {"modality": "IMAGE", "token_count": 258},
            ],
            "cache_tokens_details": [
                {"modality": "IMAGE", "token_count": 137},
                {"modality": "TEXT", "token_count": 36},
            ],
            "thoughts_token_count": 154,
        },
        "model_version": "gemini-2.5-flash",
        "response_id": "VkH2aIbVB7_l1e8P4rrl0A4",
        "sdk_http_response": {"headers": {"Content-Type": "application/json", "X-Gemini-Service-Tier": "standard"}},
    }
    assert convert("gemini", sdk, IDS) == convert("gemini", GEMINI, IDS)


def test_tool_use_prompt_tokens_are_input_and_audio_and_image_have_their_buckets():
    payload = with_usage(
        GEMINI,
        promptTokenCount=1000,
        cachedContentTokenCount=None,
        cacheTokensDetails=None,
        candidatesTokenCount=40,
        thoughtsTokenCount=None,
        toolUsePromptTokenCount=300,
        totalTokenCount=1340,
        promptTokensDetails=[
            {"modality": "TEXT", "tokenCount": 200},
            {"modality": "AUDIO", "tokenCount": 500},
            {"modality": "DOCUMENT", "tokenCount": 300},
        ],
        toolUsePromptTokensDetails=[{"modality": "TEXT", "tokenCount": 300}],
    )
    (ev,) = convert("gemini", payload, IDS)
    assert ev["usage"] == {
        "input_tokens": 500,
        "image_input_tokens": 300,
        "audio_input_tokens": 500,
        "output_tokens": 40,
    }
    # 2.5 Flash: text and image (DOCUMENT is billed at the image rate) $0.30, audio $1.00, output $2.50
    assert priced("gemini", payload)["cost"] == "0.00084"  # (800 x 0.30 + 500 x 1.00 + 40 x 2.50) / 1M


def test_image_output_is_its_own_bucket():
    payload = {
        **copy.deepcopy(GEMINI),
        "modelVersion": "gemini-2.5-flash-image",
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1302,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
            "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
        },
    }
    (ev,) = convert("gemini", payload, IDS)
    assert ev["usage"] == {"input_tokens": 12, "image_output_tokens": 1290}
    # "Image output is priced at $30 per 1,000,000 tokens. Output images up to 1024x1024px consume
    # 1290 tokens and are equivalent to $0.039 per image"
    assert priced("gemini", payload)["cost"] == "0.0387036"  # 12 x 0.30/1M + 0.0387


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"totalTokenCount": 544}, "usageMetadata.totalTokenCount 544 is not promptTokenCount + candidatesTokenCount"),
        ({"promptTokenCount": None}, "usageMetadata.promptTokenCount is missing"),
        ({"cachedContentTokenCount": 400}, "cachedContentTokenCount (400) exceeds promptTokenCount (326)"),
        (
            {"promptTokensDetails": [{"modality": "TEXT", "tokenCount": 68}]},
            "usageMetadata.promptTokensDetails add up to 68, not promptTokenCount (326)",
        ),
        (
            {"cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 173}]},
            "173 cached audio tokens (cacheTokensDetails) exceed the prompt's 0",
        ),
        ({"responseTokenCount": 3}, "usageMetadata has the field 'responseTokenCount'"),
        ({"serviceTier": "PAYG"}, "usageMetadata has the field 'serviceTier'"),
        (
            {
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 68},
                    {"modality": "HOLOGRAM", "tokenCount": 258},
                ]
            },
            "promptTokensDetails[1].modality 'HOLOGRAM'",
        ),
        (
            {
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 68},
                    {"modality": "VIDEO", "tokenCount": 258},
                ],
                "cacheTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 36},
                    {"modality": "VIDEO", "tokenCount": 137},
                ],
            },
            "121 video input tokens: billing_event has no video bucket",
        ),
        (
            {"candidatesTokensDetails": [{"modality": "VIDEO", "tokenCount": 63}]},
            "63 video output tokens",
        ),
        ({"trafficType": "ON_DEMAND"}, "trafficType is a Vertex AI field: send Vertex AI responses as --format vertex"),
        ({"thoughtsTokenCount": -1}, "thoughtsTokenCount must be an integer >= 0"),
    ],
)
def test_gemini_payloads_that_cannot_be_priced_exactly_are_refused(patch, reason):
    with pytest.raises(ConversionError) as exc:
        convert("gemini", with_usage(GEMINI, **patch), IDS)
    assert reason in str(exc.value)


def test_cached_audio_is_refused_one_cached_bucket_two_prices():
    payload = with_usage(
        GEMINI,
        promptTokenCount=1000,
        cachedContentTokenCount=800,
        totalTokenCount=1217,
        promptTokensDetails=[{"modality": "AUDIO", "tokenCount": 1000}],
        cacheTokensDetails=[{"modality": "AUDIO", "tokenCount": 800}],
    )
    with pytest.raises(ConversionError, match="800 cached audio tokens"):
        convert("gemini", payload, IDS)


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        (
            {"candidates": [{"finishReason": "STOP", "groundingMetadata": {"webSearchQueries": ["weather"]}}]},
            "candidates[0].groundingMetadata: Grounding with Google Search",
        ),
        (
            {"candidates": [{"content": {"parts": [{"text": "partial"}]}, "index": 0}]},
            "candidates[0] has no finishReason",
        ),
        ({"candidates": [{"finishReason": "STOP", "billedSeconds": 3}]}, "candidates[0] has the field 'billedSeconds'"),
        ({"serviceTier": "priority"}, "response has the field 'serviceTier'"),
        ({"sdkHttpResponse": {"headers": {"x-gemini-service-tier": "priority"}}}, "x-gemini-service-tier 'priority'"),
        ({"sdkHttpResponse": {"headers": {"x-gemini-service-tier": "flex"}}}, "x-gemini-service-tier 'flex'"),
        ({"createTime": "2026-11-20T10:00:00Z"}, "createTime is a Vertex AI field"),
        ({"usageMetadata": None}, "the response has no usageMetadata"),
    ],
)
def test_gemini_grounding_tiers_and_stream_chunks_are_refused(patch, reason):
    payload = {**copy.deepcopy(GEMINI), **patch}
    if payload["usageMetadata"] is None:
        del payload["usageMetadata"]
    with pytest.raises(ConversionError) as exc:
        convert("gemini", payload, IDS)
    assert reason in str(exc.value)


def test_empty_grounding_metadata_and_url_context_cost_their_tokens_only():
    payload = copy.deepcopy(GEMINI)
    payload["candidates"][0]["groundingMetadata"] = {"groundingChunks": [], "webSearchQueries": []}
    payload["candidates"][0]["urlContextMetadata"] = {"urlMetadata": [{"retrievedUrl": "https://example.com"}]}
    assert convert("gemini", payload, IDS) == convert("gemini", GEMINI, IDS)


def test_a_gemini_api_response_has_no_time_and_needs_ts():
    with pytest.raises(ConversionError, match="does not carry ts"):
        convert("gemini", GEMINI, Ids(tenant_id="acme", user_id="alice"))


# ------------------------------------------------------------------------------------- prices


def test_gemini_2_5_pro_below_and_above_200k_prompt_tokens():
    # ai.google.dev/gemini-api/docs/pricing, Gemini 2.5 Pro: $1.25 / $10.00 / cache $0.125 for
    # prompts <= 200k tokens; $2.50 / $15.00 / $0.25 above, the whole request
    below = priced("gemini", text_only("gemini-2.5-pro", 200_000, 150_000, 2_000, thoughts=3_000))
    assert below["cost"] == "0.13125"  # 50,000 x 1.25 + 150,000 x 0.125 + 5,000 x 10, per 1M
    above = priced("gemini", text_only("gemini-2.5-pro", 200_001, 150_000, 2_000, thoughts=3_000))
    assert above["cost"] == "0.2375025"  # 50,001 x 2.50 + 150,000 x 0.25 + 5,000 x 15, per 1M
    # tool-use prompt tokens are prompt tokens too: 199,000 + 2,000 is above 200K
    tool = priced("gemini", text_only("gemini-2.5-pro", 199_000, 0, 1_000, tool=2_000))
    assert tool["cost"] == "0.5175"  # 201,000 x 2.50 + 1,000 x 15, per 1M


def test_vertex_prices_differ_from_the_gemini_apis():
    payload = text_only("gemini-2.5-pro", 120_000, 100_000, 1_000)
    vertex = {**payload, "createTime": "2026-11-20T10:00:00Z"}
    vertex["usageMetadata"] = {**payload["usageMetadata"], "trafficType": "ON_DEMAND"}
    api = priced("gemini", payload)
    vtx = priced("vertex", vertex, Ids(tenant_id="acme", user_id="alice"))
    assert (api["provider"], vtx["provider"]) == ("google", "vertex")
    # cached input: $0.125 on the Gemini API, $0.13 on Vertex AI (its pricing page's Gemini 2.5 table)
    assert api["cost"] == "0.0475"  # 20,000 x 1.25 + 100,000 x 0.125 + 1,000 x 10, per 1M
    assert vtx["cost"] == "0.048"  # 20,000 x 1.25 + 100,000 x 0.13 + 1,000 x 10, per 1M


def test_vertex_create_time_and_traffic_type():
    (ev,) = convert("vertex", VERTEX, Ids(tenant_id="acme", user_id="alice"))
    assert ev["provider"] == "vertex" and ev["ts"] == "2026-11-20T10:00:00.123456Z"
    assert ev["event_id"] == "vtx-resp-1"
    for traffic in ("ON_DEMAND_PRIORITY", "ON_DEMAND_FLEX", "PROVISIONED_THROUGHPUT", "TRAFFIC_TYPE_UNSPECIFIED", None):
        with pytest.raises(ConversionError, match="usageMetadata.trafficType"):
            convert("vertex", with_usage(VERTEX, trafficType=traffic), IDS)
    with pytest.raises(ConversionError, match="modelStatus is a Gemini API field"):
        convert("vertex", {**VERTEX, "modelStatus": {"modelStage": "STABLE"}}, IDS)
    with pytest.raises(ConversionError, match="not an RFC 3339 time"):
        convert("vertex", {**VERTEX, "createTime": "yesterday"}, Ids(tenant_id="acme", user_id="alice"))


def test_retired_and_unpriced_models_are_rejected_never_zero():
    late = {**text_only("gemini-2.5-pro", 1_000, 0, 10)}
    (ev,) = convert("gemini", late, Ids(tenant_id="acme", user_id="alice", ts="2026-12-02T00:00:00Z"))
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "no price for google/gemini-2.5-pro in force" in result.reason
    (ev,) = convert("gemini", text_only("gemini-3.8-flash", 1_000, 0, 10), IDS)
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "unknown model 'gemini-3.8-flash'" in result.reason
    # the Gemini API is not priced by region
    (ev,) = convert("gemini", GEMINI, Ids(tenant_id="acme", user_id="alice", ts=TS, region="us-central1"))
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "unknown region 'us-central1' for provider google" in result.reason
    # Vertex 2.0 Flash has no cached price the engine can carry: cached tokens are rejected
    vertex = {**text_only("gemini-2.0-flash-001", 5_000, 4_000, 10), "createTime": TS}
    vertex["usageMetadata"]["trafficType"] = "ON_DEMAND"
    (ev,) = convert("vertex", vertex, IDS)
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "has no price for cached_input_tokens" in result.reason


# ----------------------------------------------------------------------- CLI and HTTP ingest


def test_meterstream_price_reads_gemini_payloads(tmp_path):
    path = tmp_path / "gemini.jsonl"
    path.write_bytes(orjson.dumps(GEMINI) + b"\n" + orjson.dumps(with_usage(GEMINI, totalTokenCount=1)) + b"\n")
    result = CliRunner().invoke(
        main,
        ["price", "--format", "gemini", "--tenant", "acme", "--user", "alice", "--ts", TS, str(path)],
        env={"MS_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.stdout.splitlines() if x.strip()]
    assert orjson.loads(line)["cost"] == "0.00059359" and orjson.loads(line)["provider"] == "google"
    assert "totalTokenCount 1 is not" in result.stderr


def test_the_ingest_converts_vertex_payloads():
    intake = Intake("meterstream ingest POST /v1/usage/vertex by gateway")
    intake.payload(0, "vertex", orjson.dumps(VERTEX), Ids(tenant_id="acme", user_id="alice"))
    intake.payload(1, "vertex", orjson.dumps(with_usage(VERTEX, trafficType="PROVISIONED_THROUGHPUT")), IDS)
    (event,) = intake.events
    assert orjson.loads(event)["provider"] == "vertex"
    assert [r["index"] for r in intake.rejected] == [1]
    assert "not converted (vertex): usageMetadata.trafficType 'PROVISIONED_THROUGHPUT'" in intake.rejected[0]["reason"]
