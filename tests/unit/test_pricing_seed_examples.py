"""Every worked example of seeds 000 and 002 (tests/data/seed_worked_examples.yaml), priced
through the public engine and through `meterstream price`, Decimal-exact."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from pricing import load_catalog, price_event
from schemas.validate import parse_event

VECTORS = yaml.safe_load((Path(__file__).parent.parent / "data" / "seed_worked_examples.yaml").read_text())
CATALOG = load_catalog()


def expand(vector: dict) -> list[dict]:
    events = []
    for r in range(vector.get("repeat", 1)):
        for ev in vector["events"]:
            events.append({**ev, "event_id": f"{ev['event_id']}-{r}"})
    return events


def test_there_are_worked_examples_from_both_seeds():
    sources = " ".join(v["source"] for v in VECTORS)
    assert len(VECTORS) >= 30 and "seed 000" in sources and "seed 002" in sources


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:50] for v in VECTORS])
def test_engine_prices_the_worked_example(vector):
    total = Decimal(0)
    for ev in expand(vector):
        priced = price_event(parse_event(orjson.dumps(ev)), CATALOG)
        assert priced["currency"] == vector["currency"]
        # the line items add up to the event's cost
        assert sum(Decimal(li["cost"]) for li in priced["line_items"]) == Decimal(priced["cost"])
        total += Decimal(priced["cost"])
    assert total == Decimal(vector["expected_total"])


def test_cli_prices_every_worked_example():
    lines, owner = [], []
    for i, vector in enumerate(VECTORS):
        for ev in expand(vector):
            lines.append(orjson.dumps(ev))
            owner.append(i)
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "price", "-"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    priced = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert len(priced) == len(lines)
    totals = [Decimal(0)] * len(VECTORS)
    for i, p in zip(owner, priced):
        assert isinstance(p["cost"], str)
        totals[i] += Decimal(p["cost"])
    assert totals == [Decimal(v["expected_total"]) for v in VECTORS]


def test_guardrail_chatbot_example_line_items():
    """Seed 002: content filter + denied topics on 200 chars in (1 unit) and 1,500 out (2 units)."""
    ev = {
        "event_id": "g1",
        "ts": "2024-08-01T00:00:00Z",
        "tenant_id": "t",
        "user_id": "u",
        "provider": "bedrock",
        "model": "guardrails",
        "usage": {
            "guardrail": {"policies": ["content_filter", "denied_topics"], "input_chars": 200, "output_chars": 1500}
        },
    }
    priced = price_event(parse_event(orjson.dumps(ev)), CATALOG)
    assert priced["guardrail_units"] == 3
    assert [(li["quantity"], li["unit_price"], li["cost"]) for li in priced["line_items"]] == [
        ("3", "0.75", "0.00225"),
        ("3", "1", "0.003"),
    ]
