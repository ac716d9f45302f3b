"""The pipeline on the real broker and engine: exact totals per user and per model in every
window, dead letters with reasons, and exactness through SIGKILLs and a second worker."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from streams.harness.expected import as_rows, diff, normalize
from streams.harness.generate import generate

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def bad_corpus() -> list[bytes]:
    """The unit tests' corpus of bad inputs (every kind), minus the generated oversize one."""
    import json
    from pathlib import Path

    path = Path(__file__).parent.parent / "data" / "bad_events.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [c["raw"].encode() for c in lines if c["raw"] != "GENERATE_OVERSIZE"]


def test_known_event_set_gives_exact_totals_in_every_window(stack):
    lines = [line for _, line in generate(3000, seed=11, now=NOW, duplicate_rate=0.1, late=15, too_late=3, bad=20)]
    corpus = bad_corpus()
    assert len(corpus) >= 30
    stack.produce(lines[:1500] + corpus + lines[1500:])
    exp = stack.expected(NOW + dt.timedelta(minutes=5))
    assert exp.duplicates > 200 and exp.rejected >= len(corpus) + 20
    stack.start_worker()
    stack.wait_until_exact(exp)
    for by in ("user", "model"):
        for window in ("minute", "hour", "day", "month", "total"):
            got = normalize(stack.report(by, window), by, window)
            want = as_rows(exp, by, window)
            assert got == want, diff(got, want)[:5]
    png = stack.tmp / "spend.png"
    stack.cli("report", "--by", "model", "--window", "minute", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rejects = stack.rejects()
    assert len(rejects) == exp.rejected
    assert all(r["reason"] for r in rejects)
    reasons = Counter("too_late" if r["reason"].startswith("too_late") else r["reason"] for r in rejects)
    assert reasons == Counter(exp.reasons)  # the same inputs rejected for the same reasons
    assert sum(1 for r in rejects if r["reason"].startswith("too_late")) == 3
    assert all('"text"' not in r["payload"] or "<removed>" in r["payload"] for r in rejects)


def test_sigkill_three_times_mid_stream_is_still_exact(stack):
    lines = [line for _, line in generate(20000, seed=12, now=NOW, duplicate_rate=0.1, late=20, bad=30)]
    stack.produce(lines, batch=False)  # single-event records: Faust's per-message path under kills
    exp = stack.expected(NOW + dt.timedelta(minutes=5))
    port = stack.start_worker()
    for _ in range(3):
        seen = stack.wait_for_progress(port, at_least=800)
        stack.kill_worker(port)  # SIGKILL: no shutdown, no commit, no flush
        assert seen < len(lines)  # it died mid-stream
        port = stack.start_worker(port)
    stack.wait_until_exact(exp, timeout=300)
    for by in ("user", "model"):
        for window in ("minute", "day"):
            got = normalize(stack.report(by, window), by, window)
            assert got == as_rows(exp, by, window)


def test_two_workers_one_killed_mid_stream(stack):
    lines = [line for _, line in generate(16000, seed=13, now=NOW, duplicate_rate=0.1, bad=10)]
    stack.produce(lines, batch=False)
    exp = stack.expected(NOW + dt.timedelta(minutes=5))
    a = stack.start_worker()
    b = stack.start_worker()
    stack.wait_for_progress(b, at_least=1500)
    stack.kill_worker(b)
    stack.wait_until_exact(exp, timeout=300)
    got = normalize(stack.report("model", "hour"), "model", "hour")
    assert got == as_rows(exp, "model", "hour")
    assert stack.health(a)["ok"]
