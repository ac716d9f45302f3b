"""Catalog files: data rules, effective dating, a user's own catalog directory."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal

import orjson
import pytest

from pricing import CatalogError, PricingError, load_catalog, price_event
from pricing.catalog import SHIPPED_CATALOGS
from schemas.validate import parse_event

CAT = """
provider: acme
currency: EUR
version: "v1"
regions: []
defaults: {source: "test", effective_from: "2025-01-01T00:00:00Z"}
products:
  - id: m1
    effective_to: "2025-06-01T00:00:00Z"
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: m1
    effective_from: "2025-06-01T00:00:00Z"
    aliases: [m1-latest]
    prices: [{dimension: input_tokens, per: 1000, price: "0.001"}]
"""


def ev(model: str, ts: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": "e",
            "ts": ts,
            "tenant_id": "t",
            "user_id": "u",
            "provider": "acme",
            "model": model,
            "usage": {"input_tokens": 1000},
        }
    )


def test_every_shipped_entry_has_a_source_and_a_start():
    cat = load_catalog()
    assert {"bedrock", "bailian", "openai"} <= cat.providers()
    for p in cat.entries():
        assert p.spec.source.strip() and p.spec.effective_from.tzinfo is not None


def test_price_in_force_at_event_time(tmp_path):
    (tmp_path / "acme-eur.yaml").write_text(CAT)
    cat = load_catalog(tmp_path)
    before = price_event(parse_event(ev("m1", "2025-05-31T23:59:59Z")), cat)
    after = price_event(parse_event(ev("m1-latest", "2025-06-01T00:00:00Z")), cat)
    assert (before["cost"], after["cost"]) == ("0.002", "0.001")
    assert after["product_id"] == "m1" and after["currency"] == "EUR"
    with pytest.raises(PricingError, match="no price .* in force"):
        price_event(parse_event(ev("m1", "2024-12-31T00:00:00Z")), cat)


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda s: s.replace('price: "0.002"', "price: 0.002"), "quoted decimal string"),
        (
            lambda s: s.replace('effective_to: "2025-06-01T00:00:00Z"', 'effective_to: "2025-07-01T00:00:00Z"'),
            "overlapping",
        ),
        (
            lambda s: s.replace('input_tokens, per: 1000, price: "0.001"', 'input_tokenz, per: 1000, price: "0.001"'),
            "dimension",
        ),
        (lambda s: s.replace('price: "0.001"', 'price: "-1"'), ">= 0"),
        (lambda s: s.replace('source: "test", ', ""), "source"),
        (lambda s: s.replace("currency: EUR", "currency: euro"), "currency"),
    ],
)
def test_defective_catalogs_are_refused(tmp_path, mutation, message):
    (tmp_path / "acme-eur.yaml").write_text(mutation(CAT))
    with pytest.raises(CatalogError, match=message):
        load_catalog(tmp_path)


def test_cli_uses_a_users_catalog_dir(tmp_path):
    (tmp_path / "acme-eur.yaml").write_text(CAT)
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "price", "--catalog", str(tmp_path), "-"],
        input=ev("m1", "2025-07-01T00:00:00Z"),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert Decimal(orjson.loads(proc.stdout)["cost"]) == Decimal("0.001")
    val = subprocess.run(
        [sys.executable, "-m", "streams.cli", "catalog", "validate", "--catalog", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert val.returncode == 0 and "2 entries" in val.stdout


def test_catalog_show_explains_a_product():
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "catalog", "show", "bedrock", "guardrails"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "content_filter" in out and "seed 002" in out
    assert SHIPPED_CATALOGS.is_dir()


def test_unknown_model_is_an_error_not_free():
    cat = load_catalog()
    raw = orjson.dumps(
        {
            "event_id": "e",
            "ts": dt.datetime(2024, 9, 1, tzinfo=dt.UTC).isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": "bedrock",
            "model": "us.anthropic.claude-3-haiku",
            "usage": {"input_tokens": 10},
        }
    )
    with pytest.raises(PricingError, match="unknown model"):
        price_event(parse_event(raw), cat)
