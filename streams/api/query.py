"""`GET /v1/usage`: its query parameters, mapped onto the "usage" named read
(streams/analyst/usage.py `UsageParams`), and its answer.

In the style of OpenMeter's meter query, `GET /api/v1/meters/{meterIdOrSlug}/query`
(github.com/openmeterio/openmeter, api/openapi.yaml as of commit 7e57a394a028: the
`MeterQuery.*` parameters `from`, `to`, `windowSize`, `windowTimeZone`, `groupBy`,
`filterGroupBy[KEY]`, and the `MeterQueryResult` and `MeterQueryRow` schemas), spelled the way
meterstream's other parameters are:

    meter=cost|tokens|events      what `value` is (OpenMeter's meter, a path segment there); required
    group_by=user|model|label:KEY repeatable, at most 2 (OpenMeter's groupBy; `user` is its `subject`)
    window_size=MINUTE|HOUR|DAY|MONTH   (windowSize); none: one total over the period
    from=RFC3339, to=RFC3339      from inclusive, to exclusive (OpenMeter documents both as inclusive)
    tz=IANA name                  (windowTimeZone, default UTC): DAY and MONTH windows in that zone
    filter_tenant=T               the tenant read (the token's own; see below)
    filter_user=U, filter_model=M, filter_label[KEY]=VALUE (filterGroupBy[KEY]; up to 4 keys)
    top=N                         only the N largest rows by the meter per currency (and window)

The answer is OpenMeter's `{from, to, windowSize, data: [{value, windowStart, windowEnd, subject,
groupBy}]}` with what money needs: every row carries its `currency` (the read groups by it, so
nothing is summed across currencies) and its `tenant`; `value` is exact, the cost as a decimal
string ("0.15"), tokens and events as integers (a JSON number of any size); meter=tokens adds the
row's `tokens` by kind. `subject` is the user when grouped by user (else null), as OpenMeter's
reserved `subject` group; `groupBy` holds the other dimensions by their names (`model`,
`label:team`). Without a window a row's windowStart and windowEnd are `from` and `to` (null when
not given), as OpenMeter's.

Where it differs from OpenMeter, for exactness:

- `from` and `to` must fall on the start of a window: of window_size (in `tz`, for DAY and
  MONTH), or, with no window_size, on a whole minute. The rollups are kept per minute, hour, day
  and month and read whole, so a bound inside a window would silently count it whole or not at
  all; a bound that is not one is a 400 that says so.
- A token reads only its tenants (`tenants=` of its line in the tokens file): `filter_tenant`
  naming another tenant is a 403 and nothing is read; a token of one tenant reads that one when
  `filter_tenant` is not given; a token of several must name one (400), so that a row's numbers
  never mix tenants and `top` stays a tenant's own top. Every row still says its tenant.
- Any parameter not listed, one given twice (but group_by), an empty value: 400 with the reason.
  `group_by=tenant` is refused (a query reads one tenant)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from schemas.money import money_str
from streams.analyst.usage import LABEL_KEY, TOKENS, UsageParams
from streams.http_guard import Refused

METERS = ("cost", "tokens", "events")
WINDOW_SIZES = {"MINUTE": "minute", "HOUR": "hour", "DAY": "day", "MONTH": "month"}
SINGLE = ("meter", "window_size", "from", "to", "tz", "filter_tenant", "filter_user", "filter_model", "top")
KNOWN = (*SINGLE, "group_by", "filter_label[KEY]")
FILTER_LABEL = re.compile(r"filter_label\[(.*)\]", re.DOTALL)
MAX_LABEL_FILTERS = 4
MAX_GROUP_BY = 2
MAX_TOP = 10_000
# RFC 3339 with its offset (Z or ±hh:mm): a time without one is not an instant
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
TOKEN_KINDS = {t: t.removesuffix("_tokens") for t in TOKENS}  # input_tokens -> input
# UsageParams' fields as the API names them, in a refusal's reason
API_NAMES = {
    "since": "from",
    "until": "to",
    "window": "window_size",
    "tenant": "filter_tenant",
    "user": "filter_user",
    "model": "filter_model",
    "labels": "filter_label",
}


def bad(message: str) -> Refused:
    return Refused(400, message)


@dataclass(frozen=True)
class Query:
    """A checked request: the meter, what was asked as the API says it, and the read's params."""

    meter: str
    window_size: str | None  # MINUTE, HOUR, DAY, MONTH; None: one total
    since: dt.datetime | None
    until: dt.datetime | None
    tz: str | None  # None: UTC
    params: UsageParams


def _time(name: str, value: str) -> dt.datetime:
    if not RFC3339.fullmatch(value):
        raise bad(f"{name}: {value[:64]!r} is not an RFC 3339 time with its offset, e.g. 2026-11-01T00:00:00Z")
    try:
        t = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{name}: {value[:64]!r} is not a valid time") from None
    return t.astimezone(dt.UTC)


def _pairs(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(single-valued parameters, group_by values, label filters), or a 400."""
    single: dict[str, str] = {}
    group_by: list[str] = []
    labels: dict[str, str] = {}
    for name, value in pairs:
        if value == "":
            raise bad(f"{name[:80]!r} is empty")
        m = FILTER_LABEL.fullmatch(name)
        if m is not None:
            key = m.group(1)
            if not LABEL_KEY.fullmatch(key):
                raise bad(f"filter_label[KEY]: a label key is 1-64 of A-Z a-z 0-9 _ . : / -, not {key[:80]!r}")
            if key in labels:
                raise bad(f"filter_label[{key}] is given twice")
            if len(value) > 256:
                raise bad(f"filter_label[{key}]: a label value is at most 256 characters")
            labels[key] = value
        elif name == "group_by":
            group_by.append(value)
        elif name in SINGLE:
            if name in single:
                raise bad(f"{name} is given twice")
            single[name] = value
        else:
            raise bad(f"unknown parameter {name[:80]!r}; the parameters are {', '.join(KNOWN)}")
    if len(labels) > MAX_LABEL_FILTERS:
        raise bad(f"at most {MAX_LABEL_FILTERS} filter_label[KEY] filters")
    return single, group_by, labels


def tenant_of(asked: str | None, tenants: frozenset[str]) -> str:
    """The tenant a token reads: the one asked if it is the token's (else 403), the token's
    only one when none is asked, else a 400."""
    if asked is not None:
        if asked not in tenants:
            raise Refused(403, f"this token reads the usage of {', '.join(sorted(tenants))} only; nothing was read")
        return asked
    if len(tenants) == 1:
        return next(iter(tenants))
    raise bad(f"this token reads several tenants ({', '.join(sorted(tenants))}): give filter_tenant, one of them")


def _dimension(value: str) -> str:
    if value == "tenant":
        raise bad("group_by=tenant: a query reads one tenant (filter_tenant), and every row says which")
    if value in ("user", "model") or (value.startswith("label:") and LABEL_KEY.fullmatch(value[6:])):
        return value
    raise bad(f"group_by: user, model or label:KEY (a label key: 1-64 of A-Z a-z 0-9 _ . : / -), not {value[:80]!r}")


def _starts_window(t: dt.datetime, size: str | None, tz: str | None) -> bool:
    """Whether `t` is the start of a window of `size` (DAY and MONTH in `tz`); None: a minute."""
    u = t.astimezone(dt.UTC)
    if u.second or u.microsecond:
        return False
    if size in (None, "MINUTE"):
        return True
    if size == "HOUR":
        return u.minute == 0
    local = u.astimezone(zoneinfo.ZoneInfo(tz or "UTC"))
    midnight = local.hour == 0 and local.minute == 0
    return midnight and (size == "DAY" or local.day == 1)


def parse(pairs: Iterable[tuple[str, str]], tenants: frozenset[str], rolled_up_labels: tuple[str, ...]) -> Query:
    """The request's parameters (every pair, repeated ones too) for a token of `tenants`, as the
    usage read's; a Refused (400, 403) with the reason otherwise."""
    single, group_by, labels = _pairs(pairs)
    tenant = tenant_of(single.get("filter_tenant"), tenants)
    meter = single.get("meter")
    if meter not in METERS:
        raise bad(f"meter: one of {', '.join(METERS)} is required" + (f", not {meter[:80]!r}" if meter else ""))
    size = single.get("window_size")
    if size is not None and size not in WINDOW_SIZES:
        raise bad(f"window_size: one of {', '.join(WINDOW_SIZES)}, not {size[:80]!r}")
    since = _time("from", single["from"]) if "from" in single else None
    until = _time("to", single["to"]) if "to" in single else None
    if since is not None and until is not None and since >= until:
        raise bad("from must be before to")
    if len(group_by) > MAX_GROUP_BY:
        raise bad(f"group_by: at most {MAX_GROUP_BY} dimensions")
    dims = tuple(_dimension(v) for v in group_by)
    if len(set(dims)) != len(dims):
        raise bad("group_by: a dimension is given twice")
    if single.get("tz", "UTC") != "UTC" and size not in ("DAY", "MONTH"):
        raise bad("tz applies to window_size=DAY and MONTH (days and months start at the zone's midnight)")
    top = None
    if "top" in single:
        if not re.fullmatch(r"[0-9]{1,5}", single["top"]) or not 1 <= int(single["top"]) <= MAX_TOP:
            raise bad(f"top: a whole number from 1 to {MAX_TOP}, not {single['top'][:80]!r}")
        top = int(single["top"])
    try:
        params = UsageParams.model_validate(
            {
                "group_by": dims or ("tenant",),
                "window": WINDOW_SIZES[size] if size else "total",
                "tz": single.get("tz"),
                "since": since,
                "until": until,
                "tenant": tenant,
                "user": single.get("filter_user"),
                "model": single.get("filter_model"),
                "labels": labels,
                "top": top,
                "order": meter,
                "rolled_up_labels": rolled_up_labels,
            }
        )
    except ValidationError as exc:
        raise bad("; ".join(_problem(e) for e in exc.errors(include_url=False))) from None
    for name, t in (("from", since), ("to", until)):
        if t is not None and not _starts_window(t, size, params.tz):
            where = f"a {size} window" + (f" in {params.tz}" if params.tz and size in ("DAY", "MONTH") else "")
            raise bad(
                f"{name} must be the start of {where if size else 'a minute (whole minutes)'}: the rollups "
                "count whole windows, so a bound inside one would not be exact"
            )
    return Query(meter, size, since, until, params.tz, params)


def _problem(error: Mapping[str, Any]) -> str:
    loc = ".".join(API_NAMES.get(str(x), str(x)) for x in error["loc"]) or "parameters"
    msg = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}"


def rfc3339(t: dt.datetime | None) -> str | None:
    """An instant as RFC 3339 in UTC (`Z`), or None."""
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def window_end(start: dt.datetime, size: str, tz: str | None) -> dt.datetime:
    """The end of the window of `size` starting at `start` (DAY and MONTH: the next local
    midnight, or first of the month, in `tz`)."""
    start = (start if start.tzinfo else start.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if size == "MINUTE":
        return start + dt.timedelta(minutes=1)
    if size == "HOUR":
        return start + dt.timedelta(hours=1)
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    local = start.astimezone(zone).date()
    if size == "DAY":
        nxt = local + dt.timedelta(days=1)
    else:
        nxt = dt.date(local.year + local.month // 12, local.month % 12 + 1, 1)
    return dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(dt.UTC)


def value_of(meter: str, row: Mapping[str, Any]) -> str | int:
    """The row's value: the cost as exact decimal text, tokens and events as integers."""
    if meter == "cost":
        return money_str(Decimal(str(row["cost"])))
    if meter == "events":
        return int(row["events"])
    return sum(int(row[t]) for t in TOKENS)


def answer(q: Query, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """OpenMeter's MeterQueryResult, with each row's currency and tenant (module doc)."""
    data = []
    for r in rows:
        if q.window_size is None:
            start, end = rfc3339(q.since), rfc3339(q.until)
        else:
            start, end = rfc3339(r["window_start"]), rfc3339(window_end(r["window_start"], q.window_size, q.tz))
        row: dict[str, Any] = {
            "value": value_of(q.meter, r),
            "currency": r["currency"],
            "windowStart": start,
            "windowEnd": end,
            "subject": r["user_id"] if "user" in q.params.group_by else None,
            "tenant": r["tenant_id"],
            "groupBy": {d: r[d] for d in q.params.group_by if d not in ("tenant", "user")},
        }
        if q.meter == "tokens":
            row["tokens"] = {kind: int(r[t]) for t, kind in TOKEN_KINDS.items()}
        data.append(row)
    return {
        "meter": q.meter,
        "tenant": q.params.tenant,
        "from": rfc3339(q.since),
        "to": rfc3339(q.until),
        "windowSize": q.window_size,
        "windowTimeZone": q.tz or "UTC",
        "data": data,
    }
