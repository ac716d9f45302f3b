"""ops/grafana/ without an engine: the dashboards are well-formed, every panel and target names a
provisioned data source, every ClickHouse query reads only tables and views the migrations
create (and the merge-on-read tables with FINAL), money is never summed across currencies, every
Prometheus expression reads metrics docs/operations.md lists, and tests/grafana_macros.py expands
macros as the ClickHouse plugin does (its own tests' expected outputs). That every query runs and
agrees with `meterstream report`: tests/integration/test_grafana_panels.py."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml

from streams.settings import REPO_ROOT
from tests.grafana_macros import MacroError, QueryContext, expand, interpolate, template_variables

GRAFANA = REPO_ROOT / "ops" / "grafana"
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
PROVISIONED = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "meterstream.yml").read_text())
DATASOURCES = {d["uid"]: d["type"] for d in PROVISIONED["datasources"]}
MIGRATIONS = "\n".join(p.read_text() for p in sorted((REPO_ROOT / "ops" / "clickhouse" / "migrations").glob("*.sql")))
OBJECTS = set(re.findall(r"CREATE (?:TABLE|VIEW) IF NOT EXISTS (\w+)", MIGRATIONS))
MERGE_ON_READ = {"ledger", "rejected_events", "alerts"}  # ReplacingMergeTree read directly: FINAL


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row's
    return out


def queries() -> list[tuple[str, str, dict[str, Any], str]]:
    """(dashboard, panel or variable title, datasource, query text) of every target and variable."""
    out = []
    for name, doc in DASHBOARDS.items():
        for p in panels(doc):
            for t in p.get("targets", []):
                ds = t.get("datasource") or p["datasource"]
                out.append((name, p["title"], ds, t.get("rawSql") or t.get("expr") or ""))
        for v in doc["templating"]["list"]:
            if v["type"] == "query":
                out.append((name, f"variable {v['name']}", v["datasource"], v["query"]["rawSql"]))
    return out


CLICKHOUSE_SQL = [(d, title, sql) for d, title, ds, sql in queries() if ds["type"] == "grafana-clickhouse-datasource"]
PROMQL = [(d, title, expr) for d, title, ds, expr in queries() if ds["type"] == "prometheus"]


def test_both_dashboards_are_there_and_well_formed():
    assert set(DASHBOARDS) == {"meterstream-usage", "meterstream-pipeline"}
    for name, doc in DASHBOARDS.items():
        assert doc["uid"] == name and doc["schemaVersion"] >= 39 and doc["title"].startswith("meterstream")
        ids = [p["id"] for p in panels(doc)]
        assert len(ids) == len(set(ids)), name
        for p in panels(doc):
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (name, p["title"])
            if p["type"] != "row":
                assert p.get("targets") and p.get("description"), (name, p["title"])
                refs = [t["refId"] for t in p["targets"]]
                assert len(refs) == len(set(refs)), (name, p["title"])
    usage = DASHBOARDS["meterstream-usage"]["templating"]["list"]
    assert [v["name"] for v in usage][:2] == ["tenant", "currency"] and usage[0]["type"] == "query"


def test_every_panel_and_target_names_a_provisioned_datasource():
    assert set(DATASOURCES.values()) == {"grafana-clickhouse-datasource", "prometheus"}
    for name, doc in DASHBOARDS.items():
        for p in panels(doc):
            if p["type"] == "row":
                continue
            for ds in [p["datasource"], *(t.get("datasource") or p["datasource"] for t in p["targets"])]:
                assert DATASOURCES.get(ds["uid"]) == ds["type"], (name, p["title"], ds)
        for v in doc["templating"]["list"]:
            if "datasource" in v:
                assert DATASOURCES.get(v["datasource"]["uid"]) == v["datasource"]["type"], (name, v["name"])
    kinds = {d: {ds["type"] for name, _, ds, _ in queries() if name == d} for d in DASHBOARDS}
    assert kinds == {"meterstream-usage": {"grafana-clickhouse-datasource"}, "meterstream-pipeline": {"prometheus"}}


def test_provisioning_keeps_secrets_in_the_environment():
    (ch,) = [d for d in PROVISIONED["datasources"] if d["type"] == "grafana-clickhouse-datasource"]
    assert ch["secureJsonData"] == {"password": "$CLICKHOUSE_GRAFANA_PASSWORD"}
    assert ch["jsonData"]["username"] == "grafana" and ch["jsonData"]["defaultDatabase"] == "meterstream"
    (prom,) = [d for d in PROVISIONED["datasources"] if d["type"] == "prometheus"]
    assert prom["url"] == "$PROMETHEUS_URL"
    # the ClickHouse user: read-only, SELECT on meterstream only, its password from the environment
    user = ET.parse(GRAFANA / "clickhouse" / "grafana-user.xml").getroot()
    grafana = user.find("users/grafana")
    assert grafana is not None and grafana.find("password").get("from_env") == "CLICKHOUSE_GRAFANA_PASSWORD"
    assert not (grafana.find("password").text or "").strip()
    assert [q.text for q in grafana.findall("grants/query")] == ["GRANT SELECT ON meterstream.*"]
    profile = user.find(f"profiles/{grafana.findtext('profile')}")
    assert profile.findtext("readonly") == "1"
    changeable = [c.tag for c in profile.find("constraints") if c.find("changeable_in_readonly") is not None]
    assert changeable == ["max_execution_time"]  # what the plugin's client sets on every query
    dashboards = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "meterstream.yml").read_text())
    assert dashboards["providers"][0]["type"] == "file" and not dashboards["providers"][0]["allowUiUpdates"]


@pytest.mark.parametrize(("dashboard", "title", "sql"), CLICKHOUSE_SQL, ids=[t for _, t, _ in CLICKHOUSE_SQL])
def test_clickhouse_queries_read_only_what_the_migrations_create(dashboard, title, sql):
    read = re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)(\s+FINAL)?", sql, re.IGNORECASE)
    assert read, sql
    for table, final in read:
        assert table in OBJECTS, f"{title}: {table} is not created by ops/clickhouse/migrations"
        assert not table.startswith("rollup_"), f"{title}: read the spend_by_* view, not {table}"
        if table in MERGE_ON_READ:
            assert final, f"{title}: {table} holds several versions of a row until merged: read it with FINAL"


@pytest.mark.parametrize(("dashboard", "title", "sql"), CLICKHOUSE_SQL, ids=[t for _, t, _ in CLICKHOUSE_SQL])
def test_money_is_never_summed_across_currencies(dashboard, title, sql):
    """A query adding `cost`, `spend` or `amount` up keeps one currency (${currency}) or groups by it."""
    if not re.search(r"\b(?:sum|argMax)\((?:cost|spend|amount)\b", sql):
        return
    one = "currency = ${currency:sqlstring}" in sql
    grouped = re.search(r"GROUP BY [^\n]*\bcurrency\b", sql)
    assert one or grouped, f"{title} adds money up across currencies"
    if re.search(r"\btenant_id\b", sql):
        assert "tenant_id = ${tenant:sqlstring}" in sql, title  # variables quoted by Grafana's sqlstring


def test_prometheus_expressions_read_documented_metrics():
    documented = set(re.findall(r"`((?:meterstream|process)_\w+)", (REPO_ROOT / "docs" / "operations.md").read_text()))
    assert PROMQL
    for _, title, expr in PROMQL:
        for metric in re.findall(r"\b((?:meterstream|process)_\w+)", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert metric in documented or base in documented or metric.startswith("process_"), (title, metric)
    wanted = {
        "meterstream_events_in_total",
        "meterstream_events_counted_total",
        "meterstream_events_rejected_total",
        "meterstream_events_duplicates_total",
        "meterstream_consumer_lag",
        "meterstream_ready",
        "meterstream_sink_batch_write_seconds_bucket",
        "meterstream_sink_store_errors_total",
        "meterstream_alert_webhook_deliveries_total",
        "meterstream_worker_recoveries_total",
        "meterstream_ingest_requests_total",
        "process_resident_memory_bytes",
    }
    assert wanted <= {m for _, _, e in PROMQL for m in re.findall(r"\b(?:meterstream|process)_\w+", e)}


# ---- tests/grafana_macros.py against the plugin's own tests (pkg/macros/macros_test.go) ----------

FROM = dt.datetime(2014, 11, 12, 11, 45, 26, 371000, tzinfo=dt.UTC)
TO = dt.datetime(2015, 11, 12, 11, 45, 26, 371000, tzinfo=dt.UTC)
CTX = QueryContext(FROM, TO, dt.timedelta(seconds=20))


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("$__fromTime", "toDateTime(1415792726)"),
        ("$__toTime", "toDateTime(1447328726)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726371)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726371)"),
        ("$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"),
        (
            "$__timeFilter_ms(time)",
            "time >= fromUnixTimestamp64Milli(1415792726371) AND time <= fromUnixTimestamp64Milli(1447328726371)",
        ),
        ("$__dateFilter(dateCol)", "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        ("$__timeInterval(col)", "toStartOfInterval(toDateTime(col), INTERVAL 20 second)"),
        ("$__timeInterval_ms(col)", "toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond)"),
        ("$__interval_s", "20"),
        ("$__timeFrom(ts)", "ts >= toDateTime(1415792726)"),
        ("$__timeTo(ts)", "ts <= toDateTime(1447328726)"),
        ("$__timeGroup(ts, 5m)", "toStartOfInterval(toDateTime(ts), INTERVAL 300 second)"),
        ("$__timeGroup(ts, '1h')", "toStartOfInterval(toDateTime(ts), INTERVAL 3600 second)"),
        # TestInterpolateNestedMacros (interval one minute)
        (
            "SELECT $__timeFilter(coalesce(closed_at, $__toTime))",
            "SELECT coalesce(closed_at, toDateTime(1447328726)) >= toDateTime(1415792726) "
            "AND coalesce(closed_at, toDateTime(1447328726)) <= toDateTime(1447328726)",
        ),
        # TestInterpolateBackslashEscapedStringLiterals: a quote escaped inside a literal
        (
            "select 1 where msg = 'it\\'s -- fine' and $__fromTime",
            "select 1 where msg = 'it\\'s -- fine' and toDateTime(1415792726)",
        ),
        ("select 1 where msg = 'it''s' and $__toTime", "select 1 where msg = 'it''s' and toDateTime(1447328726)"),
    ],
)
def test_macros_expand_as_the_plugin_does(sql, want):
    assert interpolate(sql, CTX) == want


def test_macro_engine_rules():
    minute = QueryContext(FROM, TO, dt.timedelta(minutes=1))
    assert (
        interpolate("SELECT $__timeInterval($__fromTime) AS from_time", minute)
        == "SELECT toStartOfInterval(toDateTime(toDateTime(1415792726)), INTERVAL 60 second) AS from_time"
    )
    assert interpolate("$__interval_s $__interval_ms $__interval", minute) == "60 60000 1m"  # longest name first
    assert interpolate("x -- $__fromTime\n/* $__toTime */ y", CTX) == "x " + " " * 14 + "\n" + " " * 15 + " y"
    assert interpolate("$__interval_s", QueryContext(FROM, TO, dt.timedelta(0))) == "1"  # at least a second
    for bad in ("$__timeFilter()", "$__timeFilter(a, b)", "$__timeGroup(ts)", "$__timeGroup(ts, nope)"):
        with pytest.raises(MacroError):
            interpolate(bad, CTX)
    with pytest.raises(MacroError, match="does not expand"):
        interpolate("SELECT $__adHocFilters('t')", CTX)
    with pytest.raises(MacroError, match="statement macro"):
        interpolate("$__columns(t, k, v) FROM x", CTX)


def test_template_variables_as_grafana_and_the_plugin_format_them():
    values = {"tenant": "o'brien", "users": ["a", "b'c"], "empty": "", "all": ["$__all"]}
    assert template_variables("t = ${tenant:sqlstring}", values) == "t = 'o''brien'"
    assert template_variables("u IN (${users:sqlstring})", values) == "u IN ('a','b''c')"
    assert template_variables("u IN ($users)", values) == "u IN ('a','b'c')"  # the plugin's own format: no escaping
    assert template_variables("t = '$tenant' AND [[tenant]]", {"tenant": "x"}) == "t = 'x' AND x"
    assert template_variables("$__conditionalAll(t IN ($users), $users)", values) == "t IN ('a','b'c')"
    assert (
        template_variables("$__conditionalAll(t = 1, $empty) AND $__conditionalAll(u, ${all})", values) == "1=1 AND 1=1"
    )
    assert template_variables("$__timeFilter(ts) $__interval_s", {}) == "$__timeFilter(ts) $__interval_s"
    with pytest.raises(MacroError, match="no value"):
        template_variables("$nope", {})


def test_every_dashboard_query_expands_completely():
    ctx = QueryContext(FROM, TO, dt.timedelta(hours=1))
    variables = {"tenant": "acme", "currency": "USD", "label_key": "team"}
    for _, title, sql in CLICKHOUSE_SQL:
        out = expand(sql, ctx, variables)
        assert "$" not in out and "toDateTime(" in out or "variable" in title, title
