"""Strict input, one rule at a time: catalog regions, duplicate keys, ids of rejections, canonical
quantities, control and bidi characters, timestamps in UTC, one byte limit, guardrails on text
invocations only, and what a rejection stores (never prompt text, always bounded)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import CatalogError, load_catalog
from pricing.rating import Rejection, rate
from schemas.billing_event import MAX_EVENT_BYTES
from schemas.validate import InvalidEvent, hidden, parse_common, parse_event
from streams.rating.rater import Rater, Source

ROOT = Path(__file__).resolve().parents[2]
CAT = load_catalog()
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def event(**kw: Any) -> dict[str, Any]:
    doc = {
        "event_id": "e-1",
        "ts": "2024-11-01T12:00:00Z",
        "tenant_id": "t",
        "user_id": "u",
        "provider": "bedrock",
        "model": "cohere.command-text-v14",
        "usage": {"input_tokens": 1000},
    }
    doc.update(kw)
    return doc


def rated(doc: dict[str, Any] | bytes) -> dict[str, Any] | Rejection:
    return rate(doc if isinstance(doc, bytes) else orjson.dumps(doc), CAT, now=NOW)


# ------------------------------------------------------------------------------ 1. regions


@pytest.mark.parametrize(
    "model, region",
    [
        ("cohere.command-text-v14", "xx-nowhere-1"),
        ("cohere.command-text-v14", "us-east1"),
        ("ai21.j2-mid-v1", "xx-nowhere-1"),
        ("guardrails", "xx-nowhere-1"),
        ("human-evaluation", "us-east1"),
    ],
)
def test_invented_region_is_rejected_on_entries_without_regions(model: str, region: str) -> None:
    usage = {
        "guardrails": {"guardrail": {"policies": ["content_filter"], "input_chars": 10}},
        "human-evaluation": {"human_tasks": 1},
    }.get(model, {"input_tokens": 1000})
    got = rated(event(model=model, region=region, usage=usage))
    assert isinstance(got, Rejection) and f"unknown region {region!r} for provider bedrock" in got.reason


def test_provider_region_is_priced_on_entries_without_regions() -> None:
    for region in CAT.regions("bedrock"):
        got = rated(event(region=region))
        assert not isinstance(got, Rejection), (region, got)
    assert not isinstance(rated(event()), Rejection)  # the price ignores region: none needed
    assert isinstance(rated(event(provider="bailian", model="qwen-plus", region="cn-hangzhou")), Rejection)
    assert not isinstance(rated(event(provider="bailian", model="qwen-plus", region="cn-beijing")), Rejection)
    assert CAT.regions("openai") == ()


def test_product_regions_still_narrow_the_provider_list() -> None:
    got = rated(event(model="anthropic.claude-3-opus-20240229-v1:0", region="eu-west-2"))
    assert isinstance(got, Rejection) and "not offered in region eu-west-2" in got.reason


CATALOG = """
provider: acme
currency: EUR
version: "v1"
regions: [eu-west-1, eu-north-1]
defaults: {source: "test", effective_from: "2025-01-01T00:00:00Z"}
products:
  - id: m1
    regions: [eu-west-1]
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: m2
    prices: [{dimension: input_tokens, per: 1000, price: "0.002", regions: [eu-north-1]}]
"""


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda s: s.replace("regions: [eu-west-1, eu-north-1]\n", ""), "regions"),
        (lambda s: s.replace("regions: [eu-west-1]", "regions: [eu-south-9]"), "not among the provider's regions"),
        (lambda s: s.replace("regions: [eu-north-1]", "regions: [us-east-1]"), "not among the provider's regions"),
        (lambda s: s.replace("[eu-west-1, eu-north-1]", "[eu-west-1, eu-west-1]"), "repeat"),
        (lambda s: s.replace("[eu-west-1, eu-north-1]", "[EU-West-1]"), "region"),
        (lambda s: s.replace("[eu-west-1, eu-north-1]", "eu-west-1"), "regions"),
    ],
)
def test_catalog_regions_are_validated(tmp_path: Path, mutation: Any, message: str) -> None:
    (tmp_path / "acme-eur.yaml").write_text(mutation(CATALOG))
    with pytest.raises(CatalogError, match=message):
        load_catalog(tmp_path)


def test_catalog_regions_load(tmp_path: Path) -> None:
    (tmp_path / "acme-eur.yaml").write_text(CATALOG)
    cat = load_catalog(tmp_path)
    assert cat.regions("acme") == ("eu-west-1", "eu-north-1")
    ok = rate(
        orjson.dumps(event(provider="acme", model="m2", region="eu-north-1", ts="2025-02-01T00:00:00Z")),
        cat,
        now=NOW.replace(year=2026),
    )
    assert not isinstance(ok, Rejection)
    bad = rate(
        orjson.dumps(event(provider="acme", model="m2", region="eu-west-2", ts="2025-02-01T00:00:00Z")),
        cat,
        now=NOW.replace(year=2026),
    )
    assert isinstance(bad, Rejection) and "unknown region 'eu-west-2' for provider acme" in bad.reason


# ------------------------------------------------------------------------------ 2. duplicate keys


DUP = (
    b'{"event_id":"e-1","ts":"2024-11-01T12:00:00Z","tenant_id":"t","user_id":"u","provider":"bedrock",'
    b'"model":"cohere.command-text-v14","usage":{"input_tokens":10,"input_tokens":10000000}}'
)


def test_duplicate_key_is_rejected_not_billed() -> None:
    assert parse_common(DUP, NOW) is None
    got = rated(DUP)
    assert isinstance(got, Rejection) and got.reason == "usage.input_tokens: duplicate key in a JSON object"
    assert got.event_id == "e-1"


@pytest.mark.parametrize(
    "raw",
    [
        DUP.replace(b'"input_tokens":10,', b'"input_tokens" :10,'),
        DUP.replace(b'"input_tokens":10,', b'"input_tokens"\n:\t10,'),
        DUP.replace(b'"input_tokens":10,', b'"input\\u005ftokens":10,'),
        DUP.replace(b'"usage":{', b'"labels":{"a":"x\\":"},"usage":{'),
        DUP.replace(b'"user_id":"u"', b'"user_id":"u","labels":{"k":"v","k":"w"}'),
        DUP.replace(b'"user_id":"u"', b'"user_id":"u","labels":{"k":"\\u0022\\u0022"}'),  # quotes that count for none
        DUP.replace(b'"user_id":"u"', b'"user_id":"u","labels":{"k":"\\u0022\\u0022\\"\\""}'),
    ],
)
def test_duplicate_key_spellings_are_rejected(raw: bytes) -> None:
    assert parse_common(raw, NOW) is None
    got = rated(raw)
    assert isinstance(got, Rejection) and "duplicate key" in got.reason


def test_escaped_quotes_without_duplicates_still_price() -> None:
    raw = orjson.dumps(event(labels={"note": 'say "hi": now'}))
    got = rated(raw)
    assert not isinstance(got, Rejection) and got["labels"] == {"note": 'say "hi": now'}


# ------------------------------------------------------------------------------ 3. ids of rejections


@pytest.mark.parametrize("bad", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_not_json_numbers_keep_the_ids(bad: bytes) -> None:
    raw = orjson.dumps(event()).replace(b'"input_tokens":1000', b'"input_tokens":' + bad)
    got = rated(raw)
    assert isinstance(got, Rejection) and got.reason.startswith("not JSON") and got.event_id == "e-1"
    row = Rater(CAT).process_batch({}, [(Source("ev", 0, 0, int(NOW.timestamp() * 1000)), raw)]).rejected[0]
    assert (row["event_id"], row["tenant_id"]) == ("e-1", "t")


def test_invalid_ids_are_not_reported() -> None:
    for doc in (event(event_id="a b"), event(event_id="x" * 129), event(event_id="a\u202eb")):
        got = rated(doc)
        assert isinstance(got, Rejection) and got.event_id is None


# ------------------------------------------------------------------------------ 4. canonical quantities


@pytest.mark.parametrize(
    "hours, stored", [("2.50", "2.5"), ("100.000", "100"), (2.5, "2.5"), ("0.1E1", "1"), ("1.5E-1", "0.15")]
)
def test_decimal_quantities_are_stored_canonical(hours: Any, stored: str) -> None:
    got = rated(event(usage={"dedicated": {"hours": hours}}))
    assert not isinstance(got, Rejection), got
    assert got["usage"]["dedicated"]["hours"] == stored


@pytest.mark.parametrize(
    "hours, reason",
    [
        ("-0", "negative zero"),
        ("-0.0", "negative zero"),
        ("0E+1000000000", "exponent"),
        ("1E+2", "exponent"),
        ("1e-400", "at most 3 decimal places"),
    ],
)
def test_non_canonical_quantities_are_rejected(hours: str, reason: str) -> None:
    got = rated(event(usage={"dedicated": {"hours": hours}, "input_tokens": 1}))
    assert isinstance(got, Rejection) and reason in got.reason


# ------------------------------------------------------------------------------ 5. controls and bidi


@pytest.mark.parametrize(
    "ch",
    [
        "\u0000",
        "\u0007",
        "\u001b",
        "\u007f",
        "\u0085",
        "\u009b",
        "\u00ad",
        "\u061c",
        "\u200b",
        "\u200e",
        "\u200f",
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2028",
        "\u2029",
        "\u2060",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\ufeff",
        "\ue000",
        "\U000e0041",
    ],
)
def test_control_and_format_characters_are_rejected_in_label_values(ch: str) -> None:
    raw = orjson.dumps(event(labels={"team": f"a{ch}b"}))
    assert parse_common(raw, NOW) is None
    got = rated(raw)
    assert isinstance(got, Rejection) and "labels.team: must not contain control or format characters" in got.reason
    assert f"U+{ord(ch):04X}" in got.reason


def test_ordinary_unicode_label_values_are_kept() -> None:
    for value in ("café", "搜索", "a b", "emoji 🚀", "ünïcødé", "\u00a0nbsp"):
        got = rated(event(labels={"team": value}))
        assert not isinstance(got, Rejection) and got["labels"] == {"team": value}, (value, got)


def test_forbidden_character_classes_cover_unicode() -> None:
    import unicodedata

    from schemas.billing_event import FORBIDDEN_CHARS

    missing, printable = [], []
    for c in range(0x110000):
        ch, forbidden = chr(c), False
        if FORBIDDEN_CHARS.match(ch):
            forbidden = True
            if ch.isprintable():  # the fast path steps aside on not isprintable(): it must see these
                printable.append(hex(c))
        if not forbidden and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            missing.append(hex(c))
    assert not missing and not printable, (missing[:10], printable[:10])


# ------------------------------------------------------------------------------ 6. timestamps


@pytest.mark.parametrize(
    "ts, ok",
    [
        ("2000-01-01T00:00:00+23:59", False),
        ("2000-01-01T00:00:59+00:01", False),
        ("1999-12-31T23:59:59-00:01", True),
        ("2000-01-01T00:00:00Z", True),
        ("1999-12-31T23:59:59Z", False),
    ],
)
def test_before_2000_is_judged_in_utc(ts: str, ok: bool) -> None:
    raw = orjson.dumps(event(ts=ts))
    if ok:
        assert parse_event(raw, now=NOW).ts == dt.datetime.fromisoformat(ts)
    else:
        with pytest.raises(InvalidEvent, match=r"^ts is before 2000 \(UTC\)$"):
            parse_event(raw, now=NOW)
        assert parse_common(raw, NOW) is None


@pytest.mark.parametrize(
    "ts",
    [
        "2024-11-01T12:00:00.123456789Z",
        "2024-11-01T12:00:00.1234567+08:00",
        "2024-11-01T12:00:00.0000000Z",
        "2024-11-01T12:00:00,1234567Z",
    ],
)
def test_sub_microsecond_timestamps_are_rejected_not_truncated(ts: str) -> None:
    got = rated(event(ts=ts))
    assert isinstance(got, Rejection) and "second fraction value is more than 6 digits long" in got.reason


def test_microsecond_timestamps_are_kept() -> None:
    got = rated(event(ts="2024-11-01T12:00:00.123456Z"))
    assert not isinstance(got, Rejection) and got["ts"] == "2024-11-01T12:00:00.123456+00:00"


# ------------------------------------------------------------------------------ 7. one byte limit


def _sized(size: int) -> bytes:
    text = orjson.dumps(event())
    return text[:1] + b" " * (size - len(text)) + text[1:]


def test_the_limit_is_the_same_for_the_stream_and_the_cli() -> None:
    exact, over = _sized(MAX_EVENT_BYTES), _sized(MAX_EVENT_BYTES + 1)
    assert len(exact) == MAX_EVENT_BYTES
    assert not isinstance(rated(exact), Rejection)
    got = rated(over)
    assert isinstance(got, Rejection) and "over the 1048576-byte limit" in got.reason
    for ending in (b"\n", b"\r\n"):
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "price", "-"],
            input=exact + ending + over + ending,
            capture_output=True,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 1
        assert [orjson.loads(x)["event_id"] for x in proc.stdout.splitlines()] == ["e-1"]
        errs = [orjson.loads(x) for x in proc.stderr.splitlines()]
        assert [e["line"] for e in errs] == [2] and "over the 1048576-byte limit" in errs[0]["reason"]


# ------------------------------------------------------------------------------ 8. guardrails


def test_guardrails_apply_to_text_invocations_only() -> None:
    g = {"guardrail": {"policies": ["content_filter"], "input_chars": 1000}}
    text = rated(event(model="cohere.command-r-v1:0", usage={"input_tokens": 10, **g}))
    assert not isinstance(text, Rejection) and text["guardrail_units"] == 1
    emb = rated(event(model="cohere.embed-english-v3", usage={"input_tokens": 10, **g}))
    assert isinstance(emb, Rejection) and "guardrails do not apply to embedding invocations" in emb.reason
    img = rated(
        event(
            model="stability.stable-diffusion-xl-v1",
            usage={"images": [{"count": 1, "width": 512, "height": 512, "steps": 10}], **g},
        )
    )
    assert isinstance(img, Rejection) and "guardrails do not apply to image invocations" in img.reason


def test_guardrail_kinds_are_catalog_data(tmp_path: Path) -> None:
    cat = """
provider: acme
currency: EUR
version: "v1"
regions: []
defaults: {source: "test", effective_from: "2024-01-01T00:00:00Z", kind: text}
products:
  - id: chat
    prices: [{dimension: input_tokens, per: 1000, price: "0.002"}]
  - id: vectors
    kind: embedding
    prices: [{dimension: input_tokens, per: 1000, price: "0.001"}]
  - id: guardrails
    kind: guardrail
    applies_to: [text, embedding]
    prices: [{dimension: guardrail_text_units, per: 1000, price: "1", policy: content_filter}]
"""
    (tmp_path / "acme-eur.yaml").write_text(cat)
    c = load_catalog(tmp_path)
    g = {"guardrail": {"policies": ["content_filter"], "input_chars": 1000}}
    for model in ("chat", "vectors"):
        got = rate(orjson.dumps(event(provider="acme", model=model, usage={"input_tokens": 10, **g})), c, now=NOW)
        assert not isinstance(got, Rejection), got
    (tmp_path / "acme-eur.yaml").write_text(cat.replace("kind: embedding", "kind: vector"))
    with pytest.raises(CatalogError, match="kind"):
        load_catalog(tmp_path)


# ------------------------------------------------------------------------------ 9, 10. stored payloads


def _rejected_row(raw: bytes) -> dict[str, Any]:
    out = Rater(CAT).process_batch({}, [(Source("ev", 0, 7, int(NOW.timestamp() * 1000)), raw)])
    assert len(out.rejected) == 1 and not out.ledger
    return out.rejected[0]


def test_text_is_removed_at_any_depth() -> None:
    raw = orjson.dumps(
        event(
            usage={"input_tokens": 1, "text": "SECRET-1"},
            text={"input": "SECRET-2"},
            messages=[{"role": "user", "text": "SECRET-3"}, {"Text": "SECRET-4"}],
            extra={"a": [{"b": {"text": "SECRET-5"}}]},
            prompt="SECRET-6",
            content="SECRET-7",
        )
    )
    row = _rejected_row(raw)
    assert "SECRET" not in row["payload"]
    doc = orjson.loads(row["payload"])
    assert doc["event_id"] == "e-1" and doc["text"] == "<removed>" and doc["usage"]["text"] == "<removed>"
    key = lambda k: hidden(k, "key")  # noqa: E731  keys not in the schema: their length and hash
    assert doc[key("extra")] == {key("a"): [{key("b"): {"text": "<removed>"}}]}


def test_not_json_keeps_only_hash_and_length() -> None:
    raw = b'{"event_id":"e-9","text":{"input":"SECRET prompt"},"usage":{"input_tokens":1},}'
    row = _rejected_row(raw)
    assert row["event_id"] == "e-9" and "SECRET" not in row["payload"]
    digest = orjson.loads(row["payload"])["not_stored"]
    assert digest == {"why": "not JSON", "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}


def test_payload_escapes_controls_and_bidi() -> None:
    row = _rejected_row(orjson.dumps(event(labels={"team": "a\u202eb\u0000"})))
    assert row["payload"].isprintable() and "\u202e" not in row["payload"]
    assert orjson.loads(row["payload"])["labels"] == {hidden("team", "key"): hidden("a\u202eb\u0000")}


def test_a_rejection_row_is_bounded_whatever_the_input() -> None:
    from schemas.records import MAX_SINK_RECORD, dead_letter_value

    for raw in (
        orjson.dumps(event(blob="\u202e" * 300_000)),
        orjson.dumps(event(**{"k" * 900_000: 1})),
        b"\x00" * 1_000_000,
        orjson.dumps(event(blob=['"'] * 200_000)),
    ):
        row = _rejected_row(raw)
        assert len(dead_letter_value(row)) <= 64 * 1024 < MAX_SINK_RECORD
        assert len(row["reason"]) <= 1024


def test_largest_valid_ledger_row_fits_a_sink_record() -> None:
    from schemas.records import MAX_SINK_RECORD, sink_records

    doc = event(
        model="stability.stable-diffusion-xl-v1",
        event_id="e" * 128,
        tenant_id="t" * 256,
        user_id="u" * 256,
        usage={"images": [{"count": 10_000, "width": 1024, "height": 1024, "steps": 500 - i} for i in range(100)]},
        labels={f"{i:02d}" + "k" * 62: "\U0001f680" * 256 for i in range(32)},
    )
    out = Rater(CAT).process_batch({}, [(Source("ev", 0, 0, int(NOW.timestamp() * 1000)), orjson.dumps(doc))])
    assert len(out.ledger) == 1, out.rejected
    (record,) = sink_records(0, out.ledger, out.rejected)
    assert len(record) <= MAX_SINK_RECORD
