"""The current Anthropic and OpenAI catalog entries (pricing/catalogs/anthropic-usd.yaml and the
2026-12 additions to openai-usd.yaml), priced on worked examples computed by hand.

Each expected cost is written as a string with its arithmetic beside it (prices per 1M tokens as
the catalog lists them); the engine must give exactly that Decimal, through rate() (the stream
worker's path) and through price_event. The price source (LiteLLM's price map) is not read here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest

from adapters import Ids, convert
from pricing import load_catalog, price_event
from pricing.rating import Rejection, rate
from schemas.validate import parse_event

CATALOG = load_catalog()
NOW = dt.datetime(2026, 12, 10, tzinfo=dt.UTC)  # fixed: every ts below is before it


def event(
    provider: str, model: str, ts: str, usage: dict[str, Any], mode: str = "realtime", **extra: Any
) -> dict[str, Any]:
    doc = {
        "event_id": f"cur-{provider}-{model}-{ts}",
        "ts": ts,
        "tenant_id": "tenant-a",
        "user_id": "user-1",
        "provider": provider,
        "model": model,
        "usage": usage,
        **extra,
    }
    if mode != "realtime":
        doc["mode"] = mode
    return doc


def priced(doc: dict[str, Any]) -> dict[str, Any]:
    """rate()'s result, checked against price_event's: the same cost and line items."""
    raw = orjson.dumps(doc)
    got = rate(raw, CATALOG, now=NOW)
    assert not isinstance(got, Rejection), got
    full = price_event(parse_event(raw, now=NOW), CATALOG)
    assert (got["cost"], got["line_items"]) == (full["cost"], full["line_items"])
    assert sum(Decimal(li["cost"]) for li in got["line_items"]) == Decimal(got["cost"])
    return got


def rejected(doc: dict[str, Any]) -> str:
    got = rate(orjson.dumps(doc), CATALOG, now=NOW)
    assert isinstance(got, Rejection), got
    return got.reason


def test_the_shipped_catalog_loads_with_both_providers():
    cat = load_catalog()
    assert {"anthropic", "openai", "bedrock", "bailian"} <= cat.providers()
    assert any(f.endswith("anthropic-usd.yaml") for f in map(str, cat.files))
    ts = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    for model in ("claude-haiku-4-5", "claude-opus-4-7", "claude-sonnet-5-5", "claude-haiku-5-5"):
        assert cat.lookup("anthropic", model, ts).currency == "USD"
    for model in ("gpt-4.1", "gpt-5", "gpt-5.5", "o3", "whisper-1"):
        assert cat.lookup("openai", model, ts).currency == "USD"


# (name, event, expected cost, arithmetic). Usage keys as the adapters send them: Anthropic
# input_tokens exclude cache reads and writes; OpenAI input_tokens exclude cached tokens.
A_USAGE = {"input_tokens": 10_000, "cached_input_tokens": 2_000, "cache_write_tokens": 3_000, "output_tokens": 1_000}
EXAMPLES = [
    (
        "claude-sonnet-4-5 snapshot",
        event("anthropic", "claude-sonnet-4-5-20250929", "2026-03-01T12:00:00Z", A_USAGE),
        "0.05685",  # 10,000 x 3/1M = 0.03; 2,000 x 0.3/1M = 0.0006; 3,000 x 3.75/1M = 0.01125; 1,000 x 15/1M = 0.015
        "claude-sonnet-4-5-20250929",
    ),
    (
        "claude-sonnet-4-5 alias",
        event("anthropic", "claude-sonnet-4-5", "2026-03-01T12:00:00Z", A_USAGE),
        "0.05685",  # the alias resolves to the snapshot: same prices as above
        "claude-sonnet-4-5-20250929",
    ),
    (
        "claude-sonnet-4-5 batch",
        event("anthropic", "claude-sonnet-4-5-20250929", "2026-03-01T12:00:00Z", A_USAGE, mode="batch"),
        "0.028425",  # 0.05685 x 0.5; by the batch prices: 10,000 x 1.5/1M = 0.015; 2,000 x 0.15/1M = 0.0003;
        # 3,000 x 1.875/1M = 0.005625; 1,000 x 7.5/1M = 0.0075; sum 0.028425
        "claude-sonnet-4-5-20250929",
    ),
    (
        "claude-haiku-4-5",
        event("anthropic", "claude-haiku-4-5", "2025-10-02T00:00:00Z", A_USAGE),
        "0.01895",  # 10,000 x 1/1M = 0.01; 2,000 x 0.1/1M = 0.0002; 3,000 x 1.25/1M = 0.00375; 1,000 x 5/1M = 0.005
        "claude-haiku-4-5-20251001",
    ),
    (
        "claude-opus-4-7",
        event("anthropic", "claude-opus-4-7", "2026-05-01T00:00:00Z", A_USAGE),
        "0.09475",  # 10,000 x 5/1M = 0.05; 2,000 x 0.5/1M = 0.001; 3,000 x 6.25/1M = 0.01875; 1,000 x 25/1M = 0.025
        "claude-opus-4-7-20260416",
    ),
    (
        "claude-sonnet-5-5",
        event("anthropic", "claude-sonnet-5-5", "2026-12-05T00:00:00Z", A_USAGE),
        "0.0377",  # 10,000 x 2/1M = 0.02; 2,000 x 0.1/1M = 0.0002; 3,000 x 2.5/1M = 0.0075; 1,000 x 10/1M = 0.01
        "claude-sonnet-5-5",
    ),
    (
        "claude-haiku-5-5 below its 100K tier",
        event("anthropic", "claude-haiku-5-5", "2026-12-05T00:00:00Z", A_USAGE),
        "0.001895",  # 10,000 x 0.1/1M = 0.001; 2,000 x 0.01/1M = 0.00002; 3,000 x 0.125/1M = 0.000375; 1,000 x 0.5/1M = 0.0005
        "claude-haiku-5-5",
    ),
    (
        "claude-haiku-5-5 exactly 100,000 input tokens: not above the tier",
        event("anthropic", "claude-haiku-5-5", "2026-12-05T00:00:00Z", {"input_tokens": 100_000}),
        "0.01",  # 100,000 x 0.1/1M
        "claude-haiku-5-5",
    ),
    (
        "claude-haiku-5-5 above 100K: the whole request at the tier prices",
        event(
            "anthropic",
            "claude-haiku-5-5",
            "2026-12-05T00:00:00Z",
            {
                "input_tokens": 150_000,
                "cached_input_tokens": 20_000,
                "cache_write_tokens": 30_000,
                "output_tokens": 1_000,
            },
        ),
        "0.09725",  # size 200,000 > 100,000: 150,000 x 0.5/1M = 0.075; 20,000 x 0.05/1M = 0.001;
        # 30,000 x 0.625/1M = 0.01875; 1,000 x 2.5/1M = 0.0025
        "claude-haiku-5-5",
    ),
    (
        "claude-haiku-5-5 cache reads count toward the tier",
        event(
            "anthropic",
            "claude-haiku-5-5",
            "2026-12-05T00:00:00Z",
            {"input_tokens": 60_000, "cached_input_tokens": 50_000, "output_tokens": 2_000},
        ),
        "0.0375",  # size 110,000 > 100,000: 60,000 x 0.5/1M = 0.03; 50,000 x 0.05/1M = 0.0025; 2,000 x 2.5/1M = 0.005
        "claude-haiku-5-5",
    ),
    (
        "claude-haiku-5-5 batch above the tier",
        event(
            "anthropic",
            "claude-haiku-5-5",
            "2026-12-05T00:00:00Z",
            {"input_tokens": 150_000, "output_tokens": 1_000},
            mode="batch",
        ),
        "0.03875",  # (150,000 x 0.5/1M = 0.075 + 1,000 x 2.5/1M = 0.0025) x 0.5
        "claude-haiku-5-5",
    ),
    (
        "gpt-5 with cached tokens",
        event(
            "openai",
            "gpt-5",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 10_000, "cached_input_tokens": 4_000, "output_tokens": 1_000, "reasoning_tokens": 600},
        ),
        "0.023",  # 10,000 x 1.25/1M = 0.0125; 4,000 x 0.125/1M = 0.0005; 1,000 x 10/1M = 0.01 (reasoning is in output)
        "gpt-5-2025-08-07",
    ),
    (
        "gpt-5 batch",
        event(
            "openai",
            "gpt-5-2025-08-07",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 10_000, "cached_input_tokens": 4_000, "output_tokens": 1_000},
            mode="batch",
        ),
        "0.0115",  # 0.023 x 0.5 (batch: 0.625, 0.0625, 5 per 1M)
        "gpt-5-2025-08-07",
    ),
    (
        "gpt-5-nano",
        event(
            "openai",
            "gpt-5-nano",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 1_000_000, "cached_input_tokens": 1_000_000, "output_tokens": 1_000_000},
        ),
        "0.455",  # 0.05 + 0.005 + 0.4
        "gpt-5-nano-2025-08-07",
    ),
    (
        "gpt-4.1",
        event(
            "openai",
            "gpt-4.1",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 10_000, "cached_input_tokens": 2_000, "output_tokens": 1_000},
        ),
        "0.029",  # 10,000 x 2/1M = 0.02; 2,000 x 0.5/1M = 0.001; 1,000 x 8/1M = 0.008
        "gpt-4.1-2025-04-14",
    ),
    (
        "gpt-4.1-mini",
        event("openai", "gpt-4.1-mini", "2026-06-01T00:00:00Z", {"input_tokens": 10_000, "output_tokens": 1_000}),
        "0.0056",  # 10,000 x 0.4/1M = 0.004; 1,000 x 1.6/1M = 0.0016
        "gpt-4.1-mini-2025-04-14",
    ),
    (
        "gpt-4.1-nano before its retirement",
        event("openai", "gpt-4.1-nano", "2026-10-22T23:59:59Z", {"input_tokens": 10_000, "output_tokens": 1_000}),
        "0.0014",  # 10,000 x 0.1/1M = 0.001; 1,000 x 0.4/1M = 0.0004
        "gpt-4.1-nano-2025-04-14",
    ),
    (
        "o3",
        event("openai", "o3", "2026-06-01T00:00:00Z", {"input_tokens": 10_000, "output_tokens": 5_000}),
        "0.06",  # 10,000 x 2/1M = 0.02; 5,000 x 8/1M = 0.04
        "o3-2025-04-16",
    ),
    (
        "o4-mini",
        event(
            "openai",
            "o4-mini",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 10_000, "cached_input_tokens": 2_000, "output_tokens": 1_000},
        ),
        "0.01595",  # 10,000 x 1.1/1M = 0.011; 2,000 x 0.275/1M = 0.00055; 1,000 x 4.4/1M = 0.0044
        "o4-mini-2025-04-16",
    ),
    (
        "gpt-5.4 below 272K",
        event(
            "openai",
            "gpt-5.4",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 100_000, "cached_input_tokens": 10_000, "output_tokens": 2_000},
        ),
        "0.2825",  # 100,000 x 2.5/1M = 0.25; 10,000 x 0.25/1M = 0.0025; 2,000 x 15/1M = 0.03
        "gpt-5.4-2026-03-05",
    ),
    (
        "gpt-5.4 above 272K: the whole request at the tier prices",
        event(
            "openai",
            "gpt-5.4",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 300_000, "cached_input_tokens": 10_000, "output_tokens": 2_000},
        ),
        "1.55",  # size 310,000 > 272,000: 300,000 x 5/1M = 1.5; 10,000 x 0.5/1M = 0.005; 2,000 x 22.5/1M = 0.045
        "gpt-5.4-2026-03-05",
    ),
    (
        "gpt-5.5 batch above 272K",
        event(
            "openai", "gpt-5.5", "2026-06-01T00:00:00Z", {"input_tokens": 300_000, "output_tokens": 2_000}, mode="batch"
        ),
        "1.545",  # (300,000 x 10/1M = 3 + 2,000 x 45/1M = 0.09) x 0.5
        "gpt-5.5-2026-04-23",
    ),
    (
        "gpt-5.4-mini",
        event(
            "openai",
            "gpt-5.4-mini",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 10_000, "cached_input_tokens": 2_000, "output_tokens": 1_000},
        ),
        "0.01215",  # 10,000 x 0.75/1M = 0.0075; 2,000 x 0.075/1M = 0.00015; 1,000 x 4.5/1M = 0.0045
        "gpt-5.4-mini-2026-03-17",
    ),
    (
        "whisper-1, 90.5 seconds",
        event("openai", "whisper-1", "2026-12-05T00:00:00Z", {"audio_seconds": "90.5"}),
        "0.00905",  # 90.5 x 0.006 / 60 = 0.543 / 60
        "whisper-1",
    ),
]


@pytest.mark.parametrize(("doc", "expected", "product"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES])
def test_worked_example_costs_exactly_what_was_computed_by_hand(doc, expected, product):
    got = priced(doc)
    assert got["product_id"] == product
    assert got["currency"] == "USD"
    assert Decimal(got["cost"]) == Decimal(expected)


def test_the_long_context_tier_is_named_in_the_line_items():
    doc = next(e[1] for e in EXAMPLES if e[0].startswith("claude-haiku-5-5 above"))
    items = {li["dimension"]: li for li in priced(doc)["line_items"]}
    assert items["input_tokens"]["unit_price"] == "0.5" and "above 100K input tokens" in items["input_tokens"]["unit"]
    assert items["cache_write_tokens"]["unit_price"] == "0.625"


def test_an_anthropic_message_prices_through_the_adapter():
    msg = {
        "id": "msg_cur_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-5-20251101",
        "content": [],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 2051,
            "cache_read_input_tokens": 4000,
            "cache_creation": {"ephemeral_5m_input_tokens": 2051, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 503,
        },
    }
    (doc,) = convert("anthropic", msg, Ids("tenant-a", "user-1", ts="2026-06-01T00:00:00Z"))
    got = priced(doc)
    # 50 x 5/1M = 0.00025; 4,000 x 0.5/1M = 0.002; 2,051 x 6.25/1M = 0.01281875; 503 x 25/1M = 0.012575
    assert Decimal(got["cost"]) == Decimal("0.02764375")


def test_dates_bound_each_entry():
    # claude-sonnet-4-5: retired 2026-11-30 (effective_to); nothing before its snapshot date
    assert "no price for anthropic/claude-sonnet-4-5-20250929 in force" in rejected(
        event("anthropic", "claude-sonnet-4-5-20250929", "2026-11-30T00:00:00Z", A_USAGE)
    )
    assert "no price for anthropic/claude-sonnet-4-5 in force" in rejected(
        event("anthropic", "claude-sonnet-4-5", "2025-09-28T23:59:59Z", A_USAGE)
    )
    # an undated id starts the day its price was read
    assert "in force" in rejected(event("anthropic", "claude-sonnet-5", "2026-12-01T23:59:59Z", A_USAGE))
    assert "in force" in rejected(
        event("openai", "o4-mini", "2026-10-23T00:00:00Z", {"input_tokens": 1, "output_tokens": 1})
    )


def test_what_the_catalog_does_not_price_is_rejected_with_the_reason():
    # an unknown Anthropic model
    reason = rejected(event("anthropic", "claude-nonexistent-9", "2026-12-05T00:00:00Z", {"input_tokens": 10}))
    assert reason == "unknown model 'claude-nonexistent-9' for provider 'anthropic'"
    # a cache write on a product without a cache_write_tokens price (gpt-4o: OpenAI caching has no write price)
    reason = rejected(
        event(
            "openai",
            "gpt-4o",
            "2026-06-01T00:00:00Z",
            {"input_tokens": 100, "cache_write_tokens": 50, "output_tokens": 10},
        )
    )
    assert reason == "openai/gpt-4o has no price for cache_write_tokens"
    # the same on a new product
    assert (
        rejected(event("openai", "gpt-5", "2026-06-01T00:00:00Z", {"input_tokens": 100, "cache_write_tokens": 50}))
        == "openai/gpt-5-2025-08-07 has no price for cache_write_tokens"
    )
    # the Anthropic API is not priced by region
    assert "unknown region 'us-east-1' for provider anthropic" in rejected(
        event("anthropic", "claude-haiku-4-5", "2026-06-01T00:00:00Z", A_USAGE, region="us-east-1")
    )
    # batch not offered: gpt-5.4 (its cached batch price is not half) and whisper-1
    assert (
        rejected(event("openai", "gpt-5.4", "2026-06-01T00:00:00Z", {"input_tokens": 10}, mode="batch"))
        == "openai/gpt-5.4-2026-03-05 does not offer batch mode"
    )
    assert "does not offer batch mode" in rejected(
        event("openai", "whisper-1", "2026-12-05T00:00:00Z", {"audio_seconds": "60"}, mode="batch")
    )
    # whisper-1 prices audio only; a token model prices no audio
    assert (
        rejected(event("openai", "whisper-1", "2026-12-05T00:00:00Z", {"input_tokens": 10}))
        == "openai/whisper-1 has no price for input_tokens"
    )
    assert (
        rejected(event("openai", "gpt-5", "2026-06-01T00:00:00Z", {"audio_seconds": "1"}))
        == "openai/gpt-5-2025-08-07 has no price for audio_seconds"
    )
