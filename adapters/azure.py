"""Azure OpenAI (``--format azure-openai``, provider ``azure``): the OpenAI Chat Completions and
Responses payloads as Azure returns them, read by adapters/openai.py field by field (cached,
audio, image and reasoning tokens, ``total_tokens``, built-in tool calls: the same rules), with
what Azure adds and what it prices apart. Shapes: Azure/azure-rest-api-specs
``specification/cognitiveservices/data-plane/AzureOpenAI/inference/stable/2024-10-21/inference.yaml``
(``createChatCompletionResponse``: ``prompt_filter_results``, ``choices[].content_filter_results``)
and openai-python ``types/chat/chat_completion.py``; docs/events-and-adapters.md has the table.

Azure bills a deployment's tokens by its deployment type, which the response does not state: the
producer gives it as the event's region (``--region``, the ingest's ``region``), one of

  global                      Global Standard
  datazone-us, datazone-eu    Data Zone Standard in the US or EU data zone
  <Azure region id>           Standard (regional), the Azure region of the resource: eastus,
                              swedencentral, ... (REGIONAL below, the catalog's regions)

Provisioned deployments (Global, Data Zone or regional Provisioned-Managed) are billed per PTU
hour, not per token: refused; so are Batch deployments (not catalogued), any other deployment
type, and a missing one. ``service_tier``: ``default`` or absent (Azure sends ``null``); Priority
processing (``priority``) and any other tier -> refused (billing_event has no Azure tier).
A Chat Completions payload's top-level and choice fields are judged from an allow-list:
openai-python's ``ChatCompletion`` and ``Choice`` fields plus Azure's content-filter results
(``prompt_filter_results``, ``choices[].content_filter_results``), which are not billed (content
filtering is included in the token price). Azure OpenAI "On Your Data" bills its search service
apart, outside the response."""

from __future__ import annotations

from typing import Any

from adapters import openai
from adapters.base import ConversionError, Ids, allowed, known
from schemas.validate import quoted

PROVIDER = "azure"
DEPLOYMENTS = {"global": "Global Standard", "datazone-us": "Data Zone Standard", "datazone-eu": "Data Zone Standard"}
# The Azure regions that price a Standard (regional) deployment of a catalogued model
# (pricing/catalogs/azure-usd.yaml; tests/unit/test_adapters_azure.py checks the two agree)
REGIONAL = frozenset(
    {
        "australiaeast",
        "canadaeast",
        "centralus",
        "eastus",
        "eastus2",
        "francecentral",
        "japaneast",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "southindia",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "westcentralus",
        "westeurope",
        "westus",
        "westus2",
        "westus3",
    }
)
# openai-python ChatCompletion and Choice fields, and what Azure adds (not billed)
CHAT = {"id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"}
CHAT_AZURE = {"prompt_filter_results"}
CHOICE = {"index", "finish_reason", "message", "logprobs", "delta"}
CHOICE_AZURE = {"content_filter_results"}
TIERS = {None, "default"}


def deployment(region: str | None) -> str:
    """The deployment type a region names, or the reason it cannot be priced per token."""
    if region is None:
        raise ConversionError(
            "an Azure OpenAI response does not state its deployment type: give it as the region "
            "(global, datazone-us, datazone-eu, or the Azure region of a Standard regional deployment)"
        )
    if region in DEPLOYMENTS:
        return DEPLOYMENTS[region]
    if region in REGIONAL:
        return "Standard (regional)"
    if "provisioned" in region or region == "ptu":
        raise ConversionError(
            f"region {quoted(region)}: a provisioned deployment is billed per PTU hour, not per token"
        )
    raise ConversionError(
        f"region {quoted(region)} is not a deployment type priced here: global, datazone-us, datazone-eu, "
        "or the Azure region of a Standard (regional) deployment of a catalogued model"
    )


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    deployment(ids.region)
    if ids.mode != "realtime":
        raise ConversionError("Azure OpenAI batch deployments are not catalogued: their tokens cannot be priced")
    kind = payload.get("object")
    tier = payload.get("service_tier")
    if not isinstance(kind, str | None) or not isinstance(tier, str | None):
        raise ConversionError("object and service_tier are strings")
    if kind in ("chat.completion", "chat.completion.chunk"):
        known(payload, CHAT | CHAT_AZURE, "response")
        choices = payload.get("choices") or []
        if not isinstance(choices, list):
            raise ConversionError("choices is not a list")
        for i, choice in enumerate(choices):
            if not isinstance(choice, dict):
                raise ConversionError(f"choices[{i}] is not an object")
            known(choice, CHOICE | CHOICE_AZURE, f"choices[{i}]")
    elif kind != "response":
        raise ConversionError(f"not an Azure OpenAI chat.completion or response object (object: {quoted(kind)})")
    allowed(
        tier,
        TIERS,
        "service_tier",
        "only the default tier is priced here (Azure's priority processing is priced apart, and "
        "billing_event has no Azure service tier)",
    )
    events = openai.convert(payload, ids)
    for e in events:
        e["provider"] = PROVIDER
    return events
