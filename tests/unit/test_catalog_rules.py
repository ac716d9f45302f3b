"""Catalog and overlay files that state a rule badly are refused at load, with the reason:
an incomplete long-context tier, an undeclared profile, factors a cost could not carry, and
overlays that are ambiguous or name what the catalog does not have. The content version is
the files' hash: the same files give the same version, any change another."""

from __future__ import annotations

import pytest

from pricing import CatalogError
from pricing.bundle import bundle_hash, load_bundle, read_bundle

SHIPPED = read_bundle()
OPENAI = SHIPPED["openai-usd.yaml"]
BEDROCK = SHIPPED["bedrock-usd.yaml"]


def load(**changes: str):
    return load_bundle(
        SHIPPED | {k.replace("__", "/").replace("_yaml", ".yaml").replace("_", "-"): v for k, v in changes.items()}
    )


def refused(**changes: str) -> str:
    with pytest.raises(CatalogError) as exc:
        load(**changes)
    return str(exc.value)


def test_an_incomplete_tier_is_refused():
    text = BEDROCK.replace(
        '      - {dimension: cache_write_tokens,  per: 1000000, price: "7.50", above_input_tokens: 200000}\n', ""
    )
    assert text != BEDROCK
    assert "the tier above 200000 input tokens has no cache_write_tokens price" in refused(bedrock_usd_yaml=text)


def test_a_profile_the_file_does_not_declare_is_refused():
    text = BEDROCK.replace(
        'profiles: {global: "1", us: "1.1", eu: "1.1", jp: "1.1", au: "1.1"}',
        'profiles: {global: "1", us: "1.1", mars: "1.1"}',
    )
    assert text != BEDROCK
    assert "profile 'mars' is not declared" in refused(bedrock_usd_yaml=text)


def test_a_factor_no_cost_could_carry_is_refused():
    text = BEDROCK.replace(
        'profiles: {global: "1", us: "1.1", eu: "1.1", jp: "1.1", au: "1.1"}',
        'profiles: {global: "1", us: "1.0000000001"}',
    )
    assert "needs more than 12 places" in refused(bedrock_usd_yaml=text)


OVERLAY = """tenant_id: acme
rules:
  - id: r1
    provider: openai
    effective_from: "2026-01-01T00:00:00Z"
    source: "test"
    {rule}
"""


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ('discount: "0.1"\n    markup: "0.1"', "exactly one of discount, markup, prices"),
        ('discount: "1.5"', "discount is a fraction of the list price"),
        ("discount: 0.1", "must be a quoted decimal string"),
        ('discount: "0.1"\n    models: [gpt-9]', "unknown model 'gpt-9' for provider openai"),
        ('discount: "0.123456789"', "more than 12 decimal places"),
        ('prices: [{dimension: images, per: 1, price: "1"}]', "contract prices are for"),
    ],
)
def test_a_bad_overlay_rule_is_refused(rule, reason):
    assert reason in refused(overlays__acme_yaml=OVERLAY.format(rule=rule))


def test_two_rules_for_the_same_prices_at_the_same_time_are_refused():
    two = (
        OVERLAY.format(rule='discount: "0.1"')
        + """  - id: r2
    provider: openai
    effective_from: "2026-06-01T00:00:00Z"
    source: "test"
    markup: "0.1"
"""
    )
    assert "rules r1 and r2 apply to the same prices at the same time" in refused(overlays__acme_yaml=two)


def test_the_version_is_the_content_hash():
    assert load().content_hash == bundle_hash(SHIPPED)
    assert bundle_hash(dict(SHIPPED)) == bundle_hash(SHIPPED)
    changed = load(openai_usd_yaml=OPENAI + "\n# a comment is content too\n")
    assert changed.content_hash != load().content_hash
    with_overlay = load(overlays__acme_yaml=OVERLAY.format(rule='discount: "0.1"'))
    assert with_overlay.content_hash not in (load().content_hash, changed.content_hash)
    assert "overlays/acme.yaml" in with_overlay.files
