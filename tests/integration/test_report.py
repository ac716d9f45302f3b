"""`meterstream report` on the real pipeline, every everyday question one command, exact:
by tenant, user, model and label (chargeback, MS_ROLLUP_LABELS), two dimensions at once, label
filters, tokens, the top N, the average tokens per request, shares, days in a time zone (a whole-
hour zone from the hour rollups, a half-hour one from the minute rollups), and the plot's lines.
The rollup views and the ledger give the same numbers wherever both can answer."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from streams.harness.generate import generate
from streams.harness.stack import Stack

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def report(stack: Stack, *args: str) -> list[dict]:
    rows = json.loads(stack.cli("report", *args, "--format", "json").stdout)
    assert all(isinstance(r["cost"], str) for r in rows)  # decimal strings, never floats
    return rows


def keyed(rows: list[dict], *cols: str) -> dict[tuple, tuple[Decimal, int]]:
    return {tuple(r[c] for c in cols): (Decimal(r["cost"]), int(r["events"])) for r in rows}


def folded(table: dict, key_of) -> dict[tuple, tuple[Decimal, int]]:
    """An oracle table's minute windows summed by key_of(start_ms, tenant, who, currency) (None: skip)."""
    out: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
    for (w, start, tenant, who, cur), (cost, n) in table.items():
        if w != "minute":
            continue
        k = key_of(start, tenant, who, cur)
        if k is not None:
            out[k][0] += cost
            out[k][1] += n
    return {k: (c, n) for k, (c, n) in out.items()}


def test_every_everyday_question_is_one_exact_command(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url, extra_env={"MS_ROLLUP_LABELS": "app,team"})
    try:
        lines = [
            line
            for _, line in generate(4000, seed=71, now=NOW, duplicate_rate=0.05, bad=10, spread=dt.timedelta(hours=40))
        ]
        stack.produce(lines)
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        stack.start_worker()
        stack.wait_until_exact(exp)

        # by tenant, user, model, label: the oracle's totals
        by_tenant = folded(exp.by_user, lambda s, t, who, cur: (t, cur))
        assert keyed(report(stack, "--by", "tenant"), "tenant_id", "currency") == by_tenant
        for key in ("app", "team"):
            want = folded(
                exp.by_label,
                lambda s, t, who, cur, key=key: (t, who.split("=", 1)[1], cur) if who.startswith(key + "=") else None,
            )
            assert keyed(report(stack, "--by", f"label:{key}"), "tenant_id", f"label:{key}", "currency") == want
            assert "" in {k[1] for k in want} or key == "app"  # events without a team: under ""

        # two dimensions at once (the ledger): they add up to each one's rollup totals
        both = report(stack, "--by", "model,user")
        per_user: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
        for r in both:
            per_user[(r["tenant_id"], r["user_id"], r["currency"])][0] += Decimal(r["cost"])
            per_user[(r["tenant_id"], r["user_id"], r["currency"])][1] += int(r["events"])
        by_user = keyed(report(stack, "--by", "user"), "tenant_id", "user_id", "currency")
        assert {k: tuple(v) for k, v in per_user.items()} == by_user
        assert by_user == folded(exp.by_user, lambda s, t, who, cur: (t, who, cur))

        # a label filter with another dimension (the ledger) equals the label's own rollup
        team1 = report(stack, "--by", "user", "--label", "team=team-1")
        team1_sum: dict[tuple, Decimal] = defaultdict(Decimal)
        for r in team1:
            team1_sum[(r["tenant_id"], r["currency"])] += Decimal(r["cost"])
        labelled = keyed(report(stack, "--by", "label:team", "--label", "team=team-1"), "tenant_id", "currency")
        assert dict(team1_sum) == {k: v[0] for k, v in labelled.items()}

        # tokens: the model rollups and the ledger agree; the average is over token events only
        rolled = {(r["tenant_id"], r["model"], r["currency"]): r for r in report(stack, "--by", "model")}
        averaged = report(stack, "--by", "model", "--avg")
        assert len(averaged) == len(rolled)
        for r in averaged:
            mine = rolled[(r["tenant_id"], r["model"], r["currency"])]
            for c in ("cost", "events", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"):
                assert str(r[c]) == str(mine[c]), (c, r, mine)
            n = int(r["token_events"])
            assert n <= int(r["events"])
            if n:
                assert Decimal(r["avg_input_tokens"]) == (Decimal(r["input_tokens"]) / n).quantize(Decimal("0.1"))
        assert any(int(r["token_events"]) == 0 for r in averaged)  # image and guardrail models: no average
        assert all(r["avg_input_tokens"] is None for r in averaged if int(r["token_events"]) == 0)
        assert sum(int(r["input_tokens"]) for r in averaged) > 0

        # the top 3 users per currency by cost, and their shares of it
        top = report(stack, "--by", "user", "--top", "3")
        for cur in {r["currency"] for r in top}:
            mine = [r for r in top if r["currency"] == cur]
            everyone = sorted(((c, (t, u)) for (t, u, cu), (c, _) in by_user.items() if cu == cur), reverse=True)
            assert [Decimal(r["cost"]) for r in mine] == [c for c, _ in everyone[:3]]
        shares = report(stack, "--by", "tenant")
        for cur in {r["currency"] for r in shares}:
            total = sum(Decimal(r["share"].rstrip("%")) for r in shares if r["currency"] == cur)
            assert abs(total - 100) <= Decimal("0.1") * len(shares)

        # days in a time zone: Beijing's from the hour rollups, Kolkata's (+5:30) from the minute ones
        for tz in ("Asia/Shanghai", "Asia/Kolkata"):
            zone = ZoneInfo(tz)

            def local_day(start_ms: int, zone: ZoneInfo = zone) -> dt.datetime:
                local = dt.datetime.fromtimestamp(start_ms / 1000, zone)
                return local.replace(hour=0, minute=0).astimezone(dt.UTC)

            want = folded(exp.by_user, lambda s, t, who, cur, ld=local_day: (ld(s), t, cur))
            got = {
                (dt.datetime.fromisoformat(r["window_start"]), r["tenant_id"], r["currency"]): (
                    Decimal(r["cost"]),
                    int(r["events"]),
                )
                for r in report(stack, "--by", "tenant", "--window", "day", "--tz", tz)
            }
            assert got == want, tz
            assert len({k[0] for k in got}) >= 2  # 40 hours of traffic: more than one local day

        # the plot draws what the report says: per currency, each key's cost per window
        png = tmp_path / "cost.png"
        stack.cli("report", "--by", "label:app", "--window", "hour", "--plot", str(png))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from streams.analyst.plot import series

        rows = report(stack, "--by", "label:app", "--window", "hour")
        for r in rows:
            r["window_start"] = dt.datetime.fromisoformat(r["window_start"])
        chart = series(rows, ["label:app"])
        assert {name.split(": ", 1)[-1] for lines in chart.values() for name in lines} <= {
            "chat",
            "search",
            "agent",
            "other",
        }
        drawn = sum(p[1] for lines in chart.values() for points in lines.values() for p in points)
        assert drawn == sum(Decimal(r["cost"]) for r in rows)

        # dead letters: grouped by reason they add up; filters by tenant and reason text
        grouped = json.loads(stack.cli("rejects", "--group", "--format", "json").stdout)
        assert sum(int(g["n"]) for g in grouped) == exp.rejected > 0
        some = grouped[0]["reason"][:12]
        picked = json.loads(stack.cli("rejects", "--reason", some.upper(), "--format", "json").stdout)
        assert picked and all(some.lower() in r["reason"].lower() for r in picked)
        assert len(picked) == sum(int(g["n"]) for g in grouped if some.lower() in g["reason"].lower())
        tenants = {r["tenant_id"] for r in json.loads(stack.cli("rejects", "--format", "json").stdout)}
        for t in tenants - {None}:
            mine = json.loads(stack.cli("rejects", "--tenant", t, "--format", "json").stdout)
            assert mine and {r["tenant_id"] for r in mine} == {t}

        # a bad dimension or zone is a usage error, one line
        bad = stack.cli_result("report", "--by", "colour")
        assert bad.returncode == 2 and b"group by tenant, user, model or label:KEY" in bad.stderr
        bad = stack.cli_result("report", "--by", "user", "--window", "day", "--tz", "Mars/Olympus")
        assert bad.returncode == 2 and b"unknown time zone" in bad.stderr
    finally:
        stack.stop()
