"""Every query of ops/grafana/dashboards/ runs, on the demo's data, and says what
`meterstream report` says.

One stack (tests/integration/test_report.py's: MS_ROLLUP_LABELS=app,team, generated traffic over
40 hours, some of it through the HTTP ingest), with daily budgets that fire alerts to a local
webhook, and a real Prometheus scraping its worker and ingest (test_prometheus.py's harness).

- The usage dashboard (ClickHouse): every template variable's query and every panel target is
  expanded as Grafana and the ClickHouse plugin expand it (tests/grafana_macros.py), with the
  variables' own answers as values, and runs through the worker's POST /sql (the analysts' SQL
  guard, read-only) on the embedded engine, over two time ranges: everything, and a 24-hour
  window in the middle of the data. Every panel has rows over everything; the spend per model
  (per hour and in total), the top 10 users by cost and by tokens, the spend by label, the
  stat and the average tokens per request equal `meterstream report` (Decimal-exact for money),
  and the budgets panel the alerts the budgets must fire.
- The pipeline dashboard (Prometheus): every expression, $__interval and $__rate_interval
  replaced as Grafana does, runs as Grafana would run it (a range query, or an instant one for
  a stat) and returns a non-empty vector or matrix; the event and row rates were above zero.

No target is skipped: the panels and targets are counted, and a target of a data source type
this test does not know fails it."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
import yaml

from pricing import load_catalog
from streams.harness.expected import expected_totals
from streams.harness.generate import generate
from streams.harness.stack import Stack, budgets_for
from streams.settings import REPO_ROOT
from tests.grafana_macros import QueryContext, expand
from tests.integration.test_alerts_pipeline import SECRET, Webhook
from tests.integration.test_ingest import Ingest
from tests.integration.test_prometheus import Prometheus, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is not installed (ops/prometheus/install.sh)"
    ),
]

DASHBOARDS = REPO_ROOT / "ops" / "grafana" / "dashboards"
CLICKHOUSE, PROMETHEUS = "grafana-clickhouse-datasource", "prometheus"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
HOUR = dt.timedelta(hours=1)
DEFAULT_INTERVAL = dt.timedelta(minutes=5)  # a panel without a minimum interval: Grafana's auto one, roughly
SCRAPE_S, STEP_S = 1.0, 2.0  # the harness scrapes every second; the graphs' step ($__interval)


def panels_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel with targets, rows' nested panels included (a row itself has no query)."""
    out = []
    for p in doc["panels"]:
        if p["type"] == "row":
            out.extend(panels_of({"panels": p.get("panels", [])}))
        else:
            out.append(p)
    return out


def targets_of(panel: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(data source type, target) of each target; a target without a data source inherits the panel's."""
    assert panel.get("targets"), f"panel {panel['title']!r} has no query"
    return [((t.get("datasource") or panel["datasource"])["type"], t) for t in panel["targets"]]


def duration(text: str) -> dt.timedelta:
    n, unit = re.fullmatch(r"(\d+)([smhd])", text).groups()  # type: ignore[union-attr]
    return dt.timedelta(seconds=int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def when(value: Any) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def by_title(doc: dict[str, Any], start: str) -> dict[str, Any]:
    (panel,) = [p for p in panels_of(doc) if p["title"].startswith(start)]
    return panel


class Usage:
    """The usage dashboard's queries against the stack's worker."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.doc = json.loads((DASHBOARDS / "meterstream-usage.json").read_text())
        self.ran = 0

    def run(self, sql: str, ctx: QueryContext, variables: dict[str, str]) -> list[dict[str, Any]]:
        expanded = expand(sql, ctx, variables)
        assert "$" not in expanded, expanded
        self.ran += 1
        return self.stack.query(expanded)

    def variable_values(self, ctx: QueryContext, variables: dict[str, str]) -> dict[str, list[str]]:
        """Each variable's options, in dashboard order (a later one may use an earlier one's value)."""
        out: dict[str, list[str]] = {}
        for v in self.doc["templating"]["list"]:
            assert v["type"] == "query" and v["datasource"]["type"] == CLICKHOUSE, v["name"]
            rows = self.run(v["query"]["rawSql"], ctx, variables)
            out[v["name"]] = [str(next(iter(r.values()))) for r in rows]
            assert out[v["name"]], f"variable {v['name']} has no options"
            variables.setdefault(v["name"], out[v["name"]][0])
        return out

    def panel(self, panel: dict[str, Any], time_from: dt.datetime, time_to: dt.datetime, variables: dict[str, str]):
        interval = max(duration(panel["interval"]), DEFAULT_INTERVAL) if "interval" in panel else DEFAULT_INTERVAL
        ctx = QueryContext(time_from, time_to, interval)
        return [self.run(t["rawSql"], ctx, variables) for kind, t in targets_of(panel) if kind == CLICKHOUSE]


def report(stack: Stack, *args: str) -> list[dict[str, Any]]:
    return json.loads(stack.cli("report", *args, "--format", "json").stdout)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_every_panel_query_runs_and_agrees_with_the_report(kafka_service, clickhouse_service, tmp_path):
    hook = Webhook("ok")
    stack = Stack(
        kafka_service.bootstrap,
        tmp_path,
        clickhouse_service.url,
        extra_env={
            "MS_ROLLUP_LABELS": "app,team",
            "MS_ALERT_WEBHOOKS": hook.url,
            "MS_ALERT_WEBHOOK_SECRET": SECRET,
        },
    )
    server = prom = None
    try:
        started = time.time()
        lines = [
            line
            for _, line in generate(3000, seed=71, now=NOW, duplicate_rate=0.05, bad=30, spread=dt.timedelta(hours=40))
        ]
        budgets, alert_keys = budgets_for(
            expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        )
        (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(budgets))
        stack.cli("budgets", "set", "--file", str(tmp_path / "budgets.yaml"))
        assert alert_keys

        port = stack.start_worker()
        stack.wait_for_progress(port, 0)
        server = Ingest(stack.env, tmp_path)
        prom = Prometheus(
            tmp_path, {"meterstream-worker": (port, stack.token()), "meterstream-ingest": (server.port, server.token)}
        )
        up = {'up{job="meterstream-worker"}': 1.0, 'up{job="meterstream-ingest"}': 1.0}
        assert wait_for(prom, up) == up
        prom_start = time.time()

        by_kafka, by_http = lines[:2500], lines[2500:]
        stack.produce(by_kafka)
        status, doc = server.post("/v1/events", b"\n".join(by_http))
        assert status == 202
        refused = {r["index"] for r in doc["rejected"]}
        stack.produced.extend(line for i, line in enumerate(by_http) if i not in refused)
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        exp.rejected += len(refused)
        stack.wait_until_exact(exp, timeout=300)
        deadline = time.monotonic() + 120  # every alert the budgets must fire, in the alerts table
        while int(stack.query("SELECT count() AS n FROM alerts FINAL")[0]["n"]) < len(alert_keys):
            assert time.monotonic() < deadline, "the alerts did not all reach the alerts table"
            time.sleep(1)
        pipeline_ready = time.time()

        # ---------------------------------------------------------------- usage (ClickHouse)
        usage = Usage(stack)
        everything = (NOW - dt.timedelta(days=3), NOW + dt.timedelta(hours=2))
        window_since, window_until = NOW.replace(minute=0) - 30 * HOUR, NOW.replace(minute=0) - 6 * HOUR
        # $__timeFilter's upper bound is inclusive: one second short of the hour is [since, until)
        window = (window_since, window_until - dt.timedelta(seconds=1))
        all_ctx = QueryContext(*everything, DEFAULT_INTERVAL)
        options = usage.variable_values(all_ctx, {})
        tenants = options["tenant"]
        assert tenants == sorted({t for (_, _, t, _, _) in exp.by_user})
        panels = panels_of(usage.doc)
        targets = [t for p in panels for t in targets_of(p)]
        assert {kind for kind, _ in targets} == {CLICKHOUSE}, "a usage target of another data source"

        # every panel, every tenant and each of its currencies, over everything: rows
        empty = []
        for tenant in tenants:
            variables = {"tenant": tenant}
            mine = usage.variable_values(all_ctx, variables)
            for currency in mine["currency"]:
                variables = {"tenant": tenant, "currency": currency, "label_key": "team"}
                assert "team" in mine["label_key"] and "app" in mine["label_key"]
                for p in panels:
                    for rows in usage.panel(p, *everything, variables):
                        if not rows:
                            empty.append((tenant, currency, p["title"]))
        assert not empty, f"panels with no rows: {empty}"

        # the numbers, for the busiest tenant, over both ranges
        tenant = max(
            tenants,
            key=lambda t: sum(n for (w, _, tt, _, _), (_, n) in exp.by_user.items() if w == "total" and tt == t),
        )
        currencies = usage.variable_values(all_ctx, {"tenant": tenant})["currency"]
        assert "USD" in currencies
        compared = 0
        for (time_from, time_to), bounds in (
            (everything, []),
            (window, ["--since", iso(window_since), "--until", iso(window_until)]),
        ):
            base = ["--tenant", tenant, *bounds]
            hourly = report(stack, "--by", "model", "--window", "hour", *base)
            models = report(stack, "--by", "model", *base)
            users = report(stack, "--by", "user", *base)
            top = report(stack, "--by", "user", "--top", "10", *base)
            teams = report(stack, "--by", "label:team", *base)
            averages = report(stack, "--by", "model", "--avg", *base)
            assert hourly and users and teams
            for currency in currencies:
                variables = {"tenant": tenant, "currency": currency, "label_key": "team"}

                def run(title: str, variables: dict[str, str] = variables) -> list[dict[str, Any]]:
                    (rows,) = usage.panel(by_title(usage.doc, title), time_from, time_to, variables)
                    return rows

                ours = {
                    (when(r["time"]), r["model"]): Decimal(str(r["spend"])) for r in run("Spend per model over time")
                }
                theirs = {
                    (when(r["window_start"]), r["model"]): Decimal(r["cost"])
                    for r in hourly
                    if r["currency"] == currency
                }
                assert ours == theirs and ours, (currency, time_from)
                ours_total = {r["model"]: Decimal(str(r["spend"])) for r in run("Spend per model in range")}
                assert ours_total == {r["model"]: Decimal(r["cost"]) for r in models if r["currency"] == currency}
                assert sum(ours_total.values()) == sum(ours.values())
                (stat,) = run("Spend in range")
                assert Decimal(str(stat["spend"])) == sum(ours_total.values())
                assert int(stat["requests"]) == sum(int(r["events"]) for r in models if r["currency"] == currency)
                ours_top = [
                    (r["user_id"], Decimal(str(r["spend"])), int(r["requests"])) for r in run("Top 10 users by cost")
                ]
                theirs_top = [
                    (r["user_id"], Decimal(r["cost"]), int(r["events"])) for r in top if r["currency"] == currency
                ]
                assert ours_top == theirs_top and ours_top, currency
                labels = {r["value"]: Decimal(str(r["spend"])) for r in run("Spend by ${label_key} (")}
                assert labels == {
                    (r["label:team"] or "(none)"): Decimal(r["cost"]) for r in teams if r["currency"] == currency
                }
                assert "(none)" in labels  # every fifth event has no team
                per_user_time = run("Spend per user over time")
                assert {r["user_id"] for r in per_user_time} == {u for u, _, _ in ours_top}
                assert sum(Decimal(str(r["spend"])) for r in per_user_time) == sum(c for _, c, _ in ours_top)
                compared += 1

            # tokens are not money: over every currency
            variables = {"tenant": tenant, "currency": currencies[0], "label_key": "team"}
            tokens: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
            for r in users:
                for i, col in enumerate(("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")):
                    tokens[r["user_id"]][i] += int(r[col])
                tokens[r["user_id"]][4] += int(r["events"])
            want = sorted(tokens.items(), key=lambda kv: (-sum(kv[1][:4]), kv[0]))[:10]
            (rows,) = usage.panel(by_title(usage.doc, "Top 10 users by tokens"), time_from, time_to, variables)
            got = [
                (r["user_id"], [int(r[c]) for c in ("input", "output", "cached_input", "cache_write", "requests")])
                for r in rows
            ]
            assert got == [(u, v) for u, v in want] and int(rows[0]["tokens"]) == sum(want[0][1][:4])
            (rows,) = usage.panel(by_title(usage.doc, "Average tokens per request"), time_from, time_to, variables)
            theirs_avg = {r["model"]: r for r in averages if int(r["token_events"])}
            assert {r["model"] for r in rows} == set(theirs_avg)
            for r in rows:
                mine = theirs_avg[r["model"]]
                assert int(r["token_requests"]) == int(mine["token_events"])
                assert abs(Decimal(str(r["avg_input"])) - Decimal(mine["avg_input_tokens"])) <= Decimal("0.05")
                assert abs(Decimal(str(r["avg_output"])) - Decimal(mine["avg_output_tokens"])) <= Decimal("0.05")
            compared += 1

        # the daily tokens cover whole days: over everything, the tenant's totals
        variables = {"tenant": tenant, "currency": "USD", "label_key": "team"}
        (rows,) = usage.panel(by_title(usage.doc, "Daily tokens"), *everything, variables)
        everything_models = report(stack, "--by", "model", "--tenant", tenant)
        for ours_col, theirs_col in (
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("cached_input", "cached_input_tokens"),
        ):
            assert sum(int(r[ours_col]) for r in rows) == sum(int(r[theirs_col]) for r in everything_models)
        assert len(rows) >= 2  # 40 hours of traffic: two or three UTC days

        # dead letters: this tenant's and those without a tenant, every one once
        (rows,) = usage.panel(by_title(usage.doc, "Rejected inputs by reason"), *everything, variables)
        rejected = sum(int(r["rejected"]) for r in rows)
        others = int(
            stack.query(f"SELECT count() AS n FROM rejected_events FINAL WHERE tenant_id != '{tenant}'")[0]["n"]
        )
        assert rejected + others == exp.rejected

        # budgets: per budget and day, the highest threshold crossed is the highest the spend reached
        (rows,) = usage.panel(by_title(usage.doc, "Budgets"), *everything, variables)
        highest: dict[tuple[str, str], Decimal] = {}
        for key in alert_keys:
            budget, day, threshold = key.split("|")
            if budget == f"chaos-{tenant}":
                highest[(budget, day)] = max(highest.get((budget, day), Decimal(0)), Decimal(threshold))
        assert {(r["budget_id"], r["period"]): Decimal(str(r["highest_threshold"])) for r in rows} == highest
        assert all(r["currency"] == "USD" and float(r["percent_of_budget"]) >= 25 for r in rows)

        # ---------------------------------------------------------------- pipeline (Prometheus)
        pipeline = json.loads((DASHBOARDS / "meterstream-pipeline.json").read_text())
        time.sleep(3 * SCRAPE_S)  # the scrapes after the last batch
        end = time.time()
        interval = f"{STEP_S:g}s"
        rate_interval = f"{max(STEP_S + SCRAPE_S, 4 * SCRAPE_S):g}s"  # Grafana's $__rate_interval
        prom_panels = panels_of(pipeline)
        prom_targets = [t for p in prom_panels for t in targets_of(p)]
        assert {kind for kind, _ in prom_targets} == {PROMETHEUS}, "a pipeline target of another data source"
        results: dict[str, list[dict[str, Any]]] = {}
        for _, t in prom_targets:
            expr = t["expr"].replace("$__rate_interval", rate_interval).replace("$__interval", interval)
            assert "$" not in expr, expr
            if t.get("instant"):
                data = prom.query(expr)
                kind = "vector"
            else:
                kind, data = prom.query_range(expr, prom_start, end, STEP_S)
                assert kind == "matrix", (expr, kind)
            assert isinstance(data, list) and data, f"{t['expr']!r} returned no series"
            results[t["expr"]] = data

        def peak(expr: str) -> float:
            return max(float(v) for s in results[expr] for _, v in s["values"] if v not in ("NaN", "+Inf", "-Inf"))

        for expr in (
            "sum(rate(meterstream_events_counted_total[$__rate_interval]))",
            "sum(rate(meterstream_events_rejected_total[$__rate_interval]))",
            "sum(rate(meterstream_events_duplicates_total[$__rate_interval]))",
            "sum by (table) (rate(meterstream_sink_rows_written_total[$__rate_interval]))",
            "sum by (code) (rate(meterstream_ingest_requests_total[$__rate_interval]))",
            "sum by (outcome) (increase(meterstream_alert_webhook_deliveries_total[$__rate_interval]))",
            "histogram_quantile(0.5, sum by (le) (rate(meterstream_sink_batch_write_seconds_bucket[$__rate_interval])))",
        ):
            assert peak(expr) > 0, expr
        assert {
            s["metric"]["reason"]
            for s in results["sum by (reason) (rate(meterstream_events_rejected_total[$__rate_interval]))"]
        } >= {"refused"}
        assert peak("sum(increase(meterstream_sink_store_errors_total[$__rate_interval]))") == 0
        assert [s["value"][1] for s in results["meterstream_ready"]] == ["1"]
        lag = results["sum by (group) (max by (group, topic, partition) (meterstream_consumer_lag))"]
        assert len(lag) >= 3  # the rating, sink and alerts groups

        print(
            f"\nusage: {len(panels)} panels, {len(targets)} targets, {usage.ran} queries run ({compared} compared "
            f"with the report); pipeline: {len(prom_panels)} panels, {len(prom_targets)} PromQL targets run; "
            f"pipeline exact after {pipeline_ready - started:.0f}s, checks {time.time() - pipeline_ready:.0f}s"
        )
        assert usage.ran >= len(targets) * len(tenants) and len(results) == len({t["expr"] for _, t in prom_targets})
        assert hook.keys() and set(hook.keys()) <= set(alert_keys)
    finally:
        if prom is not None:
            prom.stop()
        if server is not None:
            server.stop()
        stack.stop()
        hook.server.shutdown()
