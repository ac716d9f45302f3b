"""The billing_event v1 contract: models, published JSON Schema, documented bounds."""

from __future__ import annotations

import datetime as dt

import jsonschema
import orjson
import pytest

from schemas.export import SCHEMA_PATH, render
from schemas.validate import InvalidEvent, parse_event

GOOD = {
    "event_id": "evt-1",
    "ts": "2024-08-01T12:00:00+07:00",
    "tenant_id": "acme",
    "user_id": "alice",
    "provider": "bedrock",
    "model": "anthropic.claude-3-haiku-20240307-v1:0",
    "region": "us-east-1",
    "usage": {"input_tokens": 1000, "output_tokens": 200},
    "labels": {"team": "search"},
}
NOW = dt.datetime(2024, 8, 2, tzinfo=dt.UTC)


def test_published_schema_matches_the_models():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "run: python -m schemas.export"


def test_good_event_passes_models_and_published_schema():
    event = parse_event(orjson.dumps(GOOD), now=NOW)
    assert event.ts == dt.datetime(2024, 8, 1, 5, tzinfo=dt.UTC)
    assert event.mode == "realtime"
    jsonschema.validate(GOOD, orjson.loads(SCHEMA_PATH.read_bytes()))


def test_published_schema_rejects_what_the_models_reject():
    schema = orjson.loads(SCHEMA_PATH.read_bytes())
    for bad in (
        {**GOOD, "surprise": 1},
        {**GOOD, "usage": {"input_tokens": -1}},
        {k: v for k, v in GOOD.items() if k != "tenant_id"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(InvalidEvent):
            parse_event(orjson.dumps(bad), now=NOW)


def test_guardrail_units_round_up_per_text():
    ev = parse_event(
        orjson.dumps(
            {
                **GOOD,
                "usage": {"guardrail": {"policies": ["content_filter"], "input_chars": 5600, "output_chars": 1000}},
            }
        ),
        now=NOW,
    )
    g = ev.usage.guardrail
    assert (g.input_units, g.output_units) == (6, 1)


def test_text_alone_is_a_quantity_and_never_zero_usage():
    ev = parse_event(orjson.dumps({**GOOD, "usage": {}, "text": {"input": "hi"}}), now=NOW)
    assert ev.text.input == "hi"
    with pytest.raises(InvalidEvent, match="no quantity"):
        parse_event(orjson.dumps({**GOOD, "usage": {"input_tokens": 0}}), now=NOW)


def test_future_bound_uses_now():
    ahead = {**GOOD, "ts": "2024-08-02T00:20:00Z"}
    with pytest.raises(InvalidEvent, match="future"):
        parse_event(orjson.dumps(ahead), now=NOW)
    assert parse_event(orjson.dumps({**GOOD, "ts": "2024-08-02T00:10:00Z"}), now=NOW)
