"""The usage read: cost, events and tokens grouped by up to two dimensions, per window, with
filters and a top N; what `meterstream report` and the usage API ask.

Dimensions: `tenant`, `user`, `model`, `label:KEY`. Every row also carries its tenant and currency
(users and models are a tenant's; money is never summed across currencies). The read picks its
source, and the numbers are the same either way (tests/integration/test_report.py):

- a rollup view (spend_by_{user,model,label}_{window}) when one kind of rollup holds every
  dimension and filter asked: the user rollups hold tenant and user, the model ones tenant and
  model, the label ones tenant and one label key's values (MS_ROLLUP_LABELS);
- otherwise the ledger (FINAL: each event's own row and its adjustments, `events` counting it
  once), e.g. model and user at once, a label key that is not rolled up, or `average` (the mean
  tokens per request over token events only, those with input or output tokens, so images and
  guardrail checks do not pull it to zero).

Windows are UTC unless `tz` names an IANA zone: days and months then start at that zone's
midnight, summed exactly from the hour rollups (the minute ones for a zone whose offset is not
whole hours); `window_start` is always the instant (UTC). Totals read the coarsest rollup whose
windows start at both bounds."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

DIMENSION = re.compile(r"^(tenant|user|model|label:[A-Za-z0-9_.:/-]{1,64})$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
TZ = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$")
COLUMN = {"tenant": "tenant_id", "user": "user_id", "model": "model"}
TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")
ORDER_BY = {
    "cost": "cost",
    "events": "events",
    "tokens": "(input_tokens + output_tokens + cached_input_tokens + cache_write_tokens)",
}
FINER = ("month", "day", "hour", "minute")  # coarse to fine
WINDOW_SQL = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay", "month": "toStartOfMonth"}
USAGE_TYPES = {
    "cost": "Decimal(38, 12)",
    "events": "UInt64",
    "token_events": "Int64",
    "window_start": "DateTime64(3, 'UTC')",
    **dict.fromkeys(TOKENS, "UInt64"),
}


class UsageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group_by: tuple[str, ...] = Field(default=("user",), max_length=2)
    window: Literal["minute", "hour", "day", "month", "total"] = "total"
    tz: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    user: str | None = Field(default=None, min_length=1, max_length=256)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict, max_length=4)
    top: int | None = Field(default=None, ge=1, le=10_000)
    order: Literal["cost", "events", "tokens"] = "cost"
    average: bool = False
    rolled_up_labels: tuple[str, ...] = Field(default=(), max_length=8)  # MS_ROLLUP_LABELS, filled in by the caller

    @field_validator("group_by")
    @classmethod
    def _dims(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for d in v:
            if not DIMENSION.match(d):
                raise ValueError(f"group by tenant, user, model or label:KEY, not {d!r}")
        if len(set(v)) != len(v):
            raise ValueError("a dimension is given twice")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not LABEL_KEY.match(k) or len(val) > 256:
                raise ValueError(f"a label filter is KEY=VALUE with a label key, not {k!r}")
        return v

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is None or v == "UTC":
            return None
        if not TZ.match(v):
            raise ValueError(f"not a time zone name: {v!r}")
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. Asia/Shanghai)") from None
        return v

    @model_validator(mode="after")
    def _tz_windows(self) -> UsageParams:
        if self.tz is not None and self.window not in ("day", "month"):
            raise ValueError("a time zone applies to day and month windows")
        return self

    def label_dims(self) -> list[str]:
        return [d.split(":", 1)[1] for d in self.group_by if d.startswith("label:")]


def _ch_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _starts_at(bound: dt.datetime, window: str) -> bool:
    b = bound.astimezone(dt.UTC)
    if window == "minute":
        return b.second == 0 and b.microsecond == 0
    if window == "hour":
        return _starts_at(b, "minute") and b.minute == 0
    if window == "day":
        return _starts_at(b, "hour") and b.hour == 0
    return _starts_at(b, "day") and b.day == 1


def whole_hours(tz: str, since: dt.datetime | None, until: dt.datetime | None) -> bool:
    """Whether the zone's offset is whole hours on the 1st of every month of the range (3 years
    back and 1 ahead when unbounded): its days then start on UTC hours."""
    zone = zoneinfo.ZoneInfo(tz)
    now = dt.datetime.now(dt.UTC)
    a = since or now - dt.timedelta(days=3 * 366)
    b = until or now + dt.timedelta(days=366)
    t = dt.datetime(a.year, a.month, 1, tzinfo=dt.UTC)
    while t <= b:
        off = t.astimezone(zone).utcoffset()
        if off is None or off.total_seconds() % 3600:
            return False
        t = dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=dt.UTC)
    return True


def rollup_window(p: UsageParams) -> str:
    """The rollup windows to read: those asked (UTC), else the coarsest whose starts the bounds
    fall on (and, with a time zone, no coarser than hours, or minutes for a zone off whole hours)."""
    finest_ok = "month"
    if p.tz is not None:
        finest_ok = "hour" if whole_hours(p.tz, p.since, p.until) else "minute"
    elif p.window != "total":
        return p.window
    for w in FINER[FINER.index(finest_ok) :]:
        if all(b is None or _starts_at(b, w) for b in (p.since, p.until)):
            return w
    return "minute"


def source_of(p: UsageParams) -> str:
    """'user', 'model' or 'label' (a rollup view), or 'ledger'."""
    if p.average:
        return "ledger"
    dims = {d for d in p.group_by if d != "tenant"}
    filters = {name for name in ("user", "model") if getattr(p, name) is not None}
    labels = set(p.label_dims()) | set(p.labels)
    wanted = dims | filters
    if labels:
        if len(labels) == 1 and not (wanted - {f"label:{k}" for k in labels}) and labels <= set(p.rolled_up_labels):
            return "label"
        return "ledger"
    for kind in ("user", "model"):
        if wanted <= {kind}:
            return kind
    return "ledger"


def usage_sql(p: UsageParams) -> tuple[str, dict[str, Any]]:
    """The read's SQL and its bound parameters (module doc). The source's rows are filtered and
    renamed in a subquery (its time as `t`, its counts apart from the output's names), grouped
    outside: an output alias never stands for a column in a condition."""
    source = source_of(p)
    params: dict[str, Any] = {}
    where: list[str] = []
    dims: list[tuple[str, str]] = [("tenant_id", "tenant_id")]  # (expression on the subquery, output name)
    for i, d in enumerate(p.group_by):
        if d == "tenant":
            continue
        if d.startswith("label:"):
            params[f"lk{i}"] = d.split(":", 1)[1]
            dims.append((f"labels[{{lk{i}:String}}]" if source == "ledger" else "label_value", f"`{d}`"))
        else:
            dims.append((COLUMN[d], COLUMN[d]))
    if p.tenant is not None:
        where.append("tenant_id = {tenant:String}")
        params["tenant"] = p.tenant
    for name in ("user", "model"):
        value = getattr(p, name)
        if value is not None:
            where.append(f"{COLUMN[name]} = {{{name}:String}}")
            params[name] = value
    for i, (key, value) in enumerate(sorted(p.labels.items())):
        params[f"fk{i}"], params[f"fv{i}"] = key, value
        where.append(
            f"labels[{{fk{i}:String}}] = {{fv{i}:String}}" if source == "ledger" else f"label_value = {{fv{i}:String}}"
        )
    if source == "label":
        (key,) = set(p.label_dims()) | set(p.labels)
        where.append("label_key = {label_key:String}")
        params["label_key"] = key
    time_col = "ts" if source == "ledger" else "window_start"
    if p.since is not None:
        where.append(f"{time_col} >= {{since:DateTime64(3, 'UTC')}}")
        params["since"] = _ch_time(p.since)
    if p.until is not None:
        where.append(f"{time_col} < {{until:DateTime64(3, 'UTC')}}")
        params["until"] = _ch_time(p.until)

    counts = ", ".join(f"{t} AS c_{t}" for t in TOKENS)
    if source == "ledger":
        inner = (
            f"SELECT tenant_id, user_id, model, labels, currency, cost, ts AS t, events AS n, {counts} "
            f"FROM ledger FINAL WHERE {' AND '.join(where) or '1'}"
        )
    else:
        keys = {"user": "user_id", "model": "model", "label": "label_key, label_value"}[source]
        inner = (
            f"SELECT tenant_id, {keys}, currency, cost, window_start AS t, events AS n, {counts} "
            f"FROM spend_by_{source}_{rollup_window(p)} WHERE {' AND '.join(where) or '1'}"
        )
    sums = ["sum(cost) AS cost", "sum(n) AS events", *(f"sum(c_{t}) AS {t}" for t in TOKENS)]
    if p.average:
        # events with tokens, net of voids (a void's row takes its tokens and its event back)
        sums.append("sumIf(n, c_input_tokens + c_output_tokens != 0) AS token_events")

    select = [expr if expr == name else f"{expr} AS {name}" for expr, name in dims]
    group = [name for _, name in dims] + ["currency"]
    windowed = p.window != "total"
    if windowed:
        if p.tz is not None:
            params["tz"] = p.tz
            start = f"toDateTime64({WINDOW_SQL[p.window]}(t, {{tz:String}}), 3, 'UTC')"
        elif source == "ledger":
            start = f"toDateTime64({WINDOW_SQL[p.window]}(t, 'UTC'), 3, 'UTC')"
        else:
            start = "t"
        select.insert(0, f"{start} AS window_start")
        group.insert(0, "window_start")
    lead = ["window_start"] if windowed else []
    if p.top is None:
        order = lead + ["tenant_id", "currency", f"{ORDER_BY[p.order]} DESC"] + [n for _, n in dims[1:]]
    else:  # the top N per currency (and window), across tenants
        order = lead + ["currency", f"{ORDER_BY[p.order]} DESC"] + [n for _, n in dims]
    sql = (
        f"SELECT {', '.join(select)}, currency, {', '.join(sums)} FROM ({inner}) "
        f"GROUP BY {', '.join(group)} ORDER BY {', '.join(order)}"
    )
    if p.top is not None:
        sql += f" LIMIT {{top:UInt32}} BY {', '.join(lead + ['currency'])}"
        params["top"] = p.top
    return sql, params
