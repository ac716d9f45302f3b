"""The worked examples of tests/data/pricing_rules_examples.yaml (cross-region profiles, cache
writes, long-context tiers, tenant overlays), priced through the same path as the stream
(pricing.rating.rate: the fast path where it applies, else the engine) to their exact totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from pricing.bundle import load_bundle, read_bundle
from pricing.rating import Rejection, rate

DATA = yaml.safe_load((Path(__file__).parent.parent / "data" / "pricing_rules_examples.yaml").read_text())
CATALOG = load_bundle(read_bundle() | {f"overlays/{name}": text for name, text in DATA["overlays"].items()})
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)  # after every example's ts


def test_every_rule_has_examples_and_rejections_where_it_refuses():
    rules = [v["rule"] for v in DATA["examples"]]
    assert {r: rules.count(r) >= 3 for r in ("cross-region", "cache-write", "tier", "overlay")} == dict.fromkeys(
        ("cross-region", "cache-write", "tier", "overlay"), True
    )
    assert all(("expected_error" in v) != ("expected_total" in v) for v in DATA["examples"])


@pytest.mark.parametrize("vector", DATA["examples"], ids=[v["name"] for v in DATA["examples"]])
def test_worked_example(vector):
    results = [rate(orjson.dumps(e), CATALOG, now=NOW) for e in vector["events"]]
    if "expected_error" in vector:
        assert [type(r) for r in results] == [Rejection] * len(results)
        assert all(vector["expected_error"] in r.reason for r in results), [r.reason for r in results]
        return
    assert not [r.reason for r in results if isinstance(r, Rejection)]
    assert sum(Decimal(r["cost"]) for r in results) == Decimal(vector["expected_total"])
    list_total = sum(Decimal(r["list_cost"]) for r in results)
    assert list_total == Decimal(vector.get("expected_list_total", vector["expected_total"]))
    overlaid = [r for r in results if r["price_overlay"]]
    assert bool(overlaid) == ("expected_list_total" in vector)
    for r in overlaid:  # each line item keeps its list price beside the tenant's
        assert sum(Decimal(i["list_cost"]) for i in r["line_items"]) == Decimal(r["list_cost"])
        assert sum(Decimal(i["cost"]) for i in r["line_items"]) == Decimal(r["cost"])
