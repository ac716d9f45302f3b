"""`meterstream dashboard` on the real pipeline, opened in headless Chromium: what the page drew
(each panel's data-series) is the engine's own figures, Decimal-exact: spend per model and per
user per hour equals `report --window hour` (the top 8 of each currency by name, the rest as
"other"), the top 10 users equal `report --top 10` (by cost and by tokens), the daily token
trend equals `report --by tenant --window day`'s token columns (also for one tenant in a time
zone), the averages equal `report --avg`'s, each label's bars add up to `report --by label:KEY`,
rejects by reason add up to the dead-letter count, and budgets equal `budgets status` and the
ledger's spend. Hostile tenant, user and label names are drawn as text. A screenshot is a PNG."""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.harness.generate import generate
from streams.harness.stack import Stack
from tests.chromium import PNG, Dom, rendered, screenshot

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
HOSTILE_TENANT = "t\"'<&]]>"
HOSTILE_USER = "</script><script>document.title='pwned'</script>"
HOSTILE_APP = "<img src=x onerror=alert(1)>"
TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")


def report(stack: Stack, *args: str) -> list[dict[str, Any]]:
    rows = json.loads(stack.cli("report", *args, "--format", "json").stdout)
    assert all(isinstance(r["cost"], str) for r in rows)  # decimal strings, never floats
    return rows


def hostile_events() -> list[bytes]:
    """Big spenders (so they are in the top users and lines) with names that are markup."""
    base = {
        "ts": (NOW - dt.timedelta(minutes=1)).isoformat(),
        "provider": "openai",
        "model": "gpt-4o",
        "usage": {"input_tokens": 2_000_000, "output_tokens": 100_000},
    }
    return [
        orjson.dumps(
            {
                **base,
                "event_id": f"hostile-{i}",
                "tenant_id": HOSTILE_TENANT,
                "user_id": HOSTILE_USER,
                "labels": {"app": HOSTILE_APP, "team": "]]>&\"' </script>"},
            }
        )
        for i in range(3)
    ]


def name(row: dict[str, Any], column: str, multi: bool) -> str:
    return f"{row['tenant_id']}: {row[column]}" if multi else str(row[column])


def check_lines(drawn: list[dict[str, Any]], hourly: list[dict[str, Any]], column: str) -> None:
    """Per currency: the 8 keys of highest cost (ties by name) drawn with their cost in each
    hour, the rest summed as "other" in each hour, exactly as the report's rows."""
    multi = len({r["tenant_id"] for r in hourly}) > 1
    cost: dict[str, dict[str, dict[dt.datetime, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for r in hourly:
        cost[r["currency"]][name(r, column, multi)][dt.datetime.fromisoformat(r["window_start"])] = Decimal(r["cost"])
    assert [c["currency"] for c in drawn] == sorted(cost)
    for chart in drawn:
        lines = cost[chart["currency"]]
        xs = [dt.datetime.fromisoformat(x) for x in chart["x"]]
        assert xs == sorted(xs) and all(b - a == dt.timedelta(hours=1) for a, b in zip(xs, xs[1:], strict=False))
        assert {w for line in lines.values() for w in line} <= set(xs)
        ranked = sorted(lines, key=lambda n: (-sum(lines[n].values()), n))
        names = [s["name"] for s in chart["series"]]
        assert names == ranked[:8] + (["other"] if len(ranked) > 8 else [])
        for s in chart["series"]:
            keys = [s["name"]] if s["name"] != "other" else ranked[8:]
            want = [sum((lines[k].get(x, Decimal(0)) for k in keys), Decimal(0)) for x in xs]
            assert [Decimal(v) for v in s["values"]] == want, s["name"]
            assert Decimal(s["total"]) == sum(want)
            assert not any("E" in v or ("." in v and v.endswith("0")) for v in s["values"])  # plain decimal text


def check_top(drawn: list[dict[str, Any]], top: list[dict[str, Any]], value) -> None:
    multi = len({r["tenant_id"] for r in top}) > 1
    want: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in top:
        want[r["currency"]].append({"name": name(r, "user_id", multi), "values": [value(r)]})
    assert {c["currency"]: c["bars"] for c in drawn} == dict(want)
    assert all(len(c["bars"]) <= 10 for c in drawn)


def check_token_days(drawn: list[dict[str, Any]], days: list[dict[str, Any]]) -> None:
    per_day: dict[dt.datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in days:
        for c in TOKENS:
            per_day[dt.datetime.fromisoformat(r["window_start"])][c] += int(r[c])
    (chart,) = drawn
    xs = [dt.datetime.fromisoformat(x) for x in chart["x"]]
    assert set(per_day) <= set(xs) and len(xs) >= 2  # 30 hours of traffic: two days at least
    series = {s["name"]: s["values"] for s in chart["series"]}
    for label, col in (("input", "input_tokens"), ("output", "output_tokens"), ("cached input", "cached_input_tokens")):
        assert series[label] == [str(per_day[x][col]) if x in per_day else "0" for x in xs], label
    assert sum(int(v) for v in series["input"]) > 0 and sum(int(v) for v in series["cached input"]) > 0


def page(stack: Stack, out: Path, *args: str) -> Dom:
    stack.cli("dashboard", *args, "--out", str(out))
    dom = rendered(out)
    assert dom.title.startswith("meterstream dashboard")  # no name's script ran
    assert dom.tags.get("script") == 2 and "img" not in dom.tags
    return dom


def test_dashboard_draws_the_engines_figures(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url, extra_env={"MS_ROLLUP_LABELS": "app,team"})
    try:
        lines = [
            line
            for _, line in generate(2500, seed=83, now=NOW, duplicate_rate=0.05, bad=12, spread=dt.timedelta(hours=30))
        ]
        stack.produce(lines + hostile_events())
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        stack.start_worker()
        stack.wait_until_exact(exp)
        stack.cli(
            "budgets", "set", "--id", "dash-t0", "--tenant", "tenant-0", "--period", "day", "--currency", "USD",
            "--amount", "2.5",
        )  # fmt: skip
        stack.cli(
            "budgets", "set", "--id", "dash-hostile", "--tenant", HOSTILE_TENANT, "--user", HOSTILE_USER,
            "--period", "month", "--currency", "USD", "--amount", "1000",
        )  # fmt: skip

        out = tmp_path / "dashboard.html"
        dom = page(stack, out)
        panels = {pid: p["series"] for pid, p in dom.panels.items()}
        assert set(panels) == {
            "spend-model", "spend-user", "tokens-day", "top-users-cost", "top-users-tokens", "avg-tokens",
            "label-app", "label-team", "rejects", "budgets",
        }  # fmt: skip

        # spend over time per model and per user: the report's hours, top 8 and other per currency
        check_lines(panels["spend-model"], report(stack, "--by", "model", "--window", "hour"), "model")
        check_lines(panels["spend-user"], report(stack, "--by", "user", "--window", "hour"), "user_id")
        # ... and per model all told, the report's totals (every window is drawn)
        by_model = report(stack, "--by", "model")
        for chart in panels["spend-model"]:
            drawn = sum(Decimal(v) for s in chart["series"] for v in s["values"])
            assert drawn == sum(Decimal(r["cost"]) for r in by_model if r["currency"] == chart["currency"])

        # the top 10 users by cost and by tokens: the report's --top 10
        check_top(panels["top-users-cost"], report(stack, "--by", "user", "--top", "10"), lambda r: r["cost"])
        check_top(
            panels["top-users-tokens"],
            report(stack, "--by", "user", "--top", "10", "--order", "tokens"),
            lambda r: str(sum(int(r[c]) for c in TOKENS)),
        )
        assert f"{HOSTILE_TENANT}: {HOSTILE_USER}" in dom.cells  # a name that is markup, drawn as text

        # the daily token trend: the day sums of `report --by tenant --window day`
        check_token_days(panels["tokens-day"], report(stack, "--by", "tenant", "--window", "day"))

        # average tokens per request per model, over token events only: `report --avg`'s sums
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in report(stack, "--by", "model", "--avg"):
            s = sums[r["model"]]
            s[0], s[1], s[2] = (
                s[0] + int(r["input_tokens"]),
                s[1] + int(r["output_tokens"]),
                s[2] + int(r["token_events"]),
            )
        tenth = Decimal("0.1")
        (avg,) = panels["avg-tokens"]
        assert {b["name"]: b["values"] for b in avg["bars"]} == {
            m: [str((Decimal(i) / n).quantize(tenth)), str((Decimal(o) / n).quantize(tenth)), str(n)]
            for m, (i, o, n) in sums.items()
            if n
        }
        assert any(n == 0 for _, _, n in sums.values())  # images and guardrail checks: left out

        # cost by label: each rolled-up key's bars add up to the report's, per currency
        for key in ("app", "team"):
            rows = report(stack, "--by", f"label:{key}")
            for chart in panels[f"label-{key}"]:
                assert len(chart["bars"]) <= 9
                assert sum(Decimal(b["values"][0]) for b in chart["bars"]) == sum(
                    Decimal(r["cost"]) for r in rows if r["currency"] == chart["currency"]
                )
        assert any(HOSTILE_APP in c for c in dom.cells)

        # rejects by reason: `rejects --group`, adding up to the dead-letter count
        (rejects,) = panels["rejects"]
        grouped = json.loads(stack.cli("rejects", "--group", "--format", "json").stdout)
        assert sum(int(b["values"][0]) for b in rejects["bars"]) == stack.count_rejected() == exp.rejected > 0
        assert [(b["name"], int(b["values"][0])) for b in rejects["bars"][:15]] == [
            (g["reason"], int(g["n"])) for g in grouped[:15]
        ]

        # budgets: as `budgets status`, and the ledger's own spend over the budget's period
        status = {b["id"]: b for b in json.loads(stack.cli("budgets", "status", "--format", "json").stdout)}
        drawn_budgets = {b["id"]: b for b in panels["budgets"]}
        assert set(drawn_budgets) == {"dash-t0", "dash-hostile"}
        for bid, b in drawn_budgets.items():
            for k in ("tenant_id", "period", "currency", "amount", "spend", "percent", "crossed"):
                assert b[k] == status[bid][k], (bid, k)
        t0 = drawn_budgets["dash-t0"]
        day = dt.datetime.fromisoformat(t0["period"]).replace(tzinfo=dt.UTC)
        ledger = stack.query(
            "SELECT sum(cost) AS c FROM ledger FINAL WHERE tenant_id = 'tenant-0' AND currency = 'USD' "
            "AND ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')}",
            {"a": day.strftime("%Y-%m-%d %H:%M:%S"), "b": (day + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")},
        )
        assert Decimal(t0["spend"]) == Decimal(str(ledger[0]["c"]))
        assert Decimal(t0["spend"]) > 0 or NOW.hour == 0  # today's traffic (none yet in its first minutes)
        hostile = drawn_budgets["dash-hostile"]
        assert Decimal(hostile["spend"]) > 0 and hostile["tenant_id"] == HOSTILE_TENANT

        # a screenshot: a PNG of the window's size
        png = screenshot(out, tmp_path / "dashboard.png", "1400,2400")
        assert png[:8] == PNG and png[12:16] == b"IHDR"
        assert struct.unpack(">II", png[16:24]) == (1400, 2400)
        assert 30_000 < len(png) < 20_000_000

        # one tenant, days in a time zone: the trend and the top users of that tenant
        one = page(stack, tmp_path / "tenant-1.html", "--tenant", "tenant-1", "--tz", "Asia/Shanghai")
        mine = {pid: p["series"] for pid, p in one.panels.items()}
        check_token_days(
            mine["tokens-day"],
            report(stack, "--by", "tenant", "--window", "day", "--tz", "Asia/Shanghai", "--tenant", "tenant-1"),
        )
        check_top(
            mine["top-users-cost"],
            report(stack, "--by", "user", "--top", "10", "--tenant", "tenant-1"),
            lambda r: r["cost"],
        )
        assert mine["budgets"] == []  # tenant-0's and the hostile tenant's budgets are not tenant-1's
        for chart in mine["spend-model"]:
            assert all(s["name"] == "other" or ": " not in s["name"] for s in chart["series"])  # one tenant: no prefix
    finally:
        stack.stop()
