"""Issue 23, the catalogs kept current: stale-source warnings (`catalog validate`), `catalog show`
of a profile-only product, a price's `rounding:` qualifier, and `catalog check --against litellm`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from pricing import CatalogError, PricingError, load_catalog
from pricing.bundle import load_bundle
from pricing.catalog import Rounding
from pricing.litellm_check import check, parse_key
from pricing.litellm_import import load_price_map
from pricing.staleness import MAX_SOURCE_AGE, stale_entries, warnings
from streams.cli.main import main

SAMPLE = Path(__file__).parents[1] / "data" / "litellm_prices_sample.json"
AT = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)

CAT = """
provider: acme
currency: USD
version: "v1"
regions: []
defaults: {source: "test page", effective_from: "2025-01-01T00:00:00Z", source_date: "2025-01-01"}
products:
  - id: old-open
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: old-closed
    effective_to: "2025-06-01T00:00:00Z"
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: fresh
    source_date: "2026-11-01"
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: undated
    source_date: null
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: meter
    source_date: "2026-11-01"
    prices: [{dimension: audio_seconds, per: 60, price: "0.006", rounding: {unit: "1", mode: up}}]
"""


def catalog(text: str = CAT):
    return load_bundle({"acme-usd.yaml": text})


# ----------------------------------------------------------------------------- stale sources
def test_an_open_ended_entry_read_more_than_the_stated_age_before_now_is_stale():
    stale = {s.product.id: s.age.days for s in stale_entries(catalog(), AT)}
    # old-open: priced up to now, 704 days after 2025-01-01; old-closed ended 151 days after it
    assert stale == {"old-open": 704}
    assert MAX_SOURCE_AGE == dt.timedelta(days=365)
    assert {s.product.id for s in stale_entries(catalog(), AT, dt.timedelta(days=100))} == {"old-open", "old-closed"}
    lines = warnings(catalog(), AT)
    assert lines == [
        "stale: acme/old-open from 2025-01-01 (open-ended): source dated 2025-01-01 prices events up to "
        "2026-12-06, 704 days later (more than 365)",
        "undated: 1 acme entry has no source_date (staleness not checked)",
    ]


def test_validate_warns_on_stderr_and_still_succeeds(tmp_path):
    (tmp_path / "acme-usd.yaml").write_text(CAT)
    args = ["catalog", "validate", "--catalog", str(tmp_path), "--as-of", "2026-12-06T00:00:00Z"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "warning: stale: acme/old-open" in res.stderr and "stale" not in res.stdout
    strict = CliRunner().invoke(main, [*args, "--max-source-age", "100"])
    assert strict.exit_code == 0 and "warning: stale: acme/old-closed" in strict.stderr


def test_the_shipped_bailian_list_of_2024_is_closed_where_its_price_changed():
    cat = load_catalog()
    old = [s for s in stale_entries(cat, AT) if s.product.provider == "bailian"]
    assert not {"qwen-max", "qwen-plus", "qwen-turbo"} & {s.product.id for s in old}
    plus = cat.products[("bailian", "qwen-plus")]
    assert [(p.spec.effective_from.date().isoformat(), p.spec.source_date.isoformat()) for p in plus] == [
        ("2024-08-01", "2024-08-01"),
        ("2024-09-19", "2024-09-19"),
        ("2025-07-28", "2026-12-06"),
    ]


# ----------------------------------------------------------------------- catalog show (bug)
def test_show_finds_a_product_served_through_profiles_only():
    res = CliRunner().invoke(main, ["catalog", "show", "bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0  Claude Sonnet 4.5")
    assert "(the bare id is not invoked: profiles only)" in res.stdout
    via = CliRunner().invoke(main, ["catalog", "show", "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"])
    assert via.exit_code == 0 and "through the cross-region profile us." in via.stdout
    alias = CliRunner().invoke(main, ["catalog", "show", "bailian", "qwen-plus-latest"])
    assert alias.exit_code == 0 and "bailian/qwen-plus" in alias.stdout
    unknown = CliRunner().invoke(main, ["catalog", "show", "bedrock", "anthropic.claude-nope-v1:0"])
    assert unknown.exit_code != 0 and "unknown product bedrock/anthropic.claude-nope-v1:0" in unknown.output


# ---------------------------------------------------------------------------------- rounding
def test_rounding_is_the_providers_rule_and_a_tie_under_nearest_is_refused():
    assert Rounding(unit="1", mode="nearest").apply(Decimal("2.4")) == 2
    assert Rounding(unit="1", mode="up").apply(Decimal("2.001")) == 3
    assert Rounding(unit="1", mode="down").apply(Decimal("2.999")) == 2
    assert Rounding(unit="0.5", mode="half_up").apply(Decimal("2.25")) == Decimal("2.5")
    with pytest.raises(PricingError, match="states no rule for a tie"):
        Rounding(unit="1", mode="nearest").apply(Decimal("2.5"))


def test_a_rounded_duration_is_priced_and_shown_as_rounded():
    from pricing.rating import rate

    ev = (
        b'{"event_id":"e","ts":"2026-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"acme",'
        b'"model":"meter","usage":{"audio_seconds":"59.2"}}'
    )
    priced = rate(ev, catalog(), now=AT)
    # up to 60 seconds: 60 x 0.006/60 = 0.006
    assert priced["cost"] == "0.006"
    (item,) = priced["line_items"]
    assert item["quantity"] == "60" and "(rounded up to 1)" in item["unit"]


def test_rounding_is_refused_on_a_quantity_of_whole_units():
    bad = CAT.replace(
        'prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]\n  - id: undated',
        'prices: [{dimension: input_tokens, per: 1000, price: "0.002", rounding: {unit: "1", mode: up}}]\n'
        "  - id: undated",
    )
    with pytest.raises(CatalogError, match="rounding applies to decimal quantities only"):
        catalog(bad)


# --------------------------------------------------------------------------- catalog check
def test_map_keys_name_our_ids_regions_and_profiles():
    profiles = frozenset({"us", "eu"})

    def parse(key: str, provider: str) -> tuple[str, str | None, str | None]:
        mk = parse_key(key, provider, profiles)
        return mk.base, mk.region, mk.profile

    assert parse("bedrock/us-east-1/meta.llama3-70b-instruct-v1:0", "bedrock") == (
        "meta.llama3-70b-instruct-v1:0",
        "us-east-1",
        None,
    )
    assert parse("us.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock_converse") == (
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        None,
        "us",
    )
    assert parse("amazon.nova-micro-v1:0", "bedrock_converse") == ("amazon.nova-micro-v1:0", None, None)
    assert parse("dashscope/qwen-plus", "dashscope") == ("qwen-plus", None, None)


def test_check_lists_where_ours_and_the_map_disagree():
    report = check(load_price_map(SAMPLE), load_catalog(), AT, "sample")
    lines = [f"{k} {t}" for k, t in report.lines]
    # the sample prices gpt-4o, gpt-4o-mini, Haiku 4.5 (and its us. profile at 1.1x), Nova Micro as
    # we do: no price line for them
    assert not [line for line in lines if line.startswith("price") and "gpt-4o" in line]
    assert not [line for line in lines if "claude-haiku-4-5-20251001-v1:0" in line and not line.startswith("batch")]
    # Nova Micro's cached input (11 places per token) is not in our catalog: one price line
    assert (
        "price bedrock/amazon.nova-micro-v1:0: cached_input_tokens: the map 0.00875 per 1M; ours has no price" in lines
    )
    # claude-sonnet-4-5 ended 2026-11-30 in our catalog; the sample still lists it
    assert any(line.startswith("date anthropic/claude-sonnet-4-5-20250929") for line in lines)
    assert "map-only openai/o3-mini: in the map (o3-mini), not in our catalog" in lines
    assert "ours-only bedrock/ai21.j2-mid-v1: in our catalog, not in the map" in lines
    assert any(k == "note" and t.startswith("bailian: our prices are CNY") for k, t in report.lines)
    assert report.disagreements == sum(report.counts().values()) > 0


def test_check_exits_0_when_nothing_disagrees_and_1_otherwise(tmp_path):
    (tmp_path / "openai-usd.yaml").write_text(
        """
provider: openai
currency: USD
version: "t"
regions: []
defaults: {source: "t", effective_from: "2026-01-01T00:00:00Z"}
products:
  - id: gpt-4o-mini
    batch_factor: "0.5"
    prices:
      - {dimension: input_tokens,        per: 1000000, price: "0.15"}
      - {dimension: cached_input_tokens, per: 1000000, price: "0.075"}
      - {dimension: output_tokens,       per: 1000000, price: "0.60"}
"""
    )
    the_map = tmp_path / "map.json"
    the_map.write_text(
        '{"gpt-4o-mini": {"cache_read_input_token_cost": 7.5e-08, "input_cost_per_token": 1.5e-07,'
        ' "input_cost_per_token_batches": 7.5e-08, "litellm_provider": "openai", "mode": "chat",'
        ' "output_cost_per_token": 6e-07, "output_cost_per_token_batches": 3e-07}}'
    )
    args = ["catalog", "check", "--against", "litellm", str(the_map), "--catalog", str(tmp_path)]
    same = CliRunner().invoke(main, [*args, "--as-of", "2026-12-01T00:00:00Z"])
    assert same.exit_code == 0, same.output
    assert same.stdout == "" and "0 disagreements" in same.stderr
    text = the_map.read_text().replace('"output_cost_per_token": 6e-07', '"output_cost_per_token": 6.6e-07')
    the_map.write_text(
        text.replace('"output_cost_per_token_batches": 3e-07', '"output_cost_per_token_batches": 3.3e-07')
    )
    differ = CliRunner().invoke(main, [*args, "--as-of", "2026-12-01T00:00:00Z"])
    assert differ.exit_code == 1
    assert differ.stdout == "price     openai/gpt-4o-mini: output_tokens per 1M: ours 0.6, the map 0.66\n"
    assert "1 disagreements (1 price)" in differ.stderr
