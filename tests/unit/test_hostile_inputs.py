"""The hostile-input corpus (tests/data/bad_events_hostile.jsonl): strict input and stored payloads.

Every line is rejected with its reason by each stage, by the stream's rating path (the Rater, as
the worker runs it) and by `meterstream price`; none is priced. What a rejection stores (the
payload for the sink topic and rejected_events, the dead-letter record) never holds prompt text:
every `text` field of the corpus carries PROMPT_MARKER, and no stored byte may. Every
dead-letter record and every sink record stays under the producer's 1,000,000-byte limit. A
rejection keeps the input's event_id and tenant_id when they are valid ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import PricingError, load_catalog, price_event
from schemas.validate import InvalidEvent, parse_event
from streams.rating.rater import Output, Rater, Source
from tests.corpus import BAD, HOSTILE, PROMPT_MARKER, expected_ids, load, raw_bytes

ROOT = Path(__file__).resolve().parents[2]
CAT = load_catalog()
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CASES = load(HOSTILE)
KAFKA_RECORD_LIMIT = 1_000_000  # Faust's producer_max_request_size (aiokafka max_request_size)


def _kind(case: dict[str, Any]) -> str:
    return case["kind"]


GOOD = [
    {
        "event_id": f"good-{i}",
        "ts": "2024-11-01T12:00:00Z",
        "tenant_id": "tenant-g",
        "user_id": "user-g",
        "provider": "bedrock",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "region": "us-east-1",
        "usage": {"input_tokens": 1000 + i, "output_tokens": 10},
    }
    for i in range(3)
]

# ------------------------------------------------------------------------------ the corpus


def test_corpus_has_at_least_60_new_kinds() -> None:
    kinds = [c["kind"] for c in CASES]
    assert len(kinds) == len(set(kinds)) >= 60
    old = {c["kind"] for c in load(BAD)}
    assert not old & set(kinds), "kinds new to this corpus"
    for c in CASES:
        assert set(c) == {"kind", "stage", "raw", "reason_contains", "_line"}, c["kind"]
        assert c["stage"] in {"validate", "price"} and c["reason_contains"] == c["reason_contains"].lower()
        assert "\n" not in c["raw"] and "\r" not in c["raw"], c["kind"]


def test_every_text_field_of_the_corpus_holds_the_marker() -> None:
    with_text = 0
    for c in CASES:
        raw = raw_bytes(c)
        if re.search(rb'(?i)"(?:\\u0074|t)ext"', raw):
            with_text += 1
            assert PROMPT_MARKER.encode() in raw, c["kind"]
    assert with_text >= 60


# ------------------------------------------------------------------------------ each stage


@pytest.mark.parametrize("case", CASES, ids=_kind)
def test_stage_rejects_with_reason(case: dict[str, Any]) -> None:
    raw = raw_bytes(case)
    if case["stage"] == "validate":
        with pytest.raises(InvalidEvent) as exc:
            parse_event(raw, now=NOW)
        reason = exc.value.reason
        assert exc.value.event_id == expected_ids(raw)[0], reason
    else:
        event = parse_event(raw, now=NOW)  # valid billing_event v1: only pricing must fail
        with pytest.raises(PricingError) as pexc:
            price_event(event, CAT)
        reason = pexc.value.reason
    assert case["reason_contains"] in reason.lower(), reason
    assert len(reason) <= 1024 and reason.isprintable(), reason[:300]


# ------------------------------------------------------------------------------ the stream's path


def _rate_all(lines: list[bytes]) -> Output:
    rater, state = Rater(CAT), {}
    ts = int(NOW.timestamp() * 1000)
    return rater.process_batch(state, [(Source("billing_events", 0, i, ts), raw) for i, raw in enumerate(lines)])


@pytest.fixture(scope="module")
def streamed() -> tuple[list[bytes], dict[int, dict[str, Any]], Output]:
    lines = [orjson.dumps(GOOD[0])]
    bad_at: dict[int, dict[str, Any]] = {}
    for i, case in enumerate(CASES):
        if i == len(CASES) // 2:
            lines.append(orjson.dumps(GOOD[1]))
        bad_at[len(lines)] = case
        lines.append(raw_bytes(case))
    lines.append(orjson.dumps(GOOD[2]))
    return lines, bad_at, _rate_all(lines)


def test_rater_rejects_every_line_and_prices_the_rest(streamed: Any) -> None:
    lines, bad_at, out = streamed
    assert [r["event_id"] for r in out.ledger] == ["good-0", "good-1", "good-2"]
    rejected = {r["src_offset"]: r for r in out.rejected}
    assert sorted(rejected) == sorted(bad_at)
    for offset, case in bad_at.items():
        row = rejected[offset]
        assert case["reason_contains"] in row["reason"].lower(), (case["kind"], row["reason"])
        assert (row["event_id"], row["tenant_id"]) == expected_ids(lines[offset]), case["kind"]
        if case["kind"].endswith("-keeps-id"):
            assert row["event_id"] == f"h-{case['kind']}"


def test_no_stored_payload_holds_prompt_text(streamed: Any) -> None:
    from schemas.records import dead_letter_value, sink_records

    _, bad_at, out = streamed
    marker = PROMPT_MARKER.encode()
    for row in out.rejected:
        kind = bad_at[row["src_offset"]]["kind"]
        assert PROMPT_MARKER not in row["payload"], kind
        assert PROMPT_MARKER not in row["reason"], kind  # a reason quotes input only when it is an id
        assert marker not in dead_letter_value(row), kind
        assert row["payload"].isprintable(), kind  # controls and bidi characters shown escaped
    records = sink_records(0, out.ledger, out.rejected)
    assert records and not any(marker in r for r in records)


def test_dead_letter_and_sink_records_are_bounded(streamed: Any) -> None:
    from schemas.records import MAX_SINK_RECORD, dead_letter_value, sink_records

    _, bad_at, out = streamed
    for row in out.rejected:
        assert len(dead_letter_value(row)) <= MAX_SINK_RECORD < KAFKA_RECORD_LIMIT, bad_at[row["src_offset"]]["kind"]
        assert all(len(r) <= MAX_SINK_RECORD for r in sink_records(0, [], [row]))
    assert all(len(r) <= MAX_SINK_RECORD for r in sink_records(0, out.ledger, out.rejected))


def test_json_payload_keeps_the_rest_of_the_input(streamed: Any) -> None:
    """A JSON rejection keeps what it was sent, without the prompt fields: for redrive and triage."""
    lines, bad_at, out = streamed
    by_kind = {bad_at[r["src_offset"]]["kind"]: r for r in out.rejected}
    doc = orjson.loads(by_kind["dup-key-usage-input-tokens"]["payload"])
    assert doc["event_id"] == "h-dup-key-usage-input-tokens" and doc["usage"] == {"input_tokens": 10000000}
    doc = orjson.loads(by_kind["messages-array-with-text"]["payload"])
    assert doc["text"] == "<removed>" and doc["messages"] == "<removed>" and doc["model"].startswith("anthropic.")
    doc = orjson.loads(by_kind["top-level-array-of-events"]["payload"])
    assert [e["text"] for e in doc] == ["<removed>", "<removed>"]
    for kind in ("not-json-near-1mib", "nan-near-1mib", "trailing-comma-keeps-id", "invalid-utf8-keeps-id"):
        digest = orjson.loads(by_kind[kind]["payload"])["not_stored"]
        assert set(digest) == {"why", "sha256", "bytes"}, kind  # nothing of the text: no prefix
    row = by_kind["not-json-near-1mib"]
    near = orjson.loads(row["payload"])["not_stored"]
    raw = lines[row["src_offset"]]
    assert near == {"why": "not JSON", "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    assert row["event_id"] == "h-not-json-near-1mib"  # the row still names the event


# ------------------------------------------------------------------------------ the CLI


def test_cli_price_rejects_every_line() -> None:
    lines = [orjson.dumps(GOOD[0])]
    bad_at: dict[int, dict[str, Any]] = {}
    for case in CASES:
        lines.append(raw_bytes(case))
        bad_at[len(lines)] = case
    lines.append(orjson.dumps(GOOD[2]))
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "price", "-"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    priced = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert [p["event_id"] for p in priced] == ["good-0", "good-2"]
    rejected = {}
    for line in proc.stderr.splitlines():
        doc = json.loads(line)
        rejected[doc["line"]] = doc
    assert sorted(rejected) == sorted(bad_at)
    for n, case in bad_at.items():
        assert case["reason_contains"] in rejected[n]["reason"].lower(), (case["kind"], rejected[n])
        assert rejected[n]["event_id"] == expected_ids(lines[n - 1])[0], case["kind"]
    assert PROMPT_MARKER.encode() not in proc.stderr
