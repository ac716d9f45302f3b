"""The worked examples of tests/data/pricing_rules_examples.yaml (cross-region profiles, cache
writes, long-context tiers, tenant overlays; and billing_event 1.1's 1-hour cache writes, server
tools, inference geography, service tiers, audio, image and embedding tokens), priced through the same path as the stream
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


def _patched(files: dict[str, str]) -> dict[str, str]:
    """The shipped files with the examples' ``catalog_patches`` (a rule a catalog file does not
    carry yet): each replaces its text once, or finds the file already carrying it."""
    for patch in DATA.get("catalog_patches") or ():
        text = files[patch["file"]]
        if patch["with"] not in text:
            assert text.count(patch["replace"]) == 1, patch
            files[patch["file"]] = text.replace(patch["replace"], patch["with"])
    return files


CATALOG = load_bundle(_patched(read_bundle()) | {f"overlays/{n}": t for n, t in DATA["overlays"].items()})
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)  # after every example's ts


RULES = (
    "cross-region",
    "cache-write",
    "tier",
    "overlay",
    # billing_event 1.1: each priced kind has priced examples and a refusal
    "cache-write-1h",
    "server-tool",
    "inference-geo",
    "service-tier",
    "audio",
    "image",
    "embedding",
)


def test_every_rule_has_examples_and_rejections_where_it_refuses():
    rules = [v["rule"] for v in DATA["examples"]]
    assert {r: rules.count(r) >= 3 for r in RULES} == dict.fromkeys(RULES, True)
    assert all(("expected_error" in v) != ("expected_total" in v) for v in DATA["examples"])
    for rule in RULES[4:]:
        kinds = {"expected_error" in v for v in DATA["examples"] if v["rule"] == rule}
        assert kinds == {True, False} or rule == "embedding", rule  # priced, and refused where it must be


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
