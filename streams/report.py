"""Totals for analysts from the rollup views, per currency, never summed across currencies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from streams.analyst import Reader
from streams.windows import WINDOWS

TYPES = {"cost": "Decimal(38, 12)", "events": "UInt64", "window_start": "DateTime64(3, 'UTC')"}


def coarsest_window(*bounds: dt.datetime | None) -> str:
    """The widest window (month, day, hour, minute) starting at every given bound."""
    ms = [int(b.timestamp() * 1000) for b in bounds if b is not None]
    for w in reversed(WINDOWS):
        if all(w.start(t) == t for t in ms):
            return w.name
    return WINDOWS[0].name  # a bound inside a minute: the minute windows (window starts are compared)


def spend(reader: Reader, *, by: str, window: str, tenant: str | None = None,
          since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Rows of tenant_id, user_id|model, currency, cost, events[, window_start]."""
    who = {"user": "user_id", "model": "model"}[by]
    # totals read the coarsest windows whose boundaries the range falls on (fewest rows)
    source_window = window if window != "total" else coarsest_window(since, until)
    view = f"spend_by_{by}_{source_window}"
    where, params = ["1"], {}
    if tenant:
        where.append("tenant_id = {tenant:String}")
        params["tenant"] = tenant
    if since:
        where.append("window_start >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if until:
        where.append("window_start < {until:DateTime64(3, 'UTC')}")
        params["until"] = until.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    cond = " AND ".join(where)
    if window == "total":
        sql = (f"SELECT tenant_id, {who}, currency, sum(cost) AS cost, sum(events) AS events "
               f"FROM {view} WHERE {cond} GROUP BY tenant_id, {who}, currency "
               f"ORDER BY tenant_id, currency, cost DESC, {who}")
    else:
        sql = (f"SELECT window_start, tenant_id, {who}, currency, cost, events FROM {view} "
               f"WHERE {cond} ORDER BY window_start, tenant_id, currency, cost DESC, {who}")
    return reader.query(sql, params, TYPES)


def rejects(reader: Reader, limit: int = 1000) -> list[dict[str, Any]]:
    sql = ("SELECT src_topic, src_partition, src_offset, event_id, tenant_id, reason, payload, rejected_at "
           "FROM rejected_events FINAL ORDER BY src_partition, src_offset LIMIT {limit:UInt32}")
    return reader.query(sql, {"limit": limit}, {"src_partition": "UInt32", "src_offset": "UInt64",
                                                "rejected_at": "DateTime64(3, 'UTC')"})
