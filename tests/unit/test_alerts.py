"""Budgets and the alert evaluator: exactly one alert per (budget, period, threshold)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from streams.alerts.budgets import BudgetError, parse_budget
from streams.alerts.evaluator import AlertEvaluator, LedgerSpend

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


class Ledger:
    """The rows the sink has written so far: what the evaluator's spend lookup reads."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, int], dict] = {}  # one row per source offset, as in ClickHouse

    def spend(self, b, start, end) -> LedgerSpend:
        rows = [
            r
            for r in self.rows.values()
            if b.matches(r["tenant_id"], r["user_id"], r["model"], r["currency"], r.get("labels"))
            and start <= dt.datetime.fromtimestamp(r["ts"] / 1000, UTC) < end
        ]
        upto: dict[int, int] = {}
        for r in rows:
            upto[r["src_partition"]] = max(upto.get(r["src_partition"], -1), r["src_offset"] << 13)
        return LedgerSpend(sum((Decimal(r["cost"]) for r in rows), Decimal(0)), upto)


def row(offset: int, cost: str, *, user="u1", model="gpt-4o", tenant="acme", ts=T0, partition=0, currency="USD"):
    return {
        "src_partition": partition,
        "src_offset": offset,
        "tenant_id": tenant,
        "user_id": user,
        "model": model,
        "currency": currency,
        "cost": cost,
        "event_id": f"e{partition}-{offset}",
        "ts": int(ts.timestamp() * 1000),
    }


def budget(**kw):
    base = {"id": "b", "tenant_id": "acme", "period": "day", "currency": "USD", "amount": "10"}
    return parse_budget({**base, **kw})


def run(evaluator, ledger, rows):
    fired = []
    for r in rows:
        fired += [(a.budget.id, a.period, str(a.threshold)) for a in evaluator.on_ledger(r, T0)]
        ledger.rows[(r["src_partition"], r["src_offset"])] = r
    return fired


def test_scripted_sequence_daily_and_monthly_for_user_tenant_and_model():
    ledger = Ledger()
    ev = AlertEvaluator(ledger.spend)
    ev.set_budget(budget(id="tenant-day"), T0)
    ev.set_budget(budget(id="user-month", user_id="u1", period="month", amount="20"), T0)
    ev.set_budget(budget(id="model-day", model="qwen-plus", currency="USD", amount="4", thresholds=["0.5", "1"]), T0)
    fired = run(
        ev,
        ledger,
        [
            row(0, "4.99"),  # tenant 49.9%: nothing
            row(1, "0.01"),  # tenant 50% exactly: tenant-day 0.5
            row(2, "3", user="u2"),  # tenant 80%: 0.8 (u2 not in user-month)
            row(3, "2", model="qwen-plus"),  # tenant 100%; model 50%
            row(4, "7", ts=T0 + dt.timedelta(days=1)),  # next day: tenant 70% of day 2 -> 0.5 only
            row(5, "2.5", model="qwen-plus", user="u9"),  # model 112.5%: 1; tenant day1 125%: nothing new
            row(6, "2", ts=T0 + dt.timedelta(days=2)),  # u1's month 16 of 20: 0.8; tenant day 3 at 20%
            row(7, "4.1", ts=T0 + dt.timedelta(days=2), partition=3),  # u1's month 100.5%: 1 (another partition)
        ],
    )
    assert fired == [
        ("tenant-day", "2026-03-10", "0.5"),  # row 1
        ("tenant-day", "2026-03-10", "0.8"),  # row 2
        ("tenant-day", "2026-03-10", "1"),
        ("model-day", "2026-03-10", "0.5"),  # row 3 (u1 month at 35%)
        ("tenant-day", "2026-03-11", "0.5"),
        ("user-month", "2026-03", "0.5"),  # row 4 (u1 month at 70%)
        ("model-day", "2026-03-10", "1"),  # row 5
        ("user-month", "2026-03", "0.8"),  # row 6
        ("tenant-day", "2026-03-12", "0.5"),
        ("user-month", "2026-03", "1"),  # row 7 (tenant day 3: 6.1)
    ]


def test_a_budget_on_a_label_counts_only_that_labels_spend():
    """Chargeback: a team's budget sees the team's events (every label it names must match)."""
    ledger = Ledger()
    ev = AlertEvaluator(ledger.spend)
    ev.set_budget(budget(id="search", labels={"team": "search"}, thresholds=["1"]), T0)
    rows = [row(0, "6"), row(1, "6"), row(2, "6"), row(3, "6")]
    rows[1]["labels"] = rows[3]["labels"] = {"team": "search", "app": "chat"}
    rows[2]["labels"] = {"team": "ads"}
    assert run(ev, ledger, rows) == [("search", "2026-03-10", "1")]  # 6 + 6 of search's: 12 >= 10
    b = budget(labels={"team": "search"})
    assert b.scope_text() == "tenant acme, label team=search"
    assert not b.matches("acme", "u1", "gpt-4o", "USD", None) and b.matches("acme", "u", "m", "USD", {"team": "search"})
    with pytest.raises(BudgetError, match="labels"):
        budget(labels={"bad key": "x"})


def test_one_event_over_several_thresholds_gives_one_alert_each():
    ledger = Ledger()
    ev = AlertEvaluator(ledger.spend)
    ev.set_budget(budget(), T0)
    alerts = ev.on_ledger(row(0, "25"), T0)
    assert [str(a.threshold) for a in alerts] == ["0.5", "0.8", "1"]
    assert all(a.event["event_id"] == "e0-0" and a.spend == Decimal("25") for a in alerts)
    assert len({a.key for a in alerts}) == 3


def test_replays_and_restarts_fire_nothing_again():
    ledger = Ledger()
    ev = AlertEvaluator(ledger.spend)
    ev.set_budget(budget(), T0)
    first = run(ev, ledger, [row(0, "6"), row(1, "3")])
    assert first == [("b", "2026-03-10", "0.5"), ("b", "2026-03-10", "0.8")]
    assert run(ev, ledger, [row(0, "6"), row(1, "3")]) == []  # the same offsets again: a replay
    # a restart: the fired keys come back from the alert log, the spend from the ledger; the
    # replayed row 1 is in the ledger already (its position is covered) and is not added again
    again = AlertEvaluator(ledger.spend, fired=set(ev.fired))
    again.set_budget(budget(), T0)
    assert run(again, ledger, [row(1, "3"), row(2, "0.9")]) == []  # 9.9 of 10
    assert run(again, ledger, [row(3, "0.1")]) == [("b", "2026-03-10", "1")]


def test_a_ledger_ahead_of_the_evaluator_is_counted_once():
    """The sink may have written events the evaluator has not read yet: the lookup includes
    them, and reading them later adds nothing; events past what the ledger held are added."""
    ledger = Ledger()
    for r in (row(0, "2"), row(1, "1.5"), row(0, "1", partition=1)):
        ledger.rows[(r["src_partition"], r["src_offset"])] = r
    ev = AlertEvaluator(ledger.spend)
    assert ev.set_budget(budget(), T0) == []  # 4.5 of 10
    assert run(ev, ledger, [row(0, "2"), row(0, "1", partition=1), row(1, "1.5")]) == []  # already counted
    assert run(ev, ledger, [row(2, "0.3"), row(1, "0.2", partition=1)]) == [("b", "2026-03-10", "0.5")]
    assert ev.spend[("b", "2026-03-10")] == Decimal("5.0")


def test_budget_created_mid_period_counts_spend_already_there():
    ledger = Ledger()
    ev = AlertEvaluator(ledger.spend)
    run(ev, ledger, [row(0, "8.5"), row(1, "1", tenant="other")])
    alerts = ev.set_budget(budget(), T0)
    assert [(str(a.threshold), a.event) for a in alerts] == [("0.5", None), ("0.8", None)]
    assert run(ev, ledger, [row(2, "1.5")]) == [("b", "2026-03-10", "1")]


def test_periods_follow_the_budget_time_zone():
    b = budget(timezone="Asia/Shanghai")
    late_utc = dt.datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # 01:00 on the 11th in Shanghai
    assert b.period_of(late_utc) == "2026-03-11"
    assert b.period_range("2026-03-11") == (
        dt.datetime(2026, 3, 10, 16, tzinfo=UTC),
        dt.datetime(2026, 3, 11, 16, tzinfo=UTC),
    )
    m = budget(period="month", timezone="America/New_York")
    assert m.period_range("2026-12") == (
        dt.datetime(2026, 12, 1, 5, tzinfo=UTC),
        dt.datetime(2027, 1, 1, 5, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"amount": "-5"}, "positive"),
        ({"amount": 0.1}, "float"),
        ({"currency": "XYZ"}, "unknown currency"),
        ({"thresholds": ["0"]}, "outside"),
        ({"thresholds": ["10.5"]}, "outside"),
        ({"period": "week"}, "period"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"id": "has space"}, "id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_budgets_are_refused_with_a_clear_message(change, message):
    with pytest.raises(BudgetError, match=message):
        budget(**change)


def test_a_past_period_the_ledger_holds_whole_fires_when_its_first_event_is_read():
    """The sink wrote all of yesterday's events before the alerts role read them (it was behind,
    or restarted): the first of them it reads looks yesterday's spend up, already past the
    thresholds; the crossings fire then, once, though every event is covered by the lookup."""
    yesterday = T0 - dt.timedelta(days=1)
    ledger = Ledger()
    for r in (row(0, "6", ts=yesterday), row(1, "3", ts=yesterday)):
        ledger.rows[(r["src_partition"], r["src_offset"])] = r
    ev = AlertEvaluator(ledger.spend)
    assert ev.set_budget(budget(), T0) == []  # today: nothing yet
    fired = run(ev, ledger, [row(0, "6", ts=yesterday), row(1, "3", ts=yesterday)])
    assert fired == [("b", "2026-03-09", "0.5"), ("b", "2026-03-09", "0.8")]
    assert run(ev, ledger, [row(2, "1", ts=yesterday)]) == [("b", "2026-03-09", "1")]
