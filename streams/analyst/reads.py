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
from streams.analyst import past_reads as past
from streams.analyst.usage import USAGE_TYPES, UsageParams, usage_sql
from streams.sink.windows import WINDOWS
from streams.storage import Store

Rows = list[dict[str, Any]]
SPEND_TYPES = {"cost": "Decimal(38, 12)", "events": "Int64", "window_start": "DateTime64(3, 'UTC')"}
REJECT_TYPES = {
    "n": "UInt64",
    "first_rejected_at": "DateTime64(3, 'UTC')",
    "last_rejected_at": "DateTime64(3, 'UTC')",
    "src_partition": "UInt32",
    "src_offset": "UInt64",
    "src_index": "UInt16",
    "rejected_at": "DateTime64(3, 'UTC')",
    "redriven_at": "Nullable(DateTime64(3, 'UTC'))",
}
ALERT_TYPES = {
    "threshold": "Decimal(9, 4)",
    "spend": "Decimal(38, 12)",
    "amount": "Decimal(38, 12)",
    "created_at": "DateTime64(3, 'UTC')",
}
LEDGER_SPEND_TYPES = {"p": "UInt32", "cost": "Decimal(38, 12)", "upto": "UInt64"}
COUNT_TYPES = {"ledger": "UInt64", "rejected": "UInt64", "alerts": "UInt64"}
# `meterstream explain` and `statement` (streams/cli/finance.py, streams/analyst/statement.py)
_MONEY, _TIME = "Decimal(38, 12)", "DateTime64(3, 'UTC')"
EXPLAIN_TYPES = {
    "ts": _TIME,
    "cost": _MONEY,
    "list_cost": _MONEY,
    "src_partition": "UInt32",
    "src_offset": "UInt64",
    "src_index": "UInt16",
    "tenants": "UInt64",
}
REJECTED_EVENT_TYPES = {**REJECT_TYPES, "times": "UInt64"}
STATEMENT_LINE_TYPES = {
    "quantity": _MONEY,
    "amount": _MONEY,
    "list_amount": _MONEY,
    "items": "UInt64",
    "first_ts": _TIME,
    "last_ts": _TIME,
}
STATEMENT_TOTAL_TYPES = {"cost": _MONEY, "list_cost": _MONEY, "events": "Int64", "overlaid": "UInt64"}
STATEMENT_REJECTED_TYPES = {"rejected": "UInt64"}


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


class EventParams(_Params):
    """One event id, optionally of one tenant (`meterstream explain`)."""

    event_id: str = Field(min_length=1, max_length=256)
    tenant: str | None = Field(default=None, min_length=1, max_length=256)


class StatementParams(_Params):
    """A tenant and a UTC calendar month, YYYY-MM (`meterstream statement`)."""

    tenant: str = Field(min_length=1, max_length=256)
    month: str = Field(pattern=r"^2[0-9]{3}-(0[1-9]|1[0-2])$")  # events are from 2000 on


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a UTC calendar month given as YYYY-MM."""
    year, mon = int(month[:4]), int(month[5:7])
    start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    return start, dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)


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
        f"rejected_at, redriven_at, redrive_outcome FROM dead_letters WHERE {cond} "
        "ORDER BY src_partition, src_offset, src_index LIMIT {limit:UInt32}"
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


def _event_where(p: EventParams) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"e": p.event_id}
    if p.tenant is None:
        return "event_id = {e:String}", params
    params["t"] = p.tenant
    return "tenant_id = {t:String} AND event_id = {e:String}", params


def explain_sql(p: EventParams) -> tuple[str, dict[str, Any]]:
    """The event's ledger row (at most 2: `tenants` says how many tenants have the id)."""
    where, params = _event_where(p)
    return (
        "SELECT tenant_id, event_id, user_id, provider, model, region, mode, ts, currency, cost, list_cost, "
        "price_overlay, catalog_version, catalog_hash, line_items, usage, estimated, src_partition, src_offset, "
        f"src_index, count() OVER () AS tenants FROM ledger FINAL WHERE {where} AND adjustment = 0 "
        "ORDER BY tenant_id LIMIT 2"
    ), params


def rejected_event_sql(p: EventParams) -> tuple[str, dict[str, Any]]:
    """The id's dead letters (the first 5; `times` says how many there are)."""
    where, params = _event_where(p)
    return (
        "SELECT tenant_id, event_id, reason, rejected_at, src_partition, src_offset, src_index, "
        f"count() OVER () AS times FROM rejected_events FINAL WHERE {where} "
        "ORDER BY rejected_at, src_partition, src_offset, src_index LIMIT 5"
    ), params


def _month_params(p: StatementParams) -> dict[str, Any]:
    start, end = month_bounds(p.month)
    return {"t": p.tenant, "a": _ch_time(start), "b": _ch_time(end)}


_IN_MONTH = "tenant_id = {t:String} AND ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')}"


def statement_lines_sql(p: StatementParams) -> tuple[str, dict[str, Any]]:
    """The tenant's line items in the month (ledger FINAL), summed per currency, model,
    dimension, unit and unit price (the tenant's and the list's), overlay rule and catalog
    version. Amounts are the items' decimal texts read at the ledger's scale."""
    return (
        "SELECT currency, provider, model, price_overlay, catalog_version, catalog_hash, "
        "JSONExtractString(item, 'dimension') AS dimension, JSONExtractString(item, 'unit') AS unit, "
        "JSONExtractString(item, 'unit_price') AS unit_price, "
        "JSONExtractString(item, 'list_unit_price') AS list_unit_price, "
        "sum(toDecimal128(JSONExtractString(item, 'quantity'), 12)) AS quantity, "
        "sum(toDecimal128(JSONExtractString(item, 'cost'), 12)) AS amount, "
        "sum(toDecimal128(if(JSONExtractString(item, 'list_cost') = '', JSONExtractString(item, 'cost'), "
        "JSONExtractString(item, 'list_cost')), 12)) AS list_amount, "
        "count() AS items, min(ts) AS first_ts, max(ts) AS last_ts "
        f"FROM ledger FINAL ARRAY JOIN JSONExtractArrayRaw(line_items) AS item WHERE {_IN_MONTH} "
        "GROUP BY currency, provider, model, price_overlay, catalog_version, catalog_hash, dimension, unit, "
        "unit_price, list_unit_price "
        "ORDER BY currency, provider, model, dimension, unit, unit_price, list_unit_price, price_overlay, "
        "catalog_version, catalog_hash"
    ), _month_params(p)


def statement_totals_sql(p: StatementParams) -> tuple[str, dict[str, Any]]:
    """Per currency: the tenant's ledger cost and list cost in the month, its events, and how
    many of them a price overlay priced."""
    return (
        "SELECT currency, sum(cost) AS cost, sum(list_cost) AS list_cost, sum(events) AS events, "
        f"countIf(price_overlay != '' AND adjustment = 0) AS overlaid FROM ledger FINAL WHERE {_IN_MONTH} "
        "GROUP BY currency ORDER BY currency"
    ), _month_params(p)


# a dead letter's month: the event's own ts when its stored payload has one in RFC 3339 with an
# offset (schemas/redact.py keeps an id-like ts), else the time it was dead-lettered
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"


def statement_rejected_sql(p: StatementParams) -> tuple[str, dict[str, Any]]:
    """How many of the tenant's inputs were dead-lettered for the month (RFC3339 above)."""
    ts = "JSONExtractString(payload, 'ts')"
    when = f"if(match({ts}, {{form:String}}), parseDateTime64BestEffortOrNull({ts}, 3, 'UTC'), NULL)"
    return (
        f"SELECT count() AS rejected FROM rejected_events FINAL WHERE tenant_id = {{t:String}} "
        f"AND coalesce({when}, rejected_at) >= {{a:DateTime64(3, 'UTC')}} "
        f"AND coalesce({when}, rejected_at) < {{b:DateTime64(3, 'UTC')}}"
    ), {**_month_params(p), "form": RFC3339}


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
    "explain": Read(EventParams, explain_sql, EXPLAIN_TYPES),
    "rejected_event": Read(EventParams, rejected_event_sql, REJECTED_EVENT_TYPES),
    "statement_lines": Read(StatementParams, statement_lines_sql, STATEMENT_LINE_TYPES),
    "statement_totals": Read(StatementParams, statement_totals_sql, STATEMENT_TOTAL_TYPES),
    "statement_rejected": Read(StatementParams, statement_rejected_sql, STATEMENT_REJECTED_TYPES),
    "usage": Read(UsageParams, usage_sql, USAGE_TYPES),  # streams/analyst/usage.py
    # fixing the past (streams/analyst/past_reads.py)
    "event_rows": Read(past.EventRowsParams, past.event_rows_sql, past.LEDGER_TYPES),
    "dead_letters": Read(past.DeadLetterParams, past.dead_letters_sql, past.DEAD_LETTER_TYPES),
    "period_closes": Read(past.ClosesParams, past.closes_sql, past.CLOSE_TYPES),
    "month_tenants": Read(past.MonthParams, past.month_tenants_sql, {}),
    "period_rows": Read(past.PeriodRowsParams, past.period_rows_sql, past.LEDGER_TYPES),
    "period_events": Read(past.PeriodEventsParams, past.period_events_sql, past.LEDGER_TYPES),
    "audit": Read(past.AuditParams, past.audit_sql, past.AUDIT_TYPES),
    "audit_rows": Read(past.AuditRowsParams, past.audit_rows_sql, past.AUDIT_ROW_TYPES),
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
