"""Bad-input corpus: every line of tests/data/bad_events.jsonl must be rejected, with a reason.

Each corpus line is ``{"kind", "stage", "raw", "reason_contains"}``:

- ``stage == "validate"``: ``schemas.validate.parse_event(raw)`` raises ``InvalidEvent`` whose
  reason (lowercased) contains ``reason_contains``; the event id is reported whenever the input
  holds a valid ``event_id`` (tests/corpus.py ``expected_ids``).
- ``stage == "price"``: the line is a valid billing_event v1, but ``pricing.price_event`` raises
  ``PricingError`` (an event that cannot be priced is rejected, never priced 0).

Every bad line is a GOOD event below with exactly one thing changed, so the GOOD events are
checked to parse and price too. ``raw == "GENERATE_OVERSIZE"`` stands for an event over the
1 MiB limit, built here instead of being stored.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.billing_event import MAX_EVENT_BYTES
from schemas.validate import InvalidEvent, parse_event
from tests.corpus import expected_ids, load

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "bad_events.jsonl"

# Fixed receiver clock: every event below is dated 2024-11-01, well before it; only the
# "ts-far-future" kind (2099) lies ahead of it.
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
TS = "2024-11-01T12:00:00Z"
OVERSIZE = "GENERATE_OVERSIZE"


def _event(
    event_id: str, provider: str, model: str, usage: dict[str, Any], region: str | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": event_id,
        "ts": TS,
        "tenant_id": "tenant-a",
        "user_id": "user-1",
        "provider": provider,
        "model": model,
    }
    if region is not None:
        doc["region"] = region
    doc.update(extra)
    doc["usage"] = usage
    return doc


# The bases the corpus lines were derived from (one change each), plus the corrected twin of
# each pricing-stage case (same product, the one wrong thing put right).
GOOD: list[dict[str, Any]] = [
    _event(
        "good-text",
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"input_tokens": 1000, "output_tokens": 500},
        "us-east-1",
    ),
    _event(
        "good-image",
        "bedrock",
        "stability.stable-diffusion-xl-v1",
        {"images": [{"count": 2, "width": 1024, "height": 1024, "steps": 30}]},
    ),
    _event(
        "good-training",
        "bedrock",
        "cohere.command-text-v14",
        {"training": {"tokens": 100000, "epochs": 2, "method": "sft"}},
    ),
    _event(
        "good-dedicated",
        "bedrock",
        "cohere.command-text-v14",
        {"dedicated": {"instances": 1, "hours": "2.5", "commitment": "none"}},
    ),
    _event(
        "good-guardrail",
        "bedrock",
        "guardrails",
        {"guardrail": {"policies": ["content_filter", "denied_topics"], "input_chars": 5600, "output_chars": 1200}},
    ),
    _event("good-human", "bedrock", "human-evaluation", {"human_tasks": 10}),
    _event("good-storage", "bedrock", "cohere.command-text-v14", {"storage_months": "1"}),
    _event("good-images-seen", "bedrock", "amazon.titan-image-generator-v1", {"training": {"images_seen": 32000}}),
    _event("good-bailian-months", "bailian", "qwen-plus", {"dedicated": {"instances": 1, "months": "1"}}),
    _event(
        "good-openai-labels",
        "openai",
        "gpt-4o",
        {"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 100},
        labels={"team": "search", "env": "prod"},
    ),
    # corrected twins of pricing-stage cases
    _event("good-bailian-batch", "bailian", "qwen-max", {"input_tokens": 1000, "output_tokens": 100}, mode="batch"),
    _event("good-snapshot-realtime", "bailian", "qwen-max-0403", {"input_tokens": 1000, "output_tokens": 100}),
    _event(
        "good-sonnet-35-region",
        "bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        {"input_tokens": 1000, "output_tokens": 500},
        "us-east-1",
    ),
    _event(
        "good-sdxl-512",
        "bedrock",
        "stability.stable-diffusion-xl-v0",
        {"images": [{"count": 1, "width": 512, "height": 512, "steps": 60}]},
    ),
    _event(
        "good-titan-image",
        "bedrock",
        "amazon.titan-image-generator-v1",
        {"images": [{"count": 1, "width": 1024, "height": 1024}]},
    ),
    _event(
        "good-llama-1m",
        "bedrock",
        "meta.llama2-13b-chat-v1",
        {"dedicated": {"hours": "1", "commitment": "1m"}},
        "us-east-1",
    ),
    _event(
        "good-claude-v2-tokyo-1m",
        "bedrock",
        "anthropic.claude-v2",
        {"dedicated": {"hours": "1", "commitment": "1m"}},
        "ap-northeast-1",
    ),
    _event("good-qwen2-72b-months", "bailian", "qwen2-72b-instruct", {"dedicated": {"months": "1"}}),
    _event("good-qwen-plus-sft", "bailian", "qwen-plus", {"training": {"tokens": 1000, "method": "sft"}}),
    _event("good-gpt-4o-0513", "openai", "gpt-4o-2024-05-13", {"input_tokens": 1000, "output_tokens": 100}),
    _event(
        "good-gpt-4o-text",
        "openai",
        "gpt-4o",
        {"output_tokens": 10},
        text={"input": "How many tokens is this sentence?"},
    ),
    _event(
        "good-gpt-4o-mini-cached",
        "openai",
        "gpt-4o-mini",
        {"input_tokens": 1000, "cached_input_tokens": 10},
        ts="2024-10-01T00:00:00Z",
    ),
    _event("good-bailian-offset", "bailian", "qwen-max", {"input_tokens": 1000}, ts="2024-08-01T08:00:00+08:00"),
    _event(
        "good-claude-haiku-guardrail",
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"input_tokens": 10, "guardrail": {"policies": ["content_filter"], "input_chars": 10}},
        "us-east-1",
    ),
]
GOOD_IDS = [e["event_id"] for e in GOOD]

# The three good events interleaved with the corpus in the CLI test.
CLI_GOOD = [GOOD[0], GOOD[10], GOOD[9]]

# Kinds the corpus must contain (the brief's list); more may be present.
REQUIRED_KINDS = {
    "not-json",
    "truncated-json",
    "json-array",
    "json-number",
    "json-string",
    "json-null",
    "empty-object",
    "oversize",
    "missing-event-id",
    "missing-ts",
    "missing-tenant-id",
    "missing-user-id",
    "missing-provider",
    "missing-model",
    "missing-usage",
    "count-as-string",
    "count-as-float",
    "count-as-bool",
    "event-id-number",
    "negative-input-tokens",
    "over-input-tokens",
    "over-output-tokens",
    "over-cached-input-tokens",
    "over-cache-write-tokens",
    "over-human-tasks",
    "over-image-count",
    "over-image-width",
    "over-image-height",
    "over-image-steps",
    "too-many-image-entries",
    "over-training-tokens",
    "over-epochs",
    "over-images-seen",
    "over-instances",
    "over-hours",
    "over-months",
    "over-storage-months",
    "over-audio-seconds",
    "over-guardrail-input-chars",
    "over-guardrail-output-chars",
    "nan-string-hours",
    "infinity-string-storage",
    "hours-4-decimal-places",
    "ts-without-offset",
    "ts-not-rfc3339",
    "ts-far-future",
    "ts-before-2000",
    "unknown-field-top",
    "unknown-field-usage",
    "unknown-field-image",
    "unknown-field-training",
    "unknown-field-dedicated",
    "unknown-field-guardrail",
    "event-id-empty",
    "event-id-129-chars",
    "event-id-with-space",
    "event-id-control-char",
    "bad-mode",
    "bad-commitment",
    "bad-training-method",
    "training-tokens-and-images-seen",
    "training-neither",
    "dedicated-hours-and-months",
    "dedicated-neither",
    "unknown-guardrail-policy",
    "guardrail-repeated-policy",
    "guardrail-empty-policies",
    "usage-all-zeros",
    "usage-empty",
    "labels-33-entries",
    "label-key-with-space",
    "label-value-257-chars",
    "images-empty-list",
    "image-count-zero",
    "unknown-provider",
    "unknown-model",
    "region-not-offered",
    "region-missing",
    "ts-before-catalog",
    "batch-on-snapshot",
    "batch-on-guardrails",
    "images-on-text-model",
    "training-not-priced",
    "commitment-not-priced",
    "image-too-large",
}


CASES = load(CORPUS)
VALIDATE_CASES = [c for c in CASES if c["stage"] == "validate"]
PRICE_CASES = [c for c in CASES if c["stage"] == "price"]


def _kind(case: dict[str, Any]) -> str:
    return case["kind"]


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _oversize_raw() -> str:
    """A valid event except for its size: insignificant JSON whitespace inside the object
    (not at the ends, so a reader that strips lines cannot shrink it under the limit)."""
    head = _dumps({"event_id": "bad-oversize"})[:-1]  # '{"event_id":"bad-oversize"'
    rest = _dumps({k: v for k, v in GOOD[0].items() if k != "event_id"})[1:]  # '"ts":...}'
    return head + "," + " " * (MAX_EVENT_BYTES + 1024) + rest


def raw_of(case: dict[str, Any]) -> str:
    return _oversize_raw() if case["raw"] == OVERSIZE else case["raw"]


def string_event_id(raw: str) -> str | None:
    """The event id a rejection should report: the input's event_id when it is a valid id (see
    tests/corpus.py expected_ids), else None."""
    return expected_ids(raw.encode("utf-8"))[0]


# ------------------------------------------------------------------------------ the corpus


def test_corpus_has_at_least_45_distinct_kinds() -> None:
    kinds = [c["kind"] for c in CASES]
    assert len(kinds) == len(set(kinds)), "kinds must be unique"
    assert len(set(kinds)) >= 45
    missing = REQUIRED_KINDS - set(kinds)
    assert not missing, f"corpus lacks kinds {sorted(missing)}"


def test_corpus_lines_are_well_formed() -> None:
    for c in CASES:
        assert set(c) == {"kind", "stage", "raw", "reason_contains", "_line"}, c["kind"]
        assert c["stage"] in {"validate", "price"}, c["kind"]
        assert isinstance(c["raw"], str) and c["raw"], c["kind"]
        assert "\n" not in c["raw"] and "\r" not in c["raw"], f"{c['kind']}: raw must be one line"
        rc = c["reason_contains"]
        assert isinstance(rc, str) and rc and rc == rc.lower(), c["kind"]
    assert {c["stage"] for c in CASES} == {"validate", "price"}


def test_oversize_event_is_valid_apart_from_its_size() -> None:
    raw = _oversize_raw()
    assert len(raw.encode()) > MAX_EVENT_BYTES
    compact = _dumps(json.loads(raw))
    assert len(compact.encode()) < MAX_EVENT_BYTES
    assert parse_event(compact, now=NOW).event_id == "bad-oversize"


# ------------------------------------------------------------------------------ good events


@pytest.mark.parametrize("event", GOOD, ids=GOOD_IDS)
def test_good_event_validates(event: dict[str, Any]) -> None:
    parsed = parse_event(_dumps(event), now=NOW)
    assert parsed.event_id == event["event_id"]


# ------------------------------------------------------------------------------ validate stage


@pytest.mark.parametrize("case", VALIDATE_CASES, ids=_kind)
def test_validate_rejects(case: dict[str, Any]) -> None:
    raw = raw_of(case)
    try:
        event = parse_event(raw, now=NOW)
    except InvalidEvent as exc:
        rejection = exc
    else:
        pytest.fail(f"{case['kind']}: accepted as a valid event: {event!r}"[:2000])
    assert rejection.reason, "empty reason"
    assert case["reason_contains"] in rejection.reason.lower(), rejection.reason
    expected_id = string_event_id(raw)
    if case["raw"] == OVERSIZE:
        # parse_event refuses to parse more than MAX_EVENT_BYTES at all, so it may not know the id
        assert rejection.event_id in (None, expected_id)
    else:
        assert rejection.event_id == expected_id, rejection.reason


def test_far_future_is_relative_to_now() -> None:
    """The 15-minute skew bound is measured from ``now``, not from the wall clock."""
    doc = dict(GOOD[0], ts="2025-01-01T00:14:59Z")
    parse_event(_dumps(doc), now=NOW)
    doc["ts"] = "2025-01-01T00:15:01Z"
    with pytest.raises(InvalidEvent, match="in the future"):
        parse_event(_dumps(doc), now=NOW)


# ------------------------------------------------------------------------------ pricing stage


@pytest.fixture(scope="module")
def pricing_api() -> Any:
    try:
        import pricing
        from pricing import PricingError, load_catalog, price_event  # noqa: F401
    except ImportError as exc:  # the engine is written in parallel with these tests
        pytest.fail(f"pricing engine API not available: {exc}")
    return pricing


@pytest.fixture(scope="module")
def catalog(pricing_api: Any) -> Any:
    return pricing_api.load_catalog()


@pytest.mark.parametrize("event", GOOD, ids=GOOD_IDS)
def test_good_event_prices(event: dict[str, Any], pricing_api: Any, catalog: Any) -> None:
    priced = pricing_api.price_event(parse_event(_dumps(event), now=NOW), catalog)
    assert isinstance(priced, dict)
    assert "cost" in priced
    cost = Decimal(str(priced["cost"]))
    assert cost.is_finite() and cost > 0, priced


@pytest.mark.parametrize("case", PRICE_CASES, ids=_kind)
def test_price_rejects(case: dict[str, Any], pricing_api: Any, catalog: Any) -> None:
    event = parse_event(case["raw"], now=NOW)  # valid billing_event v1; only pricing must fail
    try:
        priced = pricing_api.price_event(event, catalog)
    except pricing_api.PricingError as exc:
        rejection = exc
    else:
        pytest.fail(f"{case['kind']}: engine priced an unpriceable event: {priced!r}")
    assert rejection.reason, "empty reason"
    assert case["reason_contains"] in rejection.reason.lower(), rejection.reason


def test_text_without_tokenizer_is_rejected(pricing_api: Any, tmp_path: Path) -> None:
    """No shipped product lacks a tokenizer (every catalog sets one in `defaults`), so this
    case uses a catalog of its own: text given, token count absent, no tokenizer -> error."""
    (tmp_path / "acme-usd.yaml").write_text(
        "provider: acme\n"
        "currency: USD\n"
        'version: "test"\n'
        "regions: []\n"
        "products:\n"
        "  - id: plain-1\n"
        '    effective_from: "2024-01-01T00:00:00Z"\n'
        '    source: "test catalog"\n'
        "    prices:\n"
        '      - {dimension: input_tokens,  per: 1000, price: "0.001"}\n'
        '      - {dimension: output_tokens, per: 1000, price: "0.002"}\n',
        encoding="utf-8",
    )
    cat = pricing_api.load_catalog(tmp_path)
    counted = _event("tok-ok", "acme", "plain-1", {"input_tokens": 10, "output_tokens": 5})
    assert Decimal(str(pricing_api.price_event(parse_event(_dumps(counted), now=NOW), cat)["cost"])) > 0
    from_text = _event("tok-missing", "acme", "plain-1", {"output_tokens": 5}, text={"input": "hello there"})
    event = parse_event(_dumps(from_text), now=NOW)
    with pytest.raises(pricing_api.PricingError) as exc:
        pricing_api.price_event(event, cat)
    assert "tokenizer" in exc.value.reason.lower()


# ------------------------------------------------------------------------------ the CLI


def test_cli_price_rejects_every_bad_line(pricing_api: Any) -> None:
    lines: list[str] = []
    expected_bad: dict[int, dict[str, Any]] = {}  # 1-based line number -> case
    half = len(CASES) // 2
    lines.append(_dumps(CLI_GOOD[0]))
    for i, case in enumerate(CASES):
        if i == half:
            lines.append(_dumps(CLI_GOOD[1]))
        lines.append(raw_of(case))
        expected_bad[len(lines)] = case
    lines.append(_dumps(CLI_GOOD[2]))
    stdin = ("\n".join(lines) + "\n").encode("utf-8")

    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "price", "-"], input=stdin, capture_output=True, cwd=ROOT, timeout=300
    )
    stdout = proc.stdout.decode("utf-8")
    stderr = proc.stderr.decode("utf-8")
    assert proc.returncode == 1, stderr[-3000:]

    priced = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert [p.get("event_id") for p in priced] == [e["event_id"] for e in CLI_GOOD], stdout[-3000:]
    for p in priced:
        assert isinstance(p["cost"], str), p
        assert Decimal(p["cost"]).is_finite() and Decimal(p["cost"]) > 0, p

    rejected: dict[int, dict[str, Any]] = {}
    for line in stderr.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)  # stderr carries only the rejection lines
        assert isinstance(doc, dict) and set(doc) >= {"line", "event_id", "reason"}, line
        assert doc["line"] not in rejected, f"line {doc['line']} reported twice"
        rejected[doc["line"]] = doc
    assert sorted(rejected) == sorted(expected_bad), (
        f"missing: {[expected_bad[n]['kind'] for n in sorted(set(expected_bad) - set(rejected))]}, "
        f"unexpected: {sorted(set(rejected) - set(expected_bad))}"
    )
    for n, doc in rejected.items():
        case = expected_bad[n]
        assert isinstance(doc["reason"], str) and doc["reason"].strip(), case["kind"]
        expected_id = string_event_id(raw_of(case))
        if case["raw"] == OVERSIZE:
            assert doc["event_id"] in (None, expected_id), case["kind"]
        else:
            assert doc["event_id"] == expected_id, (case["kind"], doc)
