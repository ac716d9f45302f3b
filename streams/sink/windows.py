"""Tumbling event-time windows, UTC: 1 minute, 1 hour, 1 day, and the calendar month."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class WindowSize:
    name: str  # "minute" | "hour" | "day" | "month": also the suffix of the ClickHouse rollup tables
    ms: int  # the length (a month: its longest, 31 days)
    calendar_month: bool = False

    def start(self, ts_ms: int) -> int:
        if not self.calendar_month:
            return ts_ms - ts_ms % self.ms
        t = dt.datetime.fromtimestamp(ts_ms // 1000, UTC)
        return int(dt.datetime(t.year, t.month, 1, tzinfo=UTC).timestamp()) * 1000

    def end(self, start_ms: int) -> int:
        """The start of the next window."""
        if not self.calendar_month:
            return start_ms + self.ms
        t = dt.datetime.fromtimestamp(start_ms // 1000, UTC)
        return int(dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC).timestamp()) * 1000

    def sql_start(self, column: str) -> str:
        """ClickHouse expression of the window start (DateTime64(3, 'UTC')) of a time column."""
        if self.calendar_month:
            return f"toDateTime64(toStartOfMonth({column}, 'UTC'), 3, 'UTC')"
        return f"toStartOfInterval({column}, INTERVAL {self.ms // 1000} SECOND)"


MINUTE = WindowSize("minute", 60_000)
HOUR = WindowSize("hour", 3_600_000)
DAY = WindowSize("day", 86_400_000)
MONTH = WindowSize("month", 31 * 86_400_000, calendar_month=True)
WINDOWS: tuple[WindowSize, ...] = (MINUTE, HOUR, DAY, MONTH)
BY_NAME = {w.name: w for w in WINDOWS}
