"""Azure OpenAI (`--format azure-openai`) -> billing events (adapters/azure.py): the OpenAI
payload as Azure returns it (Azure/azure-rest-api-specs AzureOpenAI inference 2024-10-21
createChatCompletionResponse: prompt_filter_results, choices[].content_filter_results), priced by
deployment type (the event's region: global, datazone-us/eu, or the Azure region of a regional
deployment) at the Azure retail prices in azure-usd.yaml."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import orjson
import pytest
import yaml

from adapters import ConversionError, Ids, azure, convert
from pricing import load_catalog
from pricing.catalog import SHIPPED_CATALOGS
from pricing.rating import Rejection, rate
from streams.ingest.intake import Intake

CAT = load_catalog()
NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
CREATED = 1795176000  # 2026-11-20T12:00:00Z

FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "jailbreak": {"filtered": False, "detected": False},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
# A chat completion as Azure OpenAI returns it: Azure's content-filter results, audio_tokens null
CHAT: dict[str, Any] = {
    "choices": [
        {
            "content_filter_results": FILTER,
            "finish_reason": "stop",
            "index": 0,
            "logprobs": None,
            "message": {"annotations": [], "content": "Hello!", "refusal": None, "role": "assistant"},
        }
    ],
    "created": CREATED,
    "id": "chatcmpl-AzureB1B91dBiElLvRKpj",
    "model": "gpt-4o-2024-11-20",
    "object": "chat.completion",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER}],
    "service_tier": None,
    "system_fingerprint": "fp_ee1d74bde0",
    "usage": {
        "completion_tokens": 2_000,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": 100_000,
        "prompt_tokens_details": {"audio_tokens": None, "cached_tokens": 40_000},
        "total_tokens": 102_000,
    },
}


def ids(region: str | None) -> Ids:
    return Ids(tenant_id="acme", user_id="alice", region=region)


def cost(payload: dict, region: str) -> str:
    (ev,) = convert("azure-openai", payload, ids(region))
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert not isinstance(result, Rejection), result.reason
    return result["cost"]


def test_azure_chat_completion_is_the_openai_mapping_under_provider_azure():
    (ev,) = convert("azure-openai", CHAT, ids("global"))
    assert ev["provider"] == "azure" and ev["region"] == "global" and ev["model"] == "gpt-4o-2024-11-20"
    assert ev["event_id"] == "chatcmpl-AzureB1B91dBiElLvRKpj" and ev["ts"] == "2026-11-20T12:00:00Z"
    assert ev["usage"] == {"input_tokens": 60_000, "cached_input_tokens": 40_000, "output_tokens": 2_000}


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        # Azure retail prices, gpt 4o 1120 meters, per 1M: Global 2.50 / cached 1.25 / 10
        ("global", "0.22"),  # 60,000 x 2.50 + 40,000 x 1.25 + 2,000 x 10
        # Data Zone 2.75 / 1.375 / 11 (10% above Global), the same in the US and EU zones
        ("datazone-us", "0.242"),  # 60,000 x 2.75 + 40,000 x 1.375 + 2,000 x 11
        ("datazone-eu", "0.242"),
        # regional: eastus 2.75 / 1.375 / 11; swedencentral 3.025 / 1.513 / 12.10
        ("eastus", "0.242"),
        ("swedencentral", "0.26622"),  # 60,000 x 3.025 + 40,000 x 1.513 + 2,000 x 12.10
    ],
)
def test_each_deployment_type_has_its_own_price(region, expected):
    assert cost(CHAT, region) == expected


def test_responses_api_payloads_and_undated_aliases():
    response = {
        "id": "resp_azure_1",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": "gpt-4.1",
        "output": [{"type": "message", "role": "assistant", "content": []}],
        "usage": {
            "input_tokens": 10_000,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 1_000,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 11_000,
        },
    }
    # gpt 4.1 meters: Global 2 / 8, Data Zone 2.20 / 8.80 per 1M
    assert cost(response, "global") == "0.028"
    assert cost(response, "datazone-eu") == "0.0308"


@pytest.mark.parametrize(
    ("region", "reason"),
    [
        (None, "does not state its deployment type: give it as the region"),
        ("provisioned", "a provisioned deployment is billed per PTU hour"),
        ("global-provisioned", "a provisioned deployment is billed per PTU hour"),
        ("global-batch", "is not a deployment type priced here"),
        ("datazone-apac", "is not a deployment type priced here"),
        ("usgovvirginia", "is not a deployment type priced here"),
    ],
)
def test_a_missing_or_unknown_deployment_type_is_refused(region, reason):
    with pytest.raises(ConversionError) as exc:
        convert("azure-openai", CHAT, ids(region))
    assert reason in str(exc.value)


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"service_tier": "priority"}, "service_tier 'priority'"),
        ({"service_tier": "auto"}, "service_tier 'auto'"),
        ({"content_filter_cost": 1}, "response has the field 'content_filter_cost'"),
        ({"object": "list"}, "not an Azure OpenAI chat.completion or response object"),
        (
            {"usage": {**CHAT["usage"], "total_tokens": 1}},
            "usage.total_tokens 1 is not prompt_tokens + completion_tokens",
        ),
        (
            {"usage": {**CHAT["usage"], "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 5}}},
            "5 cache-write tokens",
        ),
    ],
)
def test_azure_payloads_that_cannot_be_priced_exactly_are_refused(patch, reason):
    with pytest.raises(ConversionError) as exc:
        convert("azure-openai", {**CHAT, **patch}, ids("global"))
    assert reason in str(exc.value)


def test_choice_fields_are_judged_from_an_allow_list():
    payload = copy.deepcopy(CHAT)
    payload["choices"][0]["tokens_billed"] = 3
    with pytest.raises(ConversionError, match="choices\\[0\\] has the field 'tokens_billed'"):
        convert("azure-openai", payload, ids("global"))


def test_batch_is_refused_and_a_region_the_model_is_not_offered_in_is_rejected():
    with pytest.raises(ConversionError, match="batch deployments are not catalogued"):
        convert("azure-openai", CHAT, Ids(tenant_id="acme", user_id="alice", region="global", mode="batch"))
    # westeurope prices a regional gpt-4.1-mini, not a regional gpt-4o-2024-11-20
    (ev,) = convert("azure-openai", CHAT, ids("westeurope"))
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "is not offered in region westeurope" in result.reason
    # Azure's prices are read as in force from 2026-06-01
    early = {**CHAT, "created": 1748736000}  # 2025-06-01
    (ev,) = convert("azure-openai", early, ids("global"))
    result = rate(orjson.dumps(ev), CAT, now=NOW)
    assert isinstance(result, Rejection) and "no price for azure/gpt-4o-2024-11-20 in force" in result.reason


def test_the_adapters_deployment_types_are_the_catalogs_regions():
    doc = yaml.safe_load((SHIPPED_CATALOGS / "azure-usd.yaml").read_text())
    assert set(doc["regions"]) == set(azure.DEPLOYMENTS) | azure.REGIONAL
    offered = set().union(*(set(p["regions"]) for p in doc["products"]))
    assert offered == set(doc["regions"])


def test_the_ingest_takes_the_deployment_type_as_the_region():
    intake = Intake("meterstream ingest POST /v1/usage/azure-openai by gateway")
    intake.payload(0, "azure-openai", orjson.dumps(CHAT), ids("datazone-eu"))
    intake.payload(1, "azure-openai", orjson.dumps(CHAT), ids(None))
    (event,) = intake.events
    assert orjson.loads(event)["region"] == "datazone-eu" and orjson.loads(event)["provider"] == "azure"
    assert [r["index"] for r in intake.rejected] == [1]
    assert "does not state its deployment type" in intake.rejected[0]["reason"]
