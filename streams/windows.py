"""Tumbling event-time windows: 1 minute, 1 hour, 1 day (UTC)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowSize:
    name: str      # "minute" | "hour" | "day": also the suffix of the ClickHouse rollup tables
    ms: int

    def start(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.ms


MINUTE = WindowSize("minute", 60_000)
HOUR = WindowSize("hour", 3_600_000)
DAY = WindowSize("day", 86_400_000)
WINDOWS: tuple[WindowSize, ...] = (MINUTE, HOUR, DAY)
BY_NAME = {w.name: w for w in WINDOWS}
