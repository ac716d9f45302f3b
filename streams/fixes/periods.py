"""Closed periods: where a change to the past is booked, and the digest that proves a closed
month did not change.

A tenant's month is closed by `meterstream period close`: afterwards nothing is booked in it. A
redriven or backfilled event of that month, a correction or a re-rating of one of its events, is
booked at the start of the first month after it that is not closed (its rows keep the event's
own time in `occurred_at`). The digest of a closed month is a SHA-256 hash chain over the month's
ledger rows in the order (event_id, adjustment), each row as canonical JSON of every column that
counts, with the totals per currency; `period verify` recomputes it and compares."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from schemas.money import money_str
from schemas.records import COUNTERS
from streams.analyst.reads import month_bounds

UTC = dt.UTC
PAGE = 20_000
MONTH = re.compile(r"^2[0-9]{3}-(0[1-9]|1[0-2])$")
# the columns a digest covers: everything a row counts, prices, or is identified by
DIGEST_COLUMNS = (
    "event_id",
    "adjustment",
    "entry",
    "audit_id",
    "user_id",
    "provider",
    "model",
    "region",
    "mode",
    "service_tier",
    "inference_geo",
    "ts_ms",
    "occurred_ms",
    "currency",
    "cost",
    "list_cost",
    *COUNTERS,
    "line_items",
    "usage",
    "labels",
    "catalog_version",
    "catalog_hash",
    "price_overlay",
    "src_partition",
    "src_offset",
    "src_index",
    "version",
)
_SCALE = Decimal("1e-12")
_INTEGERS = frozenset(COUNTERS) | {
    "adjustment",
    "ts_ms",
    "occurred_ms",
    "src_partition",
    "src_offset",
    "src_index",
    "version",
}


def month_of(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def next_month(month: str) -> str:
    return month_bounds(month)[1].strftime("%Y-%m")


@dataclass(frozen=True)
class Closed:
    """The closed (tenant, month) pairs, as `period_closes` holds them."""

    months: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]]) -> Closed:
        return cls(frozenset((r["tenant_id"], r["month"]) for r in rows))

    def is_closed(self, tenant: str, month: str) -> bool:
        return (tenant, month) in self.months

    def book_ms(self, tenant: str, at_ms: int) -> int | None:
        """Where a change of `tenant` at `at_ms` is booked: None when its month is open (at its own
        time), else the start of the first month after it that is not closed."""
        month = month_of(at_ms)
        if not self.is_closed(tenant, month):
            return None
        while self.is_closed(tenant, month):
            month = next_month(month)
        return int(month_bounds(month)[0].timestamp() * 1000)


def _canonical(row: dict[str, Any]) -> bytes:
    """A row as the digest hashes it: every column of DIGEST_COLUMNS, money at the ledger's scale,
    integers as integers, labels sorted; the same whether read from the store or through a worker."""
    out: dict[str, Any] = {}
    for c in DIGEST_COLUMNS:
        v = row.get(c)
        if c in ("cost", "list_cost"):
            v = str(Decimal(str(v)).quantize(_SCALE))
        elif c == "labels":
            v = dict(sorted((v or {}).items()))
        elif c in _INTEGERS:
            v = int(v or 0)
        elif v is not None:
            v = str(v)
        out[c] = v
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS)


@dataclass
class Digest:
    tenant: str
    month: str
    rows: int
    head: str  # hex SHA-256: the chain's last link
    totals: dict[str, dict[str, Any]]  # currency -> {"cost": text, "events": n}

    def totals_json(self) -> str:
        return orjson.dumps(self.totals, option=orjson.OPT_SORT_KEYS).decode()


def digest(read: Callable[..., list[dict[str, Any]]], tenant: str, month: str) -> Digest:
    """The digest of a tenant's month, from pages of the `period_rows` read."""
    head = hashlib.sha256(f"meterstream-period/1\n{tenant}\n{month}\n".encode()).digest()
    rows = 0
    cost: dict[str, Decimal] = {}
    events: dict[str, int] = {}
    after: list[Any] | None = None
    while True:
        page = read("period_rows", tenant=tenant, month=month, after=after, limit=PAGE)
        for r in page:
            head = hashlib.sha256(head + _canonical(r)).digest()
            cur = r["currency"]
            cost[cur] = cost.get(cur, Decimal(0)) + Decimal(str(r["cost"]))
            events[cur] = events.get(cur, 0) + int(r["events"])
        rows += len(page)
        if len(page) < PAGE:
            break
        after = [page[-1]["event_id"], int(page[-1]["adjustment"])]
    totals = {c: {"cost": money_str(cost[c]), "events": events[c]} for c in sorted(cost)}
    return Digest(tenant, month, rows, head.hex(), totals)


def closable(month: str, now: dt.datetime, lateness: dt.timedelta, future: dt.timedelta) -> str | None:
    """Why the month cannot be closed yet (None: it can): late events may still reach it."""
    end = month_bounds(month)[1]
    if end + lateness + future > now:
        return (
            f"{month} is still open to late events until {end + lateness + future:%Y-%m-%d %H:%M} UTC "
            f"(allowed lateness {lateness}); close it after that"
        )
    return None
