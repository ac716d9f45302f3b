"""The sink's windowed totals on the real engine: exact sums, replays and retries change
nothing, a restart continues from ClickHouse, and windows leaving memory are reloaded."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from streams.sink.rollups import Rollups
from streams.storage.migrations import migrate

pytestmark = pytest.mark.integration
T0 = int(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
def db(store, ch_settings):
    migrate(store, ch_settings.migrations_dir)
    return store


def row(i: int, ts: int, user: str = "u1", p: int = 0, cost: str = "0.000123") -> dict:
    return {
        "tenant_id": "t",
        "event_id": f"e{i}",
        "user_id": user,
        "model": "gpt-4o",
        "currency": "USD",
        "cost": cost,
        "ts": ts,
        "src_partition": p,
        "src_offset": i,
        "input_tokens": 10,
        "output_tokens": 2,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "images": 0,
        "guardrail_units": 0,
    }


def write(rollups: Rollups, store, ledger: list[dict]) -> int:
    staged = rollups.stage(store, ledger)
    n = 0
    for table, rows in rollups.rows(staged).items():
        store.insert(table, rows)
        n += len(rows)
    rollups.keep(staged)
    return n


def totals(store, table: str = "rollup_user_minute") -> dict:
    rows = store.query(
        f"SELECT toUnixTimestamp64Milli(window_start) AS ws, user_id, sum(cost) AS cost, "
        f"sum(events) AS n FROM {table} FINAL GROUP BY ws, user_id"
    )
    return {(int(r["ws"]), r["user_id"]): (Decimal(r["cost"]), int(r["n"])) for r in rows}


def expected(ledger: list[dict], ms: int = 60_000) -> dict:
    out: dict = defaultdict(lambda: (Decimal(0), 0))
    for r in {(r["src_partition"], r["src_offset"]): r for r in ledger}.values():
        k = (r["ts"] - r["ts"] % ms, r["user_id"])
        out[k] = (out[k][0] + Decimal(r["cost"]), out[k][1] + 1)
    return dict(out)


def test_sums_are_exact_and_a_replay_writes_nothing(db):
    ledger = [row(i, T0 + i * 7_000, user=f"u{i % 3}", p=i % 2, cost=f"0.{i:04d}1") for i in range(40)]
    r = Rollups()
    write(r, db, ledger[:25])
    write(r, db, ledger[25:])
    assert totals(db) == expected(ledger)
    assert write(r, db, ledger[10:30]) == 0  # seen before: no change staged, nothing written
    assert totals(db) == expected(ledger)


def test_a_restarted_sink_continues_from_clickhouse(db):
    ledger = [row(i, T0 + i * 1_000) for i in range(30)]
    write(Rollups(), db, ledger[:20])
    fresh = Rollups()  # memory lost: totals and versions come back from the rollup tables
    write(fresh, db, ledger[15:])  # 15..19 replayed, 20..29 new
    assert totals(db) == expected(ledger)
    assert totals(db, "rollup_user_day") == expected(ledger, 86_400_000)


def test_label_totals_continue_from_clickhouse_and_a_replay_changes_nothing(db):
    """Per label value, through the spend_by_label_* views: a restarted sink reloads the label
    windows (the key and value written apart, read back as one), replays are skipped."""
    ledger = []
    for i in range(30):
        r = row(i, T0 + i * 1_000, p=i % 2, cost=f"0.{i:03d}7")
        r["labels"] = {"app": ["chat", "search"][i % 2], **({"team": "core=1"} if i % 3 else {})}
        ledger.append(r)
    keys = ("app", "team")
    write(Rollups(label_keys=keys), db, ledger[:20])
    fresh = Rollups(label_keys=keys)
    write(fresh, db, ledger[12:])  # 12..19 replayed
    assert write(fresh, db, ledger[5:25]) == 0
    got = {
        (r["label_key"], r["label_value"]): (Decimal(r["cost"]), int(r["events"]))
        for r in db.query(
            "SELECT label_key, label_value, sum(cost) AS cost, sum(events) AS events FROM spend_by_label_day "
            "WHERE tenant_id = 't' GROUP BY label_key, label_value"
        )
    }
    want: dict = defaultdict(lambda: (Decimal(0), 0))
    for r in ledger:
        for key in keys:
            k = (key, r["labels"].get(key, ""))
            want[k] = (want[k][0] + Decimal(r["cost"]), want[k][1] + 1)
    assert got == dict(want)
    assert set(got) == {("app", "chat"), ("app", "search"), ("team", "core=1"), ("team", "")}


def test_a_staged_batch_that_was_not_written_is_staged_again(db):
    r = Rollups()
    write(r, db, [row(0, T0)])
    first = r.rows(r.stage(db, [row(1, T0)]))  # the write "fails": nothing is kept
    again = r.rows(r.stage(db, [row(1, T0)]))
    assert again == first and again["rollup_user_minute"][0]["events"] == 2


def test_windows_leaving_memory_are_reloaded_for_a_late_event(db):
    r = Rollups(keep_ms=0)
    old = [row(0, T0), row(1, T0 + 1_000)]
    write(r, db, old)
    later = [row(2, T0 + 5 * 3_600_000)]
    write(r, db, later)
    assert (("rollup_user_minute", T0) not in r.slices) and (("rollup_user_hour", T0) not in r.slices)
    late = [row(3, T0 + 2_000)]  # back into the first minute
    write(r, db, late)
    assert totals(db) == expected(old + later + late)


def test_month_windows_follow_the_calendar(db):
    jan31 = int(dt.datetime(2025, 1, 31, 23, 59, tzinfo=dt.UTC).timestamp() * 1000)
    feb1 = int(dt.datetime(2025, 2, 1, 0, 0, tzinfo=dt.UTC).timestamp() * 1000)
    write(Rollups(), db, [row(0, jan31, cost="1.5"), row(1, feb1, cost="0.000000000001")])
    month = {(k[0], k[1]): v for k, v in totals(db, "rollup_user_month").items()}
    jan1 = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert month == {(jan1, "u1"): (Decimal("1.5"), 1), (feb1, "u1"): (Decimal("1E-12"), 1)}


def test_report_reads_the_coarsest_windows_a_range_allows():
    from streams.analyst.reads import coarsest_window

    utc = dt.UTC
    assert coarsest_window(None, None) == "month"
    assert coarsest_window(dt.datetime(2025, 1, 1, tzinfo=utc), dt.datetime(2025, 3, 1, tzinfo=utc)) == "month"
    assert coarsest_window(dt.datetime(2025, 1, 5, tzinfo=utc), None) == "day"
    assert coarsest_window(dt.datetime(2025, 1, 5, 3, tzinfo=utc), None) == "hour"
    assert coarsest_window(dt.datetime(2025, 1, 5, 3, 7, 30, tzinfo=utc), None) == "minute"
