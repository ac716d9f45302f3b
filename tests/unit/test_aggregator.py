"""The counting core on its own (a dict for state): replays change nothing, duplicates are
dropped, lateness follows stream time, and expired keys are found."""

from __future__ import annotations

import datetime as dt
import json
from copy import deepcopy

import orjson

from pricing import load_catalog
from streams.aggregator import SEP, Aggregator, Source

CAT = load_catalog()
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def ev(event_id: str, ts: dt.datetime, tokens: int = 1000) -> bytes:
    return orjson.dumps({"event_id": event_id, "ts": ts.isoformat(), "tenant_id": "t", "user_id": "u",
                         "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": tokens}})


def src(offset: int, at: dt.datetime = T) -> Source:
    """A record of partition 0 produced at `at` (the Kafka timestamp)."""
    return Source("billing_events", 0, offset, int(at.timestamp() * 1000))


def test_replay_of_applied_offsets_changes_nothing_and_re_emits_the_same_rows():
    agg, state = Aggregator(CAT), {}
    outs = [agg.process(state, src(i), ev(f"e{i}", T)) for i in range(3)]
    snapshot = deepcopy(state)
    replay = [agg.process(state, src(i), ev(f"e{i}", T)) for i in range(3)]
    assert state == snapshot
    # the last replayed message re-emits the absolute totals already written, same version
    assert replay[-1].rollups == outs[-1].rollups
    minute = [r for r in outs[-1].rollups if r["table"] == "rollup_user_minute"][0]
    assert (minute["events"], minute["cost"], minute["version"]) == (3, "0.0075", 2)


def test_duplicate_event_id_at_a_later_offset_is_dropped():
    agg, state = Aggregator(CAT), {}
    agg.process(state, src(0), ev("same", T))
    out = agg.process(state, src(1), ev("same", T))
    assert out.duplicate and out.ledger is None and out.rollups == []


def test_lateness_is_judged_by_stream_time():
    agg, state = Aggregator(CAT, lateness_ms=3_600_000), {}
    agg.process(state, src(0), ev("now", T))
    ok = agg.process(state, src(1), ev("50min", T - dt.timedelta(minutes=50)))
    late = agg.process(state, src(2), ev("2h", T - dt.timedelta(hours=2)))
    assert ok.ledger is not None
    assert late.rejected is not None and late.rejected["reason"].startswith("too_late")


def test_rejection_keeps_payload_without_text():
    agg, state = Aggregator(CAT), {}
    raw = json.dumps({"event_id": "x", "text": {"input": "secret prompt"}, "usage": {}}).encode()
    out = agg.process(state, src(0), raw)
    assert out.rejected is not None and "secret prompt" not in out.rejected["payload"]


def test_expired_keys_after_lateness():
    agg, state = Aggregator(CAT, lateness_ms=3_600_000, dedup_ms=3_600_000), {}
    agg.process(state, src(0), ev("old", T))
    later = T + dt.timedelta(hours=3)
    assert agg.process(state, src(1, later), ev("new", later)).ledger is not None
    gone = agg.expired(state, 0, list(state))
    assert any(k.startswith(SEP.join(("w", "0", "minute"))) for k in gone)
    assert SEP.join(("s", "0", "t", "old")) in gone
    assert not any("new" in k for k in gone)
