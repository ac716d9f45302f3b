"""Property tests of the engine over the shipped catalogs (hypothesis)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import PricingError, load_catalog, price_event
from schemas.billing_event import BillingEvent

CATALOG = load_catalog()
TS = dt.datetime(2024, 11, 1, tzinfo=dt.UTC)
ENTRIES = [
    p
    for p in CATALOG.entries()
    if p.spec.effective_from <= TS and (p.spec.effective_to is None or TS < p.spec.effective_to)
]
TOKEN_PRODUCTS = [p for p in ENTRIES if {"input_tokens", "output_tokens"} & set(p.prices)]


def event(product, usage: dict, mode: str = "realtime", n: int = 0) -> BillingEvent:
    region = None
    if product.spec.regions:
        region = product.spec.regions[0]
    return BillingEvent.model_validate(
        {
            "event_id": f"e{n}",
            "ts": TS,
            "tenant_id": "t",
            "user_id": "u",
            "provider": product.provider,
            "model": product.id,
            "region": region,
            "mode": mode,
            "usage": usage,
        },
        strict=False,
    )


def cost(product, usage: dict, mode: str = "realtime") -> Decimal:
    return Decimal(price_event(event(product, usage, mode), CATALOG)["cost"])


def token_usage(product, n_in: int, n_out: int) -> dict:
    usage = {}
    if "input_tokens" in product.prices:
        usage["input_tokens"] = n_in
    if "output_tokens" in product.prices:
        usage["output_tokens"] = n_out
    return usage


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TOKEN_PRODUCTS),
    st.integers(1, 10**7),
    st.integers(1, 10**7),
    st.integers(1, 10**7),
    st.integers(1, 10**7),
)
def test_token_cost_is_additive_across_events(product, a_in, b_in, a_out, b_out):
    whole = cost(product, token_usage(product, a_in + b_in, a_out + b_out))
    parts = cost(product, token_usage(product, a_in, a_out)) + cost(product, token_usage(product, b_in, b_out))
    assert whole == parts > 0


IMAGE_PRODUCTS = [p for p in ENTRIES if "images" in p.prices]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(IMAGE_PRODUCTS),
    st.integers(1, 500),
    st.integers(1, 500),
    st.sampled_from([(512, 512, 30), (512, 512, 70), (1024, 1024, 40), (1024, 1024, 60)]),
)
def test_image_cost_is_additive_across_events(product, a, b, size):
    w, h, steps = size

    def usage(n):
        return {"images": [{"count": n, "width": w, "height": h, "steps": steps}]}

    try:
        whole = cost(product, usage(a + b))
    except PricingError:
        pytest.skip("tier not priced for this product")  # e.g. Titan has only 1024x1024 standard
    assert whole == cost(product, usage(a)) + cost(product, usage(b))


HOUR_PRODUCTS = [p for p in ENTRIES if "dedicated_hours" in p.prices]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(HOUR_PRODUCTS),
    st.decimals("0.001", "500", places=3),
    st.decimals("0.001", "500", places=3),
    st.integers(1, 8),
)
def test_dedicated_hours_are_additive(product, h1, h2, instances):
    commitment = product.prices["dedicated_hours"][0].commitment or "none"
    regions = product.prices["dedicated_hours"][0].regions

    def usage(h):
        return {"dedicated": {"instances": instances, "hours": h, "commitment": commitment}}

    def c(h):
        ev = event(product, usage(h))
        if regions:
            ev = ev.model_copy(update={"region": regions[0]})
        return Decimal(price_event(ev, CATALOG)["cost"])

    assert c(h1 + h2) == c(h1) + c(h2)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 50_000), st.integers(0, 50_000))
def test_guardrail_units_are_ceil_chars_per_text(in_chars, out_chars):
    guard = CATALOG.lookup("bedrock", "guardrails", TS)
    usage = {"guardrail": {"policies": ["content_filter"], "input_chars": in_chars, "output_chars": out_chars}}
    if in_chars == out_chars == 0:
        return
    priced = price_event(event(guard, usage), CATALOG)
    units = -(-in_chars // 1000) + -(-out_chars // 1000)
    assert priced["guardrail_units"] == units
    assert Decimal(priced["cost"]) == Decimal(units) * Decimal("0.75") / 1000


def test_guardrail_characters_are_not_additive():
    guard = CATALOG.lookup("bedrock", "guardrails", TS)

    def units(chars):
        usage = {"guardrail": {"policies": ["denied_topics"], "input_chars": chars}}
        return price_event(event(guard, usage), CATALOG)["guardrail_units"]

    assert units(1000) == 1 and units(500) + units(500) == 2


@pytest.mark.parametrize("product", TOKEN_PRODUCTS, ids=lambda p: f"{p.provider}/{p.id}")
def test_batch_factor_only_where_the_catalog_allows(product):
    usage = token_usage(product, 12_345, 6_789)
    realtime = cost(product, usage)
    if product.spec.batch_factor is None:
        with pytest.raises(PricingError, match="batch"):
            cost(product, usage, "batch")
    else:
        assert cost(product, usage, "batch") == realtime * product.spec.batch_factor


def test_batch_factors_follow_the_seeds():
    factor = {(p.provider, p.id): p.spec.batch_factor for p in ENTRIES}
    for model in ("qwen-max", "qwen-plus", "qwen-turbo"):
        assert factor[("bailian", model)] == Decimal("0.5")
    assert factor[("bailian", "qwen-max-0403")] is None  # snapshot versions: no batch
    assert {f for (prov, _), f in factor.items() if prov == "bedrock" and f is not None} == {Decimal(1)}
    assert factor[("openai", "gpt-4o")] == Decimal("0.5")
