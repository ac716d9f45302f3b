"""Spend alerts: exactly one alert per (budget, period, threshold).

The evaluator runs in the alerts role (streams/alerts/role.py), which reads the priced events
(the ledger rows of the sink topic) beside the sink. Spend per (budget, period) starts from the
ledger the first time it is needed (so a budget created mid-period counts the spend already
there, and a late event adds to its own period): the lookup returns the sum and, per source
partition, the last position it covers; an event at or below that position is already in the
sum and is not added again, one above it is. The sink writes each source partition in position
order, so what the ledger holds of a partition is a prefix: sum and positions agree. A replayed
event (a position seen before in this process) is skipped. Alerts go to the alert log first
(streams/alerts/outbox.py), then to the `spend_alerts` topic and webhooks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pricing import money_str
from schemas.batch import position
from schemas.records import LedgerRow
from streams.alerts.budgets import Budget

UTC = dt.UTC


@dataclass(frozen=True)
class LedgerSpend:
    """A scope's spend in the ledger over a period, and per source partition the position of
    the last event it includes."""

    total: Decimal
    upto: dict[int, int]


SpendLookup = Callable[[Budget, dt.datetime, dt.datetime], LedgerSpend]


@dataclass(frozen=True)
class Alert:
    key: str
    budget: Budget
    period: str
    threshold: Decimal
    spend: Decimal
    event: dict[str, Any] | None
    created_at: dt.datetime

    def payload(self) -> dict[str, Any]:
        b = self.budget
        pct = money_str(self.threshold * 100)
        return {
            "idempotency_key": self.key,
            "budget": b.id,
            "scope": {"tenant_id": b.tenant_id, "user_id": b.user_id, "model": b.model, "labels": b.labels},
            "period": {"kind": b.period, "key": self.period, "timezone": b.timezone},
            "threshold": money_str(self.threshold),
            "spend": money_str(self.spend),
            "amount": money_str(b.amount),
            "currency": b.currency,
            "event": self.event,
            "created_at": self.created_at.isoformat(),
            "text": (
                f"meterstream: budget {b.id} ({b.scope_text()}) reached {pct}% of "
                f"{money_str(b.amount)} {b.currency} for {b.period} {self.period}: "
                f"spend {money_str(self.spend)} {b.currency}"
            ),
        }

    def row(self, *, kafka_delivered: bool = False, webhook_status: str = "", version: int = 1) -> dict[str, Any]:
        b, ev = self.budget, self.event or {}
        return {
            "alert_key": self.key,
            "budget_id": b.id,
            "tenant_id": b.tenant_id,
            "user_id": b.user_id or "",
            "model": b.model or "",
            "period_kind": b.period,
            "period": self.period,
            "threshold": self.threshold,
            "spend": self.spend,
            "amount": b.amount,
            "currency": b.currency,
            "event_id": ev.get("event_id", ""),
            "created_at": self.created_at,
            "kafka_delivered": kafka_delivered,
            "webhook_status": webhook_status,
            "version": version,
        }


def alert_key(budget_id: str, period: str, threshold: Decimal) -> str:
    return f"{budget_id}|{period}|{money_str(threshold)}"


class AlertEvaluator:
    def __init__(
        self, spend_lookup: SpendLookup, fired: set[str] | None = None, high_water: dict[int, int] | None = None
    ) -> None:
        self.budgets: dict[str, Budget] = {}
        self.by_tenant: dict[str, list[Budget]] = defaultdict(list)
        self.spend: dict[tuple[str, str], Decimal] = {}
        self.covered: dict[tuple[str, str], dict[int, int]] = {}  # what each lookup included
        self.fired: set[str] = fired or set()
        self.high_water: dict[int, int] = high_water or {}
        self._lookup = spend_lookup

    def _index(self) -> None:
        self.by_tenant = defaultdict(list)
        for b in self.budgets.values():
            self.by_tenant[b.tenant_id].append(b)

    def _spend(self, b: Budget, period: str) -> Decimal:
        k = (b.id, period)
        if k not in self.spend:
            found = self._lookup(b, *b.period_range(period))
            self.spend[k], self.covered[k] = found.total, dict(found.upto)
        return self.spend[k]

    def _forget(self, budget_id: str) -> None:
        self.spend = {k: v for k, v in self.spend.items() if k[0] != budget_id}
        self.covered = {k: v for k, v in self.covered.items() if k[0] != budget_id}

    def _check(self, b: Budget, period: str, event: dict[str, Any] | None, now: dt.datetime) -> list[Alert]:
        spend = self.spend[(b.id, period)]
        out = []
        for t in b.thresholds:  # ascending: one event can cross several, one alert each
            key = alert_key(b.id, period, t)
            if key not in self.fired and spend >= b.amount * t:
                self.fired.add(key)
                out.append(Alert(key, b, period, t, spend, event, now))
        return out

    def set_budget(self, budget: Budget, now: dt.datetime) -> list[Alert]:
        """A new or changed budget; its current period's spend already counts."""
        old = self.budgets.get(budget.id)
        self.budgets[budget.id] = budget
        if old is not None and old != budget:
            self._forget(budget.id)
        self._index()
        period = budget.period_of(now)
        self._spend(budget, period)
        return self._check(budget, period, None, now)

    def delete_budget(self, budget_id: str) -> None:
        self.budgets.pop(budget_id, None)
        self._forget(budget_id)
        self._index()

    def on_ledger(self, row: LedgerRow, now: dt.datetime) -> list[Alert]:
        """One priced event (a ledger row of a sink record)."""
        p, pos = row["src_partition"], position(row["src_offset"], row.get("src_index", 0))
        if pos <= self.high_water.get(p, -1):
            return []  # a replayed event: evaluated before
        self.high_water[p] = pos
        budgets = self.by_tenant.get(row["tenant_id"])
        if not budgets:
            return []
        ts = row["ts"] if isinstance(row["ts"], dt.datetime) else dt.datetime.fromtimestamp(row["ts"] / 1000, UTC)
        cost = Decimal(row["cost"])
        event = {
            "tenant_id": row["tenant_id"],
            "event_id": row["event_id"],
            "user_id": row["user_id"],
            "model": row["model"],
            "ts": ts.isoformat(),
            "cost": money_str(cost),
        }
        out: list[Alert] = []
        for b in budgets:
            if not b.matches(row["tenant_id"], row["user_id"], row["model"], row["currency"], row.get("labels")):
                continue
            period = b.period_of(ts)
            looked_up = (b.id, period) not in self.spend
            self._spend(b, period)  # from the ledger, the first time
            if pos <= self.covered[(b.id, period)].get(p, -1):
                # the lookup already included this event; what it found is checked once (a past
                # period's spend, written before this role read it, crosses its thresholds here)
                if looked_up:
                    out.extend(self._check(b, period, event, now))
                continue
            self.spend[(b.id, period)] += cost
            out.extend(self._check(b, period, event, now))
        return out
