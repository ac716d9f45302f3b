"""The named, typed reads analysts' commands make (report, rejects, alerts, status).

Each read is a name, a pydantic model of its parameters and the SQL it runs, with values bound
as parameters. The CLI runs them on the store directly, or, when a worker holds the embedded
engine, asks the worker for them by name (`POST /read/<name>`): no SQL text crosses the network
for these. Totals come from the rollup views, per currency, never summed across currencies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.batch import INDEX_BITS
from schemas.errors import InputRejected
from streams.analyst.usage import USAGE_TYPES, UsageParams, usage_sql
from streams.sink.windows import WINDOWS
from streams.storage import Store

Rows = list[dict[str, Any]]
SPEND_TYPES = {"cost": "Decimal(38, 12)", "events": "UInt64", "window_start": "DateTime64(3, 'UTC')"}
REJECT_TYPES = {
    "n": "UInt64",
    "first_rejected_at": "DateTime64(3, 'UTC')",
    "last_rejected_at": "DateTime64(3, 'UTC')",
    "src_partition": "UInt32",
    "src_offset": "UInt64",
    "src_index": "UInt16",
    "rejected_at": "DateTime64(3, 'UTC')",
}
ALERT_TYPES = {
    "threshold": "Decimal(9, 4)",
    "spend": "Decimal(38, 12)",
    "amount": "Decimal(38, 12)",
    "created_at": "DateTime64(3, 'UTC')",
}
LEDGER_SPEND_TYPES = {"p": "UInt32", "cost": "Decimal(38, 12)", "upto": "UInt64"}
COUNT_TYPES = {"ledger": "UInt64", "rejected": "UInt64", "alerts": "UInt64"}


class ReadError(InputRejected):
    """Unknown read or bad parameters; the message says which."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpendParams(_Params):
    by: Literal["user", "model"]
    window: Literal["minute", "hour", "day", "month", "total"] = "total"
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class RejectsParams(_Params):
    limit: int = Field(default=1000, ge=1, le=10_000_000)
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    since: AwareDatetime | None = None  # when rejected
    until: AwareDatetime | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=256)  # a part of the reason, any case
    group: bool = False  # one row per reason: how many, first and last rejected


class NoParams(_Params):
    pass


class LedgerSpendParams(_Params):
    """A budget's scope and period (streams/alerts/budgets.py)."""

    tenant_id: str = Field(min_length=1, max_length=256)
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict, max_length=4)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    since: AwareDatetime
    until: AwareDatetime


def coarsest_window(*bounds: dt.datetime | None) -> str:
    """The widest window (month, day, hour, minute) starting at every given bound."""
    ms = [int(b.timestamp() * 1000) for b in bounds if b is not None]
    for w in reversed(WINDOWS):
        if all(w.start(t) == t for t in ms):
            return w.name
    return WINDOWS[0].name  # a bound inside a minute: the minute windows (window starts are compared)


def _ch_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def spend_sql(p: SpendParams) -> tuple[str, dict[str, Any]]:
    """Rows of tenant_id, user_id|model, currency, cost, events[, window_start]."""
    who = {"user": "user_id", "model": "model"}[p.by]
    # totals read the coarsest windows whose boundaries the range falls on (fewest rows)
    view = f"spend_by_{p.by}_{p.window if p.window != 'total' else coarsest_window(p.since, p.until)}"
    where, params = ["1"], {}
    if p.tenant:
        where.append("tenant_id = {tenant:String}")
        params["tenant"] = p.tenant
    if p.since:
        where.append("window_start >= {since:DateTime64(3, 'UTC')}")
        params["since"] = _ch_time(p.since)
    if p.until:
        where.append("window_start < {until:DateTime64(3, 'UTC')}")
        params["until"] = _ch_time(p.until)
    cond = " AND ".join(where)
    if p.window == "total":
        return (
            f"SELECT tenant_id, {who}, currency, sum(cost) AS cost, sum(events) AS events "
            f"FROM {view} WHERE {cond} GROUP BY tenant_id, {who}, currency "
            f"ORDER BY tenant_id, currency, cost DESC, {who}"
        ), params
    return (
        f"SELECT window_start, tenant_id, {who}, currency, cost, events FROM {view} "
        f"WHERE {cond} ORDER BY window_start, tenant_id, currency, cost DESC, {who}"
    ), params


def rejects_sql(p: RejectsParams) -> tuple[str, dict[str, Any]]:
    where: list[str] = ["1"]
    params: dict[str, Any] = {"limit": p.limit}
    if p.tenant is not None:
        where.append("tenant_id = {tenant:String}")
        params["tenant"] = p.tenant
    if p.since is not None:
        where.append("rejected_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = _ch_time(p.since)
    if p.until is not None:
        where.append("rejected_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = _ch_time(p.until)
    if p.reason is not None:
        where.append("positionCaseInsensitiveUTF8(reason, {reason:String}) > 0")
        params["reason"] = p.reason
    cond = " AND ".join(where)
    if p.group:
        return (
            "SELECT reason, count() AS n, min(rejected_at) AS first_rejected_at, max(rejected_at) AS last_rejected_at "
            f"FROM rejected_events FINAL WHERE {cond} GROUP BY reason ORDER BY n DESC, reason LIMIT {{limit:UInt32}}"
        ), params
    return (
        "SELECT src_topic, src_partition, src_offset, src_index, event_id, tenant_id, reason, payload, "
        f"rejected_at FROM rejected_events FINAL WHERE {cond} ORDER BY src_partition, src_offset, src_index "
        "LIMIT {limit:UInt32}"
    ), params


def alerts_sql(_: NoParams) -> tuple[str, dict[str, Any]]:
    return "SELECT * FROM alerts FINAL ORDER BY created_at, alert_key", {}


def ledger_spend_sql(p: LedgerSpendParams) -> tuple[str, dict[str, Any]]:
    """Per source partition: the scope's ledger spend in [since, until) and the position of the
    last event included (the alerts role's starting point for a (budget, period))."""
    where = [
        "tenant_id = {t:String}",
        "currency = {c:String}",
        "ts >= {a:DateTime64(3, 'UTC')}",
        "ts < {b:DateTime64(3, 'UTC')}",
    ]
    params: dict[str, Any] = {
        "t": p.tenant_id,
        "c": p.currency,
        "a": _ch_time(p.since),
        "b": _ch_time(p.until),
        "bits": INDEX_BITS,
    }
    if p.user_id:
        where.append("user_id = {u:String}")
        params["u"] = p.user_id
    if p.model:
        where.append("model = {m:String}")
        params["m"] = p.model
    for i, (k, v) in enumerate(sorted(p.labels.items())):
        where.append(f"labels[{{lk{i}:String}}] = {{lv{i}:String}}")
        params[f"lk{i}"], params[f"lv{i}"] = k, v
    return (
        "SELECT src_partition AS p, sum(cost) AS cost, "
        "max(bitShiftLeft(src_offset, {bits:UInt8}) + src_index) AS upto "
        f"FROM ledger FINAL WHERE {' AND '.join(where)} GROUP BY p ORDER BY p"
    ), params


def counts_sql(_: NoParams) -> tuple[str, dict[str, Any]]:
    return (
        "SELECT (SELECT count() FROM ledger FINAL) AS ledger, (SELECT count() FROM rejected_events FINAL) "
        "AS rejected, (SELECT count() FROM alerts FINAL) AS alerts"
    ), {}


@dataclass(frozen=True)
class Read:
    params: type[BaseModel]
    sql: Callable[[Any], tuple[str, dict[str, Any]]]
    types: dict[str, str]  # column types, to restore values that crossed HTTP as JSON


READS: dict[str, Read] = {
    "spend": Read(SpendParams, spend_sql, SPEND_TYPES),
    "rejects": Read(RejectsParams, rejects_sql, REJECT_TYPES),
    "alerts": Read(NoParams, alerts_sql, ALERT_TYPES),
    "counts": Read(NoParams, counts_sql, COUNT_TYPES),
    "ledger_spend": Read(LedgerSpendParams, ledger_spend_sql, LEDGER_SPEND_TYPES),
    "usage": Read(UsageParams, usage_sql, USAGE_TYPES),  # streams/analyst/usage.py
}


def parse(name: str, params: Any) -> tuple[Read, BaseModel]:
    """The read called `name` and its validated parameters, or ReadError."""
    read = READS.get(name)
    if read is None:
        raise ReadError(f"no read named {name!r}; reads: {', '.join(sorted(READS))}")
    if not isinstance(params, dict):
        raise ReadError("parameters must be a JSON object")
    try:
        return read, read.params.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
        raise ReadError(f"bad parameters for {name}: {problems}") from None


def run(store: Store, name: str, params: Any) -> Rows:
    read, p = parse(name, params)
    sql, bound = read.sql(p)
    return store.query(sql, bound)
