"""The catalog format's billing_event 1.1 parts (pricing/catalogs/FORMAT.md): the new token
dimensions, server tools priced per request with `tool:`, service tiers (a factor, or prices of
their own with `service_tier:`) and inference geographies (a factor), each with its source. A
catalog that would price an event ambiguously, or leave a tier's dimension unpriced, does not load."""

from __future__ import annotations

import datetime as dt
import textwrap

import orjson
import pytest

from pricing.bundle import load_bundle
from pricing.errors import CatalogError
from pricing.rating import Rejection, rate

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HEAD = """\
provider: openai
currency: USD
version: "t"
regions: []
defaults: {effective_from: "2026-01-01T00:00:00Z", source: "test page", batch_factor: "0.5", kind: text}
products:
"""


def load(products: str, provider: str = "openai") -> object:
    return load_bundle({f"{provider}-usd.yaml": HEAD.replace("openai", provider) + textwrap.dedent(products)})


def price(catalog: object, **event: object) -> object:
    ev = {"event_id": "e", "ts": "2026-06-01T00:00:00Z", "tenant_id": "t", "user_id": "u", "provider": "openai"}
    return rate(orjson.dumps({**ev, "model": "m", **event}), catalog, now=NOW)  # type: ignore[arg-type]


def test_a_tier_factor_and_a_tiers_own_prices_price_their_events():
    cat = load(
        """\
          - id: m
            service_tiers:
              flex: {factor: "0.5", source: "flex page"}
              priority: {source: "priority page", effective_from: "2026-03-01T00:00:00Z"}
            prices:
              - {dimension: input_tokens,  per: 1000000, price: "2"}
              - {dimension: output_tokens, per: 1000000, price: "8"}
              - {dimension: input_tokens,  per: 1000000, price: "3.5", service_tier: priority}
              - {dimension: output_tokens, per: 1000000, price: "14",  service_tier: priority}
              - {dimension: server_tool_requests, per: 1000, price: "10", tool: web_search}
        """
    )
    usage = {"input_tokens": 1000, "output_tokens": 100, "server_tool_requests": {"web_search": 1}}
    std = price(cat, usage=usage)
    assert std["cost"] == "0.0128"  # 0.002 + 0.0008 + 0.01
    assert price(cat, usage=usage, service_tier="flex")["cost"] == "0.0114"  # tokens halved, the search not
    assert price(cat, usage=usage, service_tier="priority")["cost"] == "0.0149"  # 0.0035 + 0.0014 + 0.01
    early = price(cat, usage=usage, service_tier="priority", ts="2026-02-01T00:00:00Z")
    assert isinstance(early, Rejection) and "prices the service tier priority from 2026-03-01" in early.reason
    # the standard prices never pick up a tier's own price, on the fast path or the full one
    assert price(cat, usage={"input_tokens": 1000})["cost"] == "0.002"


@pytest.mark.parametrize(
    "products, reason",
    [
        (
            """\
              - id: m
                service_tiers: {priority: {source: "p"}}
                prices:
                  - {dimension: input_tokens,  per: 1000000, price: "2"}
                  - {dimension: output_tokens, per: 1000000, price: "8"}
                  - {dimension: input_tokens,  per: 1000000, price: "3.5", service_tier: priority}
            """,
            "service tier 'priority' has no output_tokens price",
        ),
        (
            """\
              - id: m
                prices:
                  - {dimension: input_tokens,  per: 1000000, price: "2"}
                  - {dimension: input_tokens,  per: 1000000, price: "3", service_tier: priority}
            """,
            "prices for the service tier 'priority', which service_tiers does not declare",
        ),
        (
            """\
              - id: m
                service_tiers: {flex: {factor: "0.5", source: "f"}}
                prices:
                  - {dimension: input_tokens,  per: 1000000, price: "2"}
                  - {dimension: input_tokens,  per: 1000000, price: "1", service_tier: flex}
            """,
            "service tier 'flex' has a factor and prices of its own",
        ),
        (
            """\
              - id: m
                service_tiers: {scale: {factor: "2", source: "s"}}
                prices: [{dimension: input_tokens, per: 1000000, price: "2"}]
            """,
            "service tier 'scale' is not one of openai's priced apart (flex, priority",
        ),
        (
            """\
              - id: m
                inference_geos: {us: {factor: "1.1", source: "g"}}
                prices: [{dimension: input_tokens, per: 1000000, price: "2"}]
            """,
            "inference geography 'us' is not one of openai's priced apart (none",
        ),
        (
            """\
              - id: m
                prices: [{dimension: server_tool_requests, per: 1000, price: "10"}]
            """,
            "a server_tool_requests price names its `tool`, and only it does",
        ),
        (
            """\
              - id: m
                prices: [{dimension: input_tokens, per: 1000000, price: "2", tool: web_search}]
            """,
            "a server_tool_requests price names its `tool`, and only it does",
        ),
        (
            """\
              - id: m
                service_tiers: {flex: {factor: "0.5", source: "f"}}
                prices: [{dimension: human_tasks, per: 1, price: "2", service_tier: flex}]
            """,
            "a service tier prices token dimensions only",
        ),
        (
            """\
              - id: m
                service_tiers: {flex: {factor: "0.0000001", source: "f"}}
                prices: [{dimension: input_tokens, per: 1, price: "0.000001"}]
            """,
            "needs more than 12 places",
        ),
    ],
)
def test_a_catalog_that_would_price_a_tier_wrongly_does_not_load(products, reason):
    with pytest.raises(CatalogError) as exc:
        load(products)
    assert reason in str(exc.value)


def test_an_inference_geography_is_a_factor_with_its_source():
    with pytest.raises(CatalogError, match="inference geography 'us' needs a factor"):
        load(
            """\
              - id: m
                inference_geos: {us: {source: "g"}}
                prices: [{dimension: input_tokens, per: 1000000, price: "2"}]
            """,
            provider="anthropic",
        )
