"""A worker that recovers by itself: at an offset hole it re-executes its own process in place.

The new process has the same PID, arguments and environment (plus the recovery count), so it
re-joins the consumer group, re-reads each partition from its committed offset (the commit is
blocked at the hole, see streams/rating/faust_fixes.py) and applies it in offset order. No supervisor
is needed for correctness; one that restarts crashed workers is still good practice."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import NoReturn

log = logging.getLogger("meterstream.worker")

COUNT_ENV = "MS_WORKER_RECOVERIES"  # recoveries of this worker since it was started
STREAK_ENV = "MS_WORKER_RECOVERY_STREAK"  # recoveries in a row, each within STREAK_S of the last
LAST_ENV = "MS_WORKER_RECOVERY_AT"  # unix time of the last one
REASON_ENV = "MS_WORKER_RECOVERY_REASON"
STREAK_S = 60.0
MAX_DELAY_S = 30.0


def recoveries() -> dict[str, object]:
    """What /status shows: how often this worker recovered, and the last reason."""
    return {"count": int(os.environ.get(COUNT_ENV, "0")), "last_reason": os.environ.get(REASON_ENV)}


def backoff_s(now: float) -> tuple[int, float]:
    """(streak, delay): 0.5 s after a quiet minute, doubling with each quick repeat, up to 30 s."""
    last = float(os.environ.get(LAST_ENV, "0"))
    streak = int(os.environ.get(STREAK_ENV, "0")) + 1 if now - last < STREAK_S else 0
    return streak, min(MAX_DELAY_S, 0.5 * 2**streak)


def restart_in_place(reason: str) -> NoReturn:
    """Log, wait the backoff, and exec this process again (never returns)."""
    now = time.time()
    streak, delay = backoff_s(now)
    count = int(os.environ.get(COUNT_ENV, "0")) + 1
    log.error("recovering (%d since start): %s; restarting this worker in place in %.1f s", count, reason, delay)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(delay)
    os.environ.update(
        {COUNT_ENV: str(count), STREAK_ENV: str(streak), LAST_ENV: f"{now:.3f}", REASON_ENV: reason[:200]}
    )
    # Close every inherited descriptor (sockets, the embedded engine's lock file) but stdio, so
    # the new process starts as a fresh one would.
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
    os.execv(sys.executable, sys.orig_argv)
