"""Adjustment records in the rating agent's core (a dict for state): sealed and sequenced, each
entry a ledger row or a rejection at its own position, deduplicated like events, and the rows
adding up to the corrected totals in the sink's rollups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson

from pricing import load_catalog
from schemas import adjustment
from schemas.record import read_kind
from schemas.records import SinkRecord, sink_records
from streams.fixes.ledger import states
from streams.rating.rater import Rater, Source

CAT = load_catalog()
KEY = b"k" * 32
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
TOPIC = "billing_events"


def ev(event_id: str, ts: dt.datetime, tokens: int = 1000, user: str = "u") -> dict:
    return {
        "event_id": event_id,
        "ts": ts.isoformat(),
        "tenant_id": "t",
        "user_id": user,
        "provider": "openai",
        "model": "gpt-4o",
        "usage": {"input_tokens": tokens},
    }


def live(offset: int, event: dict) -> tuple[Source, bytes]:
    return Source(TOPIC, 0, offset, int(T.timestamp() * 1000)), orjson.dumps(event)


def sealed(
    offset: int, entries: list[dict], seq: int, *, key: bytes = KEY, audit: dict | None = None
) -> tuple[Source, bytes]:
    value = adjustment.encode(entries, audit)
    kind = read_kind(adjustment.headers(key, value, topic=TOPIC, partition=0, seq=seq))
    return Source(TOPIC, 0, offset, int(T.timestamp() * 1000), adjust=kind.adjust), value


def rater() -> Rater:
    return Rater(CAT, lateness_ms=3_600_000, adjust_key=KEY)


def as_read_rows(rows: list[dict]) -> list[dict]:
    """Ledger rows as the `event_rows` read gives them back (what a command prepares from)."""
    out = []
    for r in rows:
        out.append(
            {
                **r,
                "adjustment": r.get("adjustment", 0),
                "events": r.get("events", 1),
                "ts_ms": r["ts"],
                "occurred_ms": r.get("occurred_at", r["ts"]),
                "audit_id": r.get("audit_id", ""),
            }
        )
    return out


def test_a_backfilled_event_is_counted_past_the_lateness_rule_and_booked_where_told():
    r, state = rater(), {}
    r.process_batch(state, [live(0, ev("now", T))])
    old = T - dt.timedelta(days=40)
    out = r.process_batch(
        state, [sealed(1, [{"op": "event", "entry": "backfill", "event": ev("old", old), "book_ms": 1_000}], 10)]
    )
    assert out.rejected == [] and len(out.ledger) == 1
    row = out.ledger[0]
    assert row["ts"] == 1_000 and row["occurred_at"] == int(old.timestamp() * 1000) and row["entry"] == "backfill"
    # the stream time did not move back, and a live event that old is still too late
    late = r.process_batch(state, [live(2, ev("old2", old))])
    assert late.ledger == [] and "too_late" in late.rejected[0]["reason"]


def test_an_event_counted_live_is_a_duplicate_when_redriven_and_the_outcome_says_so():
    r, state = rater(), {}
    r.process_batch(state, [live(0, ev("e1", T))])
    entry = {"op": "event", "entry": "redrive", "event": ev("e1", T), "book_ms": None, "redrive_of": [TOPIC, 0, 7, 0]}
    out = r.process_batch(state, [sealed(1, [entry], 10)])
    assert out.ledger == [] and out.duplicates == 1
    assert out.outcomes[0]["outcome"] == "duplicate" and out.outcomes[0]["src_offset"] == 7


def test_seal_and_sequence_are_checked_and_a_replay_at_its_position_is_taken_again():
    r, state = rater(), {}
    entries = [{"op": "event", "entry": "backfill", "event": ev("b1", T), "book_ms": None}]
    forged = r.process_batch(state, [sealed(0, entries, 10, key=b"x" * 32)])
    assert forged.ledger == [] and "not sealed by the adjustment key" in forged.rejected[0]["reason"]
    first = r.process_batch(state, [sealed(1, entries, 10)])
    again = r.process_batch(state, [sealed(1, entries, 10)])  # a replay after a crash: the same rows
    assert first.ledger == again.ledger and len(first.ledger) == 1
    copied = r.process_batch(state, [sealed(2, entries, 10)])  # the same record written again
    assert copied.ledger == [] and "not above the last one taken" in copied.rejected[0]["reason"]
    older = r.process_batch(state, [sealed(3, entries, 9)])
    assert older.ledger == [] and older.rejected


def test_void_and_replace_write_the_difference_and_the_rollups_move_by_it():
    from streams.sink.rollups import Rollups

    r, state = rater(), {}
    original = r.process_batch(state, [live(0, ev("e1", T, tokens=1000))]).ledger
    st = states(as_read_rows(original))[("t", "e1")]
    replace = {
        "op": "adjust",
        "entry": "replace",
        "tenant_id": "t",
        "event_id": "e1",
        "adjustment": st.next_adjustment,
        "book_ms": original[0]["ts"],
        "base": st.base(),
        "current": st.current(),
        "event": st.event({"input_tokens": 3000}),
    }
    out = r.process_batch(state, [sealed(1, [replace], 10, audit={"audit_id": "c1"})])
    assert out.rejected == [] and out.audit == [{"audit_id": "c1"}]
    delta = out.ledger[0]
    assert (delta["adjustment"], delta["events"], delta["input_tokens"]) == (1, 0, 2000)
    assert Decimal(delta["cost"]) == Decimal("0.005")  # 2,000 more input tokens at $2.50 / M
    st = states(as_read_rows(original + out.ledger))[("t", "e1")]
    void = {**replace, "entry": "void", "adjustment": st.next_adjustment, "current": st.current()}
    del void["event"]
    gone = r.process_batch(state, [sealed(2, [void], 11)]).ledger
    assert gone[0]["events"] == -1 and Decimal(gone[0]["cost"]) == Decimal("-0.0075")
    # the same adjustment number again (prepared against the same rows) is refused
    twice = r.process_batch(state, [sealed(3, [void], 12)])
    assert twice.ledger == [] and "prepare it again" in twice.rejected[0]["reason"]

    class Empty:  # a store with no rollups yet
        def query(self, *_: object, **__: object) -> list:
            return []

    rollups = Rollups()
    recs = [SinkRecord.decode(v) for v in sink_records(0, original + out.ledger + gone, [])]
    rows = [row for rec in recs for row in rec.ledger]
    for aggregate in (True, False):
        rollups = Rollups()
        staged = rollups.stage(Empty(), rows, aggregate=aggregate)  # type: ignore[arg-type]
        minute = {k: v for (table, _), keys in staged.items() if table == "rollup_user_minute" for k, v in keys.items()}
        assert list(minute.values())[0][:3] == (0, 0, 0)  # cost, events, input tokens: back to nothing
    # through the sink records, as the sink reads them
    recs = [SinkRecord.decode(v) for v in sink_records(0, original + out.ledger + gone, [])]
    assert sum(row.get("events", 1) for rec in recs for row in rec.ledger) == 0
    assert sum(Decimal(row["cost"]) for rec in recs for row in rec.ledger) == 0


def test_a_correction_of_an_unknown_event_is_dead_lettered_with_the_reason():
    r, state = rater(), {}
    entry = {
        "op": "adjust",
        "entry": "void",
        "tenant_id": "t",
        "event_id": "ghost",
        "adjustment": 1,
        "book_ms": 0,
        "base": None,
        "current": None,
        "refused": "no event t/ghost in the ledger to void",
    }
    out = r.process_batch(state, [sealed(0, [entry], 10)])
    assert out.ledger == [] and out.rejected[0]["reason"] == "void: no event t/ghost in the ledger to void"
    assert out.rejected[0]["event_id"] == "ghost" and out.rejected[0]["src_index"] == 0


def test_without_a_key_every_adjustment_record_is_refused():
    r, state = Rater(CAT), {}
    out = r.process_batch(state, [sealed(0, [{"op": "close", "row": {}}], 10)])
    assert out.closes == [] and "no adjustment key" in out.rejected[0]["reason"]


def test_an_event_entry_off_its_canonical_partition_is_refused():
    from streams.placement import Canonical

    home = Canonical(4)
    user = next(u for u in (f"u{i}" for i in range(50)) if home("t", u) != 0)
    r, state = Rater(CAT, partitions=4, adjust_key=KEY), {}
    entry = {"op": "event", "entry": "backfill", "event": ev("b1", T, user=user), "book_ms": None}
    out = r.process_batch(state, [sealed(0, [entry], 10)])
    assert out.ledger == [] and "not the event's canonical partition" in out.rejected[0]["reason"]
    here = next(u for u in (f"u{i}" for i in range(50)) if home("t", u) == 0)
    ok = r.process_batch(state, [sealed(1, [{**entry, "event": ev("b2", T, user=here)}], 11)])
    assert len(ok.ledger) == 1
