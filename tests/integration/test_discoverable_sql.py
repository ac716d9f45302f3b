"""DESCRIBE and SHOW through a real worker's POST /sql, and `meterstream tables` and
`meterstream sql "DESCRIBE …"` asking that worker (it holds the embedded engine; on a server the
CLI reads the store itself)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from streams.analyst.sql_guard import DESCRIPTIONS, READABLE
from streams.harness.generate import generate
from streams.harness.stack import Stack

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def worker(kafka_service, clickhouse_service, tmp_path_factory):
    stack = Stack(kafka_service.bootstrap, tmp_path_factory.mktemp("discover"), clickhouse_service.url)
    stack.produce([line for _, line in generate(200, seed=5, now=NOW)])
    port = stack.start_worker()
    stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)))
    yield stack, port
    stack.stop()


def test_describe_and_show_through_the_workers_sql(worker):
    stack, port = worker
    columns = [r["name"] for r in stack.query("DESCRIBE ledger")]
    assert columns[:4] == ["tenant_id", "event_id", "adjustment", "entry"] and "list_cost" in columns
    assert [r["name"] for r in stack.query("SHOW TABLES")] == sorted(READABLE)
    assert {r["field"] for r in stack.query("SHOW COLUMNS FROM spend_by_model_day")} >= {"model", "cost"}
    assert "ReplacingMergeTree" in stack.query("SHOW CREATE TABLE ledger")[0]["statement"]
    for refused, says in [
        ("DESCRIBE system.users", "not system.users"),
        ("SHOW TABLES FROM system", "not system"),
        ("SHOW GRANTS", "SHOW GRANTS is not allowed"),
        ("DESCRIBE schema_migrations", "not a table or view analysts may read"),
        ("DESCRIBE ledger FORMAT JSON", "FORMAT"),
        ("DESCRIBE (SELECT * FROM system.users)", "not a query"),
    ]:
        status, body = stack.request(port, "/sql", {"sql": refused})
        assert status == 400 and body["error"].startswith("refused: ") and says in body["error"], (refused, body)


def test_tables_and_describe_from_the_cli_while_the_worker_holds_the_engine(worker):
    stack, _ = worker
    objects = json.loads(stack.cli("tables", "--format", "json").stdout)
    assert [o["name"] for o in objects] == [n for n in DESCRIPTIONS if n in READABLE]
    assert all(o["columns"] and o["kind"] in ("table", "view") for o in objects), objects
    ledger = next(o for o in objects if o["name"] == "ledger")
    assert {"name": "cost", "type": "Decimal(38, 12)"} in ledger["columns"]
    rows = json.loads(stack.cli("sql", "DESCRIBE spend_by_user_day", "--format", "json").stdout)
    view = next(o for o in objects if o["name"] == "spend_by_user_day")
    assert [r["name"] for r in rows] == [c["name"] for c in view["columns"]]
    assert "spend_by_user_day (view)" in stack.cli("tables").stdout.decode()
