"""Fixing the past on the real broker and engine (docs/fixing-the-past.md): redrive after a
catalog fix (exact, and a second redrive changes nothing), a backfill of last quarter and a
closed month (adjustments booked in the open month; `period verify` passes, then fails after a
row is altered behind its back), and corrections (a void and a replacement) that move the
rollups, a budget and its alerts by exactly the difference, through SIGKILLs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from pricing import load_catalog
from pricing.catalog import SHIPPED_CATALOGS
from pricing.rating import Rejection, rate
from streams.harness.stack import CLI

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
NEW_MODEL = "gpt-4o-fixture"


def event(
    eid: str, ts: dt.datetime, *, tenant: str = "acme", user: str = "u1", model: str = "gpt-4o", tokens: int = 1000
) -> dict:
    return {
        "event_id": eid,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "tenant_id": tenant,
        "user_id": user,
        "provider": "openai",
        "model": model,
        "usage": {"input_tokens": tokens, "output_tokens": tokens // 10},
    }


def price(ev: dict, catalog) -> Decimal:
    out = rate(orjson.dumps(ev), catalog, now=NOW)
    assert not isinstance(out, Rejection), out
    return Decimal(out["cost"])


def ledger_totals(stack, where: str = "1") -> dict[str, tuple[Decimal, int]]:
    """Per tenant: sum(cost) and sum(events) over ledger FINAL."""
    rows = stack.query(
        f"SELECT tenant_id, toString(sum(cost)) AS cost, sum(events) AS n FROM ledger FINAL WHERE {where} "
        "GROUP BY tenant_id ORDER BY tenant_id"
    )
    return {r["tenant_id"]: (Decimal(r["cost"]), int(r["n"])) for r in rows}


def report_totals(stack, window: str = "total") -> dict[str, Decimal]:
    """Per user: the rollups' cost (the spend_by_user views), summed over windows."""
    out: dict[str, Decimal] = {}
    for r in stack.report("user", window):
        out[r["user_id"]] = out.get(r["user_id"], Decimal(0)) + Decimal(r["cost"])
    return out


def wait_for(check, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:  # no worker answers during a restart
            last = exc
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    return path


def test_redrive_after_a_catalog_fix_counts_each_dead_letter_once(stack, tmp_path):
    fixed = tmp_path / "catalog-fixed"
    shutil.copytree(SHIPPED_CATALOGS, fixed)
    text = (fixed / "openai-usd.yaml").read_text()
    start = text.index("  - id: gpt-4o\n")
    block = text[start : text.index("\n\n", start) + 2]
    (fixed / "openai-usd.yaml").write_text(text + "\n" + block.replace("id: gpt-4o\n", f"id: {NEW_MODEL}\n", 1))
    catalog = load_catalog(fixed)

    known = [event(f"k{i}", NOW - dt.timedelta(seconds=i), user=f"u{i % 3}") for i in range(20)]
    missing = [event(f"m{i}", NOW - dt.timedelta(seconds=i), user=f"u{i % 3}", model=NEW_MODEL) for i in range(15)]
    stack.start_worker()
    stack.produce([orjson.dumps(e) for e in known + missing])
    wait_for(lambda: stack.count_rejected() == 15 and ledger_totals(stack).get("acme", (0, 0))[1] == 20, "dead letters")

    # nothing to count yet: the model is still unknown, so a redrive now is rejected again, and says so
    stack.cli("redrive", "--reason", "model", "--timeout", "120")
    again = stack.query("SELECT count() AS n FROM dead_letters WHERE redrive_outcome = 'rejected'")
    assert int(again[0]["n"]) == 15

    stack.cli("catalog", "publish", str(fixed))
    dry = stack.cli("redrive", "--reason", "model", "--dry-run")
    assert b"would send 15 entries" in dry.stderr, dry.stderr
    done = stack.cli("redrive", "--reason", "model", "--author", "ops@example", "--why", "gpt-4o-fixture added")
    assert b"sending 15 entries" in done.stderr, done.stderr
    want = sum((price(e, catalog) for e in known + missing), Decimal(0))
    assert ledger_totals(stack) == {"acme": (want, 35)}
    assert sum(report_totals(stack).values()) == want  # the rollups too
    outcomes = stack.query("SELECT redrive_outcome AS o, count() AS n FROM dead_letters GROUP BY o ORDER BY o")
    # the 15 dead letters of the first pass were counted; the 15 of the failed redrive are rejected ones
    assert {r["o"]: int(r["n"]) for r in outcomes}.get("counted") == 15, outcomes
    shown = [r for r in stack.rejects() if r["redrive_outcome"] == "counted"]  # `meterstream rejects` says so
    assert len(shown) == 15 and all(r["redriven_at"] for r in shown)

    # a second redrive sends nothing and changes nothing
    second = stack.cli("redrive", "--reason", "model")
    assert b"sending 0 entries" in second.stderr or b"sending" not in second.stderr, second.stderr
    time.sleep(3)
    assert ledger_totals(stack) == {"acme": (want, 35)}
    audit = json.loads(stack.cli("audit", "--action", "redrive", "--format", "json").stdout)
    assert any(a["actor"] == "ops@example" and a["reason"] == "gpt-4o-fixture added" for a in audit), audit


def test_backfill_of_last_quarter_and_a_closed_month(stack, tmp_path):
    catalog = load_catalog()
    this_month = NOW.replace(day=1, hour=0, minute=0, second=0)
    months = []
    m = this_month
    for _ in range(4):  # the four months before this one: the last is the open one that gets adjustments
        m = (m - dt.timedelta(days=1)).replace(day=1)
        months.append(m)
    closed, open_after = months[3], months[2]  # close the oldest; the next one stays open
    history = [
        event(
            f"h{i}",
            months[1 + i % 3] + dt.timedelta(days=i % 20, hours=i % 24),
            tenant="acme" if i % 4 else "beta",
            user=f"u{i % 5}",
        )
        for i in range(60)
    ]
    stack.start_worker()
    stack.produce([orjson.dumps(event("live-1", NOW))])
    wait_for(lambda: ledger_totals(stack).get("acme"), "the live event")
    path = write_jsonl(tmp_path / "history.jsonl", history + [{"not": "an event"}])
    out = stack.cli("backfill", str(path))
    assert b"sending 60 entries" in out.stderr and b"not an event" in out.stderr, out.stderr
    month_sql = "toStartOfMonth(occurred_at) = toDate({m:String})"
    for month in months[1:]:
        want: dict[str, Decimal] = {}
        for e in history:
            if e["ts"].startswith(month.strftime("%Y-%m")):
                want[e["tenant_id"]] = want.get(e["tenant_id"], Decimal(0)) + price(e, catalog)
        rows = stack.query(
            f"SELECT tenant_id, toString(sum(cost)) AS c FROM ledger FINAL WHERE {month_sql} GROUP BY tenant_id",
            {"m": month.strftime("%Y-%m-%d")},
        )
        assert {r["tenant_id"]: Decimal(r["c"]) for r in rows} == want, month
    # a backfill again is all duplicates: nothing sent
    again = stack.cli("backfill", str(path))
    assert b"sending 0 entries" in again.stderr or b"60 left out" in again.stderr, again.stderr

    # close the oldest month for acme, then backfill more of it: booked at the start of the next
    month = closed.strftime("%Y-%m")
    rows_before = sum(1 for e in history if e["tenant_id"] == "acme" and e["ts"].startswith(month))
    closing = stack.cli("period", "close", "--month", month, "--tenant", "acme").stdout.decode()
    assert f"acme {month}: closed, {rows_before} rows, digest " in closing, closing
    late = [event(f"q{i}", closed + dt.timedelta(days=i, hours=3), user="u9") for i in range(10)]
    out = stack.cli("backfill", str(write_jsonl(tmp_path / "late.jsonl", late)))
    assert b"10 booked in the first open period" in out.stderr, out.stderr
    rows = stack.query(
        "SELECT toString(min(ts)) AS first, toString(max(ts)) AS last, toString(sum(cost)) AS c, count() AS n "
        "FROM ledger FINAL WHERE tenant_id = 'acme' AND event_id LIKE 'q%'"
    )
    start_open = open_after.strftime("%Y-%m-%d 00:00:00.000")
    assert rows[0]["first"] == rows[0]["last"] == start_open and int(rows[0]["n"]) == 10
    assert Decimal(rows[0]["c"]) == sum((price(e, catalog) for e in late), Decimal(0))
    in_open = report_totals(stack, "month")  # the month rollups have them, in the open month
    assert in_open.get("u9") == Decimal(rows[0]["c"])

    # close a month with rows, verify it, then alter a row behind its back
    full = months[1].strftime("%Y-%m")
    closing = stack.cli("period", "close", "--month", full).stdout.decode()
    assert f"acme {full}: closed" in closing and f"beta {full}: closed" in closing, closing
    verified = stack.cli("period", "verify")
    assert verified.stdout.decode().count("unchanged") == 3, verified.stdout
    port = stack.ports[0]
    stack.kill_worker(port, 15)  # the worker holds the embedded engine: stop it to write behind its back
    from streams.settings import Settings
    from streams.storage import open_store

    env = {k[3:].lower(): v for k, v in stack.env.items() if k.startswith("MS_")}
    store = open_store(Settings(data_dir=Path(env["data_dir"]), clickhouse_database=env["clickhouse_database"]))
    try:
        store.command(
            f"ALTER TABLE ledger UPDATE cost = cost + 1 WHERE tenant_id = 'beta' AND toYYYYMM(ts) = {int(full.replace('-', ''))} "
            "SETTINGS mutations_sync = 2"
        )
    finally:
        store.close()
    broken = subprocess.run([*CLI, "period", "verify"], env=stack.env, capture_output=True, timeout=120)
    assert broken.returncode == 1, broken
    assert f"beta {full}: CHANGED" in broken.stdout.decode() and f"acme {full}: unchanged" in broken.stdout.decode()
    assert b"1 closed month(s) changed" in broken.stderr


def test_void_and_replace_move_rollups_budgets_and_alerts_by_the_difference_through_kills(stack, tmp_path):
    catalog = load_catalog()
    day = NOW.replace(hour=0, minute=0, second=0)
    ts = max(day, NOW - dt.timedelta(minutes=30))
    events = [
        event(f"e{i}", ts + dt.timedelta(seconds=i), user=f"u{i % 4}", tokens=1000 * (1 + i % 3)) for i in range(40)
    ]
    port = stack.start_worker()
    stack.produce([orjson.dumps(e) for e in events])
    spent = sum((price(e, catalog) for e in events), Decimal(0))
    wait_for(lambda: ledger_totals(stack).get("acme", (0, 0))[1] == 40, "the events")
    # a budget of 1.2x today's spend: 0.5 and 1 are crossed only when a replacement adds 30%
    amount = (spent * Decimal("1.2")).quantize(Decimal("0.0001"))
    stack.cli(
        "budgets",
        "set",
        "--id",
        "acme-day",
        "--tenant",
        "acme",
        "--period",
        "day",
        "--currency",
        "USD",
        "--amount",
        str(amount),
        "--thresholds",
        "0.5,1",
    )
    wait_for(lambda: len(json.loads(stack.cli("alerts", "--format", "json").stdout)) == 1, "the 0.5 alert")

    voids = events[:5]
    big = events[10]
    replacement = {"input_tokens": 200_000, "output_tokens": 1000}
    corrections = [
        {
            "correction_id": f"v-{e['event_id']}",
            "tenant_id": "acme",
            "event_id": e["event_id"],
            "action": "void",
            "reason": "test traffic",
            "author": "ana",
        }
        for e in voids
    ] + [
        {
            "correction_id": "r-1",
            "tenant_id": "acme",
            "event_id": big["event_id"],
            "action": "replace",
            "usage": replacement,
            "reason": "usage under-reported",
            "author": "ana",
        },
        {
            "correction_id": "ghost-1",
            "tenant_id": "acme",
            "event_id": "no-such-event",
            "action": "void",
            "reason": "typo",
            "author": "ana",
        },
    ]
    path = write_jsonl(tmp_path / "corrections.jsonl", corrections)
    running = subprocess.Popen(
        [*CLI, "correct", str(path), "--timeout", "300"], env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    for _ in range(2):  # SIGKILL the worker while the corrections are sent and applied
        time.sleep(1.5)
        stack.kill_worker(port)
        stack.start_worker(port)
    out, err = running.communicate(timeout=400)
    assert running.returncode == 0, err.decode()
    new_big = price({**big, "usage": replacement}, catalog)
    want = spent - sum((price(e, catalog) for e in voids), Decimal(0)) - price(big, catalog) + new_big
    # applied before `correct` returned; the worker killed last may still be starting: ask until it answers
    wait_for(lambda: ledger_totals(stack) == {"acme": (want, 35)}, "the corrected ledger", timeout=120)
    assert sum(report_totals(stack).values()) == want  # the rollups moved by exactly the difference
    rows = stack.query(
        "SELECT event_id, adjustment, entry, events, toString(cost) AS cost FROM ledger FINAL "
        "WHERE adjustment > 0 ORDER BY event_id"
    )
    assert len(rows) == 6 and {r["entry"] for r in rows} == {"void", "replace"}
    assert all(int(r["events"]) == -1 for r in rows if r["entry"] == "void")
    explained = stack.cli("explain", big["event_id"], "--tenant", "acme").stdout.decode()
    assert "adjustment 1 (replace, audit r-1)" in explained and f"the event costs {new_big} USD now" in explained
    ghost = stack.query("SELECT reason FROM rejected_events FINAL WHERE event_id = 'no-such-event'")
    assert ghost and "no event acme/no-such-event in the ledger" in ghost[0]["reason"]

    status = json.loads(stack.cli("budgets", "status", "--format", "json").stdout)
    assert Decimal(status[0]["spend"]) == want
    alerts = wait_for(
        lambda: (a := json.loads(stack.cli("alerts", "--format", "json").stdout)) and len(a) == 2 and a, "the 1.0 alert"
    )
    assert sorted(Decimal(a["threshold"]) for a in alerts) == [Decimal("0.5"), Decimal("1")]

    # the same corrections again: applied before, nothing changes; and the audit log has each
    again = stack.cli("correct", str(path))
    assert again.stderr.count(b"applied before") == 6, again.stderr
    time.sleep(3)
    assert ledger_totals(stack) == {"acme": (want, 35)}
    audit = json.loads(stack.cli("audit", "--action", "correct", "--format", "json").stdout)
    assert {a["audit_id"] for a in audit} >= {"r-1", "v-e0", "ghost-1"}
