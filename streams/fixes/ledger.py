"""An event as the ledger holds it: its own row (adjustment 0) and its adjustments, summed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from schemas.adjustment import QUANTITIES
from schemas.money import money_str


@dataclass
class EventState:
    """One event's ledger rows, in adjustment order (rows of the `event_rows` read)."""

    rows: list[dict[str, Any]]

    @property
    def own(self) -> dict[str, Any]:
        return self.rows[0]

    @property
    def next_adjustment(self) -> int:
        return max(int(r["adjustment"]) for r in self.rows) + 1

    @property
    def partition(self) -> int:
        """Where the event is counted: its adjustments go to the same partition."""
        return int(self.own["src_partition"])

    @property
    def voided(self) -> bool:
        return sum(int(r["events"]) for r in self.rows) == 0

    def applied(self, audit_id: str) -> bool:
        """A row of this event was made by the change `audit_id` (a correction given again)."""
        return any(r.get("audit_id") == audit_id for r in self.rows)

    def current(self) -> dict[str, Any]:
        """What the event adds up to now: every row summed, the line items of all of them."""
        cost = sum((Decimal(str(r["cost"])) for r in self.rows), Decimal(0))
        list_cost = sum((Decimal(str(r["list_cost"])) for r in self.rows), Decimal(0))
        out: dict[str, Any] = {"cost": money_str(cost), "list_cost": money_str(list_cost)}
        for q in QUANTITIES:
            out[q] = sum(int(r[q]) for r in self.rows)
        out["line_items"] = [item for r in self.rows for item in orjson.loads(r["line_items"] or "[]")]
        return out

    def base(self) -> dict[str, Any]:
        """What every row of the event repeats: who, what, where, when, in which currency."""
        own = self.own
        return {
            "user_id": own["user_id"],
            "provider": own["provider"],
            "model": own["model"],
            "region": own["region"] or None,
            "mode": own["mode"],
            "service_tier": own["service_tier"] or None,
            "inference_geo": own["inference_geo"] or None,
            "labels": dict(own["labels"] or {}),
            "occurred_ms": int(own["occurred_ms"]),
            "currency": own["currency"],
        }

    def usage(self) -> dict[str, Any] | None:
        """The usage the event is priced on now: its last row's that carries one (None: voided)."""
        if self.voided:
            return None
        for r in reversed(self.rows):
            usage = orjson.loads(r["usage"] or "{}")
            if usage:
                return dict(usage)
        return None

    def event(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The event as a billing_event with `usage` (a replacement, or a re-rating)."""
        import datetime as dt

        own, base = self.own, self.base()
        event: dict[str, Any] = {
            "event_id": own["event_id"],
            "ts": dt.datetime.fromtimestamp(base["occurred_ms"] / 1000, dt.UTC).isoformat().replace("+00:00", "Z"),
            "tenant_id": own["tenant_id"],
            "user_id": base["user_id"],
            "provider": base["provider"],
            "model": base["model"],
            "mode": base["mode"],
            "usage": usage,
        }
        for k in ("region", "service_tier", "inference_geo"):
            if base[k]:
                event[k] = base[k]
        if base["labels"]:
            event["labels"] = base["labels"]
        return event


def states(rows: list[dict[str, Any]]) -> dict[tuple[str, str], EventState]:
    """Rows of several events (ordered by event and adjustment) as one state each."""
    out: dict[tuple[str, str], EventState] = {}
    for r in rows:
        key = (r["tenant_id"], r["event_id"])
        if key in out:
            out[key].rows.append(r)
        else:
            out[key] = EventState([r])
    for s in out.values():
        s.rows.sort(key=lambda r: int(r["adjustment"]))
    return out
