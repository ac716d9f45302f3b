"""The billing_event v1 contract: models, published JSON Schema, documented bounds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas.export import CORRECTION_PATH, SCHEMA_PATH, render, render_correction
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
    assert CORRECTION_PATH.read_text(encoding="utf-8") == render_correction(), "run: python -m schemas.export"


def test_a_billing_correction_voids_or_replaces_and_says_why():
    from pydantic import ValidationError

    from schemas.billing_correction import BillingCorrection

    base = {"correction_id": "c-1", "tenant_id": "acme", "event_id": "req-1", "reason": "double count", "author": "ana"}
    BillingCorrection.model_validate({**base, "action": "void"})
    BillingCorrection.model_validate({**base, "action": "replace", "usage": {"input_tokens": 10}})
    for bad in (
        {**base, "action": "replace"},  # no usage
        {**base, "action": "void", "usage": {"input_tokens": 1}},
        {**base, "action": "replace", "usage": {"input_tokens": 0}},
        {**base, "action": "void", "reason": ""},
        {k: v for k, v in base.items() if k != "author"} | {"action": "void"},
        {**base, "action": "delete"},
    ):
        with pytest.raises(ValidationError):
            BillingCorrection.model_validate(bad)


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


V10_SCHEMA = Path(__file__).parent.parent / "data" / "billing_event.v1.0.schema.json"  # as published at 1.0


def test_the_published_schema_names_its_minor_version():
    schema = orjson.loads(SCHEMA_PATH.read_bytes())
    assert schema["$id"] == "https://meterstream.dev/schemas/billing_event.v1.1.schema.json"
    assert schema["title"] == "billing_event v1.1"
    assert (schema["x-meterstream-version"]["major"], schema["x-meterstream-version"]["minor"]) == (1, 1)


def test_every_1_0_event_is_a_1_1_event_and_the_1_1_fields_are_new():
    """Additive: what the 1.0 schema accepts, 1.1 accepts (each 1.0 field is kept as it was); the
    1.1 fields are what 1.0 rejected."""
    old, new = orjson.loads(V10_SCHEMA.read_bytes()), orjson.loads(SCHEMA_PATH.read_bytes())
    for name, prop in old["properties"].items():
        assert new["properties"][name] == prop, name
    for name, d in old["$defs"].items():
        if name == "Usage":
            assert {k: v for k, v in new["$defs"]["Usage"]["properties"].items() if k in d["properties"]} == d[
                "properties"
            ]
        else:
            assert new["$defs"][name] == d, name
    assert set(new["properties"]) - set(old["properties"]) == {"service_tier", "inference_geo"}
    added = set(new["$defs"]["Usage"]["properties"]) - set(old["$defs"]["Usage"]["properties"])
    assert added == {
        "cache_write_1h_tokens",
        "audio_input_tokens",
        "audio_output_tokens",
        "image_input_tokens",
        "image_output_tokens",
        "server_tool_requests",
    }
    jsonschema.validate(GOOD, old)
    jsonschema.validate(GOOD, new)
    v11 = {**GOOD, "provider": "anthropic", "region": None, "inference_geo": "us", "service_tier": "standard"}
    v11 = {k: v for k, v in v11.items() if v is not None}
    v11["usage"] = {"input_tokens": 5, "cache_write_1h_tokens": 7, "server_tool_requests": {"web_search": 1}}
    jsonschema.validate(v11, new)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(v11, old)
    parse_event(orjson.dumps(v11), now=NOW)


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"provider": "openai", "service_tier": "standard"}, "service_tier 'standard' is not one of openai's"),
        ({"provider": "bailian", "service_tier": "flex"}, "(it names none)"),
        ({"provider": "openai", "service_tier": "flex", "mode": "batch"}, "a batch request has no service tier"),
        ({"provider": "openai", "inference_geo": "us"}, "inference_geo 'us' is not one of openai's"),
        ({"service_tier": "auto"}, "service_tier: Input should be"),
        ({"usage": {"server_tool_requests": {"web_search": 0}}}, "usage has no quantity above zero"),
        ({"usage": {"server_tool_requests": {"web_fetch": 2}}}, "server_tool_requests.web_fetch: Extra inputs"),
        ({"usage": {"audio_input_tokens": -1}}, "usage.audio_input_tokens: Input should be greater than or equal to 0"),
    ],
)
def test_the_1_1_fields_are_judged_from_allow_lists(patch, reason):
    with pytest.raises(InvalidEvent) as exc:
        parse_event(orjson.dumps({**GOOD, **patch}), now=NOW)
    assert reason in exc.value.reason, exc.value.reason
