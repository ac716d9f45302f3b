"""The named reads of the commands that fix the past (streams/fixes/, docs/fixing-the-past.md):
an event's ledger rows, dead letters to redrive, closed periods, a month's rows in digest order,
and the audit log. Registered with the others in streams/analyst/reads.py (READS)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_MONEY, _TIME = "Decimal(38, 12)", "DateTime64(3, 'UTC')"
MONTH = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"
LEDGER_COLUMNS = (
    "tenant_id, event_id, adjustment, entry, audit_id, user_id, provider, model, region, mode, service_tier, "
    "inference_geo, toUnixTimestamp64Milli(ts) AS ts_ms, toUnixTimestamp64Milli(occurred_at) AS occurred_ms, "
    "currency, cost, list_cost, events, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, "
    "images, guardrail_units, line_items, usage, labels, catalog_version, catalog_hash, price_overlay, "
    "src_partition, src_offset, src_index"
)
LEDGER_TYPES = {"cost": _MONEY, "list_cost": _MONEY}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _t(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _between(
    where: list[str], params: dict[str, Any], column: str, since: dt.datetime | None, until: dt.datetime | None
) -> None:
    """`column` in [since, until), whichever is given, as bound parameters."""
    if since:
        where.append(f"{column} >= {{since:DateTime64(3, 'UTC')}}")
        params["since"] = _t(since)
    if until:
        where.append(f"{column} < {{until:DateTime64(3, 'UTC')}}")
        params["until"] = _t(until)


class EventRowsParams(_Params):
    """Some events of one tenant: all their ledger rows (an event's own and its adjustments)."""

    tenant: str = Field(min_length=1, max_length=256)
    event_ids: list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@+-]+$")]] = Field(
        min_length=1, max_length=1000
    )  # ids have no comma (schemas/billing_event.py): sent as one comma-separated parameter


def event_rows_sql(p: EventRowsParams) -> tuple[str, dict[str, Any]]:
    return (
        f"SELECT {LEDGER_COLUMNS} FROM ledger FINAL WHERE tenant_id = {{t:String}} "
        "AND event_id IN (SELECT arrayJoin(splitByChar(',', {ids:String}))) ORDER BY event_id, adjustment"
    ), {"t": p.tenant, "ids": ",".join(p.event_ids)}


class DeadLetterParams(_Params):
    """Dead letters to redrive: by a part of the reason, a tenant, when rejected; a page after a position."""

    reason: str | None = Field(default=None, min_length=1, max_length=256)
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    after: tuple[str, int, int, int] | None = None  # (topic, partition, offset, index) of the last one read
    limit: int = Field(default=1000, ge=1, le=10_000)


def dead_letters_sql(p: DeadLetterParams) -> tuple[str, dict[str, Any]]:
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    if p.reason:
        where.append("positionCaseInsensitive(reason, {r:String}) > 0")
        params["r"] = p.reason
    if p.tenant:
        where.append("tenant_id = {t:String}")
        params["t"] = p.tenant
    _between(where, params, "rejected_at", p.since, p.until)
    if p.after:
        where.append(
            "(src_topic, src_partition, src_offset, src_index) > ({at:String}, {ap:UInt32}, {ao:UInt64}, {ai:UInt16})"
        )
        params.update(zip(("at", "ap", "ao", "ai"), p.after, strict=True))
    return (
        "SELECT src_topic, src_partition, src_offset, src_index, tenant_id, event_id, reason, payload, "
        "rejected_at, redriven_at, redrive_outcome, redrive_detail FROM dead_letters "
        f"WHERE {' AND '.join(where)} ORDER BY src_topic, src_partition, src_offset, src_index LIMIT {p.limit}"
    ), params


DEAD_LETTER_TYPES = {"rejected_at": _TIME, "redriven_at": _TIME, "src_offset": "UInt64"}


class ClosesParams(_Params):
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    month: str | None = Field(default=None, pattern=MONTH)


def closes_sql(p: ClosesParams) -> tuple[str, dict[str, Any]]:
    where, params = ["1"], {}
    if p.tenant:
        where.append("tenant_id = {t:String}")
        params["t"] = p.tenant
    if p.month:
        where.append("month = {m:String}")
        params["m"] = p.month
    return (
        "SELECT tenant_id, month, closed_at, closed_by, rows, digest, totals, audit_id FROM period_closes FINAL "
        f"WHERE {' AND '.join(where)} ORDER BY tenant_id, month"
    ), params


CLOSE_TYPES = {"closed_at": _TIME}


class MonthParams(_Params):
    month: str = Field(pattern=MONTH)
    tenant: str | None = Field(default=None, min_length=1, max_length=256)


def month_tenants_sql(p: MonthParams) -> tuple[str, dict[str, Any]]:
    """The tenants with ledger rows booked in the month."""
    from streams.analyst.reads import month_bounds

    a, b = month_bounds(p.month)
    where = "ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')}"
    params: dict[str, Any] = {"a": _t(a), "b": _t(b)}
    if p.tenant:
        where += " AND tenant_id = {t:String}"
        params["t"] = p.tenant
    return f"SELECT DISTINCT tenant_id FROM ledger WHERE {where} ORDER BY tenant_id", params


class PeriodRowsParams(_Params):
    """A page of a tenant's ledger rows booked in a month, in digest order (event_id, adjustment)."""

    tenant: str = Field(min_length=1, max_length=256)
    month: str = Field(pattern=MONTH)
    after: tuple[str, int] | None = None  # (event_id, adjustment) of the last row read
    limit: int = Field(default=20_000, ge=1, le=100_000)


def period_rows_sql(p: PeriodRowsParams) -> tuple[str, dict[str, Any]]:
    from streams.analyst.reads import month_bounds

    a, b = month_bounds(p.month)
    params: dict[str, Any] = {"t": p.tenant, "a": _t(a), "b": _t(b)}
    after = ""
    if p.after:
        after = " AND (event_id, adjustment) > ({ae:String}, {aa:UInt32})"
        params["ae"], params["aa"] = p.after
    return (
        f"SELECT {LEDGER_COLUMNS}, version FROM ledger FINAL WHERE tenant_id = {{t:String}} "
        f"AND ts >= {{a:DateTime64(3, 'UTC')}} AND ts < {{b:DateTime64(3, 'UTC')}}{after} "
        f"ORDER BY event_id, adjustment LIMIT {p.limit}"
    ), params


class PeriodEventsParams(_Params):
    """The events (all their rows) with a row booked in [since, until), optionally of one tenant,
    a page after (tenant, event_id): what a re-rating re-prices."""

    since: AwareDatetime
    until: AwareDatetime
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    after: tuple[str, str] | None = None
    limit: int = Field(default=5_000, ge=1, le=50_000)


def period_events_sql(p: PeriodEventsParams) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"a": _t(p.since), "b": _t(p.until)}
    where = "ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')}"
    if p.tenant:
        where += " AND tenant_id = {t:String}"
        params["t"] = p.tenant
    if p.after:
        where += " AND (tenant_id, event_id) > ({at:String}, {ae:String})"
        params["at"], params["ae"] = p.after
    return (
        f"SELECT {LEDGER_COLUMNS} FROM ledger FINAL WHERE (tenant_id, event_id) IN ("
        f"SELECT DISTINCT tenant_id, event_id FROM ledger WHERE {where} ORDER BY tenant_id, event_id LIMIT {p.limit}) "
        "ORDER BY tenant_id, event_id, adjustment"
    ), params


class AuditParams(_Params):
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    action: Literal["redrive", "backfill", "correct", "rerate", "period close"] | None = None
    audit_id: str | None = Field(default=None, min_length=1, max_length=128)
    limit: int = Field(default=100, ge=1, le=10_000)


def audit_sql(p: AuditParams) -> tuple[str, dict[str, Any]]:
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    _between(where, params, "at", p.since, p.until)
    if p.action:
        where.append("action = {act:String}")
        params["act"] = p.action
    if p.audit_id:
        where.append("audit_id = {id:String}")
        params["id"] = p.audit_id
    return (
        f"SELECT audit_id, at, actor, action, reason, details FROM audit_log FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY at DESC, audit_id LIMIT {p.limit}"
    ), params


AUDIT_TYPES = {"at": _TIME}


class AuditRowsParams(_Params):
    """What one change wrote: the ledger rows and the dead letters its records gave."""

    audit_id: str = Field(min_length=1, max_length=128)


def audit_rows_sql(p: AuditRowsParams) -> tuple[str, dict[str, Any]]:
    return (
        "SELECT entry, currency, count() AS rows, sum(cost) AS cost, sum(events) AS events FROM ledger FINAL "
        "WHERE audit_id = {id:String} GROUP BY entry, currency ORDER BY entry, currency"
    ), {"id": p.audit_id}


AUDIT_ROW_TYPES = {"cost": _MONEY}
