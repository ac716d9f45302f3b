"""The rating agent's core on its own (a dict for state): replays are re-emitted, duplicates
dropped, lateness follows stream time, dedup entries expire, and a batch writes little state."""

from __future__ import annotations

import datetime as dt
import json
from copy import deepcopy

import orjson

from pricing import load_catalog
from streams.rating.rater import SEP, Rater, Source

CAT = load_catalog()
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def ev(event_id: str, ts: dt.datetime, tokens: int = 1000) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": ts.isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"input_tokens": tokens},
        }
    )


def src(offset: int, at: dt.datetime = T) -> Source:
    """A record of partition 0 produced at `at` (the Kafka timestamp)."""
    return Source("billing_events", 0, offset, int(at.timestamp() * 1000))


def test_replay_of_applied_offsets_changes_nothing_and_re_emits_the_same_rows():
    rater, state = Rater(CAT), {}
    outs = [rater.process_batch(state, [(src(i), ev(f"e{i}", T))]) for i in range(3)]
    snapshot = deepcopy(state)
    replay = [rater.process_batch(state, [(src(i), ev(f"e{i}", T))]) for i in range(3)]
    assert {k: v for k, v in state.items() if k[0] == "m"} == {k: v for k, v in snapshot.items() if k[0] == "m"}
    assert [o.ledger for o in replay] == [o.ledger for o in outs]
    assert outs[2].ledger[0]["cost"] == "0.0025" and outs[2].ledger[0]["src_offset"] == 2


def test_duplicate_event_id_at_a_later_offset_is_dropped():
    rater, state = Rater(CAT), {}
    rater.process_batch(state, [(src(0), ev("same", T))])
    out = rater.process_batch(state, [(src(1), ev("same", T))])
    assert out.duplicates == 1 and out.ledger == []


def test_lateness_is_judged_by_stream_time():
    rater, state = Rater(CAT, lateness_ms=3_600_000), {}
    rater.process_batch(state, [(src(0), ev("now", T))])
    ok = rater.process_batch(state, [(src(1), ev("50min", T - dt.timedelta(minutes=50)))])
    late = rater.process_batch(state, [(src(2), ev("2h", T - dt.timedelta(hours=2)))])
    assert len(ok.ledger) == 1
    assert len(late.rejected) == 1 and late.rejected[0]["reason"].startswith("too_late")


def test_rejection_keeps_payload_without_text():
    rater, state = Rater(CAT), {}
    raw = json.dumps({"event_id": "x", "text": {"input": "secret prompt"}, "usage": {}}).encode()
    out = rater.process_batch(state, [(src(0), raw)])
    assert len(out.rejected) == 1 and "secret prompt" not in out.rejected[0]["payload"]


def test_dedup_entries_expire_after_retention():
    rater, state = Rater(CAT, lateness_ms=3_600_000, dedup_ms=3_600_000), {}
    rater.process_batch(state, [(src(0), ev("old", T))])
    later = T + dt.timedelta(hours=3)
    assert len(rater.process_batch(state, [(src(1, later), ev("new", later))]).ledger) == 1
    gone = rater.expired(state, 0)
    # the entry of the batch that counted "old" (its time, position 0)
    assert gone == [SEP.join(("t", "0", f"{int(T.timestamp() * 1000):013d}", f"{0:020d}"))]
    for key in gone:
        del state[key]
    assert ("t", "old") not in rater.index(state, 0).seen
    assert rater.process_batch(state, [(src(2, later), ev("new", later))]).duplicates == 1  # "new" is still kept


def test_a_batch_equals_the_same_messages_one_by_one_and_writes_two_keys():
    msgs = [(src(i), ev(f"e{i % 7}", T + dt.timedelta(seconds=i))) for i in range(20)]
    one = Rater(CAT)
    s1: dict = {}
    outs = [one.process_batch(s1, [(m, raw)]) for m, raw in msgs]

    class Counting(dict):
        writes = 0

        def __setitem__(self, k, v):
            Counting.writes += 1
            super().__setitem__(k, v)

    s2 = Counting()
    out = Rater(CAT).process_batch(s2, msgs)
    assert out.ledger == [r for o in outs for r in o.ledger]
    assert out.duplicates == sum(o.duplicates for o in outs) == 13
    assert Counting.writes == 2  # one dedup entry and the partition's meta, not one per event
    assert s2[f"m{SEP}0"] == s1[f"m{SEP}0"]


def test_index_rebuilt_from_state_after_reassignment():
    rater, state = Rater(CAT), {}
    rater.process_batch(state, [(src(i), ev(f"e{i}", T)) for i in range(5)])
    fresh = Rater(CAT)  # a new worker restoring the same state from the changelog
    assert fresh.process_batch(state, [(src(9), ev("e3", T))]).duplicates == 1
    replay = fresh.process_batch(state, [(src(3), ev("e3", T))])  # the original offset: a replay, re-emitted
    assert replay.duplicates == 0 and replay.ledger[0]["src_offset"] == 3


def test_faust_never_commits_past_a_message_it_did_not_deliver():
    """streams/rating/faust_fixes.py: with offset 10 committed (next to read) and 11, 12 acked but 10
    never delivered, nothing is committed; once 10 is acked, all three are. Without a committed
    offset, the hole is measured from where the partition resumed; before that is known, nothing
    is committed. Topics not guarded keep Faust's rule."""
    from collections import defaultdict

    from faust.transport.consumer import Consumer
    from faust.types import TP
    from intervaltree import IntervalTree

    from streams.rating import faust_fixes

    class Fake:
        _new_offset = Consumer._new_offset

        def __init__(self):
            self._acked = defaultdict(list)
            self._acked_index = defaultdict(set)
            self._committed_offset = defaultdict(lambda: None)
            self._gap = defaultdict(IntervalTree)

    faust_fixes.STRICT_TOPICS.add("events-guarded")
    c, tp = Fake(), TP("events-guarded", 0)
    c._committed_offset[tp] = 10
    c._acked[tp] = [12, 11]
    assert c._new_offset(tp) is None
    c._acked[tp].append(10)
    assert c._new_offset(tp) == 13
    c._committed_offset[tp] = 13  # Faust's commit, done
    c._acked[tp] = [9, 8, 13]  # read again after a seek back: below the commit, not in the way
    assert c._new_offset(tp) == 14

    c, tp = Fake(), TP("events-guarded", 1)  # nothing committed yet (or 0): Faust would commit 2
    c._acked[tp] = [1]
    assert c._new_offset(tp) is None  # where it resumed is not known yet
    faust_fixes.resume_at(c)[tp] = 0
    assert c._new_offset(tp) is None  # offset 0 was dropped
    c._acked[tp].append(0)
    assert c._new_offset(tp) == 2

    c, tp = Fake(), TP("other", 0)
    c._acked[tp] = [1, 2]
    assert c._new_offset(tp) == 3  # Faust's own rule


def test_a_batch_must_continue_from_where_its_partition_resumed():
    """streams/rating/agent.py: after a SIGKILL the state on disk can be ahead of the commit (here
    committed 250, state at 300). If Faust drops 250, a check against the state would accept 251;
    the check against where the partition resumed finds the hole. Records given here before (read
    again after a seek back, or twice in one batch) are skipped, not rated twice."""
    from streams.rating.agent import continuing

    def batch(*offsets):
        return [(src(o), b"") for o in offsets]

    def offsets(items):
        return [s.offset for s, _ in items]

    kept, missing = continuing(250, batch(251, 252))
    assert kept == [] and missing == (250, 251)
    kept, missing = continuing(250, batch(250, 251, 253))
    assert offsets(kept) == [250, 251] and missing == (252, 253)
    kept, missing = continuing(260, batch(250, 251, 260, 261, 255, 260, 262))
    assert offsets(kept) == [260, 261, 262] and missing is None


def bsrc(offset: int, at: dt.datetime = T) -> Source:
    """A batch record (schemas/batch.py) of partition 0."""
    return Source("billing_events", 0, offset, int(at.timestamp() * 1000), True)


def test_a_batch_record_counts_each_line_at_its_own_position():
    rater, state = Rater(CAT), {}
    lines = [ev("b0", T), b"not json", b"", ev("b3", T), ev("b0", T)]  # a bad line, a blank, a repeat
    out = rater.process_batch(state, [(bsrc(7), b"\n".join(lines) + b"\n")])
    assert [(r["event_id"], r["src_offset"], r["src_index"]) for r in out.ledger] == [("b0", 7, 0), ("b3", 7, 3)]
    assert [(r["src_offset"], r["src_index"]) for r in out.rejected] == [(7, 1)]
    assert out.duplicates == 1  # b0 again at index 4 of the same record: a duplicate, not a replay


def test_a_replayed_batch_record_re_emits_the_same_rows_and_duplicates_stay_dropped():
    rater, state = Rater(CAT), {}
    batch = b"\n".join([ev("a", T), ev("b", T), ev("c", T)])
    first = rater.process_batch(state, [(bsrc(0), batch)])
    rater.reset()  # a restart: the index is rebuilt from the state
    replay = rater.process_batch(state, [(bsrc(0), batch)])
    assert replay.ledger == first.ledger and replay.duplicates == 0
    later = rater.process_batch(state, [(src(1), ev("b", T))])  # the same event again, as a single record
    assert later.duplicates == 1 and later.ledger == []
    again = rater.process_batch(state, [(bsrc(2), batch)])  # the whole batch sent twice
    assert again.duplicates == 3 and again.ledger == []


def test_the_same_event_is_a_duplicate_across_single_and_batch_records():
    rater, state = Rater(CAT), {}
    rater.process_batch(state, [(src(0), ev("x", T))])
    out = rater.process_batch(state, [(bsrc(1), b"\n".join([ev("y", T), ev("x", T)]))])
    assert [r["event_id"] for r in out.ledger] == ["y"] and out.duplicates == 1


def test_a_batch_over_the_limits_is_one_rejection():
    from schemas.batch import MAX_BATCH_EVENTS

    rater, state = Rater(CAT), {}
    out = rater.process_batch(state, [(bsrc(0), b"\n".join([ev(f"e{i}", T) for i in range(MAX_BATCH_EVENTS + 1)]))])
    assert out.ledger == [] and len(out.rejected) == 1
    assert "more than" in out.rejected[0]["reason"] and out.rejected[0]["src_index"] == 0
    empty = rater.process_batch(state, [(bsrc(1), b"\n\n")])
    assert empty.ledger == [] and "no events" in empty.rejected[0]["reason"]


def test_dedup_entries_of_older_versions_keep_working():
    """State written before batched records held offsets under "d" keys: read as index 0."""
    rater = Rater(CAT)
    state = {
        SEP.join(("m", "0")): [int(T.timestamp() * 1000), 5],
        SEP.join(("d", "0", "5")): [int(T.timestamp() * 1000), [["t", "old", 5]]],
    }
    assert rater.process_batch(state, [(src(5), ev("old", T))]).ledger  # a replay of offset 5: re-emitted
    assert rater.process_batch(state, [(src(6), ev("old", T))]).duplicates == 1


def test_dedup_entries_stay_small_whatever_the_batch():
    """One take of batched records can count tens of thousands of events: each dedup entry is
    one changelog record and must stay far below Kafka's 1 MB record limit."""
    from streams.rating.rater import DEDUP_ENTRY_IDS

    rater, state = Rater(CAT), {}
    big = "x" * 120
    records = [
        (
            bsrc(r),
            b"\n".join(
                orjson.dumps(
                    {
                        "event_id": f"{big}{r}-{i}",
                        "ts": T.isoformat(),
                        "tenant_id": big,
                        "user_id": "u",
                        "provider": "openai",
                        "model": "gpt-4o",
                        "usage": {"input_tokens": 1},
                    }
                )
                for i in range(2000)
            ),
        )
        for r in range(5)
    ]
    out = rater.process_batch(state, records)
    assert len(out.ledger) == 10_000
    entries = [v for k, v in state.items() if k[0] == "t"]
    assert len(entries) == 10_000 // DEDUP_ENTRY_IDS
    assert max(len(orjson.dumps(v)) for v in entries) < 400_000
    rater.reset()
    assert rater.process_batch(state, records).duplicates == 0  # a replay, from the chunked entries


def test_sink_records_are_bounded_in_order_and_decode_to_the_rows():
    from schemas.records import MAX_SINK_RECORD, sink_records

    rows = [{"event_id": f"e{i}", "pad": "y" * (i % 700)} for i in range(6000)]
    records = sink_records(42, rows, [{"src_offset": 1, "reason": "r"}])
    assert len(records) > 3 and all(len(r) <= MAX_SINK_RECORD for r in records)
    decoded = [orjson.loads(r) for r in records]
    assert decoded[0] == {"at": 42, "x": [{"src_offset": 1, "reason": "r"}]}
    assert [row for d in decoded[1:] for row in d["l"]] == rows


def test_a_take_is_rated_in_byte_bounded_slices_with_the_same_outcome():
    from streams.rating.agent import slices

    rater = Rater(CAT)
    items = [(src(o), ev(f"e{o % 70}", T)) for o in range(200)]  # 130 duplicates
    parts = list(slices(items, 2_000))
    assert len(parts) > 10 and all(sum(len(r) for _, r in p) <= 2_000 or len(p) == 1 for p in parts)
    assert [i for p in parts for i in p] == items
    whole, sliced = {}, {}
    one = rater.process_batch(whole, items)
    rater.reset()
    outs = [rater.process_batch(sliced, p) for p in parts]
    assert [r["event_id"] for o in outs for r in o.ledger] == [r["event_id"] for r in one.ledger]
    assert len(one.ledger) == 70 and not one.rejected
    assert sum(o.duplicates for o in outs) == one.duplicates == 130


def test_a_refused_record_is_rejected_with_its_producers_reason_and_never_counts():
    rater, state = Rater(CAT), {}
    refused = Source(
        "billing_events", 0, 0, int(T.timestamp() * 1000), refused="not converted (openai): 9 audio tokens"
    )
    out = rater.process_batch(state, [(refused, ev("valid-looking", T)), (src(1), ev("next", T))])
    assert [r["reason"] for r in out.rejected] == ["not converted (openai): 9 audio tokens"]
    assert (out.rejected[0]["src_offset"], out.rejected[0]["event_id"]) == (0, None)
    assert [r["event_id"] for r in out.ledger] == ["next"]
