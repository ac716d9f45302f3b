"""What a worker's log says: one start-up line, a progress line a minute, each error once.

- `MS_LOG_FORMAT` = ``text`` (default: ``time LEVEL logger: message``) or ``json`` (one object a
  line: ``ts``, ``level``, ``logger``, ``message``, and ``exc`` with a traceback), for log shippers.
- The same message from the same place (logger, level, its format string) within WINDOW_S is
  written once; the next one after the window says how many were left out (`Once`): a broker
  away makes Kafka clients log the same error hundreds of times a second.
- Faust's start-up banners are not printed (the worker runs it quiet) unless the level is debug.

`config` is the ``logging.config.dictConfig`` the worker hands to Faust (mode's Worker)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

WINDOW_S = 60.0
FORMATS = ("text", "json")


class Once(logging.Filter):
    """Lets the first of a repeated record through, drops its repeats within WINDOW_S, and tells
    how many it dropped on the first one let through after that."""

    def __init__(self, window_s: float = WINDOW_S, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window_s, self.clock = window_s, clock
        self.seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (first let through, dropped)
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self.lock:
            first, dropped = self.seen.get(key, (None, 0))
            if first is not None and now - first < self.window_s:
                self.seen[key] = (first, dropped + 1)
                return False
            if len(self.seen) > 10_000:
                self.seen.clear()
            self.seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in the last {self.window_s:.0f} s)"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


JsonFormatter.converter = time.gmtime  # logging's own idiom for UTC


def config(fmt: str, level: str) -> dict[str, Any]:
    """The dictConfig of a worker's logging: to stderr, in `fmt`, every record through Once."""
    if fmt not in FORMATS:
        raise ValueError(f"MS_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    formatter: dict[str, Any] = (
        {"()": "streams.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"meterstream": formatter},
        "filters": {"once": {"()": "streams.logs.Once"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "meterstream",
                "filters": ["once"],
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
