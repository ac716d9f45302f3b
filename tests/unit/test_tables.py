"""Discoverable SQL on a migrated chDB: `meterstream tables`, DESCRIBE and SHOW through
`meterstream sql`, the descriptions of the tables and views analysts may read, and the example
queries of docs/schema.md (run through the guard, on a few rows, each answering)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.analyst.reader import run_checked_sql
from streams.analyst.sql_guard import DESCRIPTIONS, READABLE, RefusedSQL
from streams.cli.main import main
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

SCHEMA_DOC = Path(__file__).parents[2] / "docs" / "schema.md"
LISTED = [n for n in DESCRIPTIONS if n in READABLE]  # the order `meterstream tables` shows

SEED = [
    # a ledger of 12 events today: two teams, one overlay, some token counts estimated
    "INSERT INTO ledger (tenant_id, event_id, user_id, provider, model, region, mode, ts, currency, cost, "
    "list_cost, price_overlay, input_tokens, output_tokens, labels, catalog_version, estimated, src_partition, "
    "src_offset, version, ingested_at) SELECT 'acme', 'req-' || toString(number), 'u' || toString(number % 3), "
    "'openai', 'gpt-4o', 'us', 'realtime', now64(3, 'UTC'), 'USD', (number + 1) / 100, (number + 1) / 50, "
    "if(number % 2 = 0, 'acme-enterprise', ''), 100, 20, map('team', if(number % 2 = 0, 'search', 'ads')), "
    "'seed', number % 4 = 0, 0, number, number, now64(3, 'UTC') FROM numbers(12)",
    *(
        f"INSERT INTO rollup_{key}_{window} (window_start, tenant_id, {column}, currency, src_partition, cost, events, "
        "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, images, guardrail_units, version) "
        f"SELECT toDateTime64({start}(now64(3, 'UTC')), 3, 'UTC'), 'acme', {value}, 'USD', number, "
        "toDecimal128('0.39', 12), 6, 600, 120, 0, 0, 0, 0, 1 FROM numbers(2)"
        for key, column, value in (
            ("user", "user_id", "'u' || toString(number)"),
            ("model", "model", "'gpt-4o'"),
            ("label", "label_key, label_value", "'team', if(number = 0, 'search', 'ads')"),
        )
        for window, start in (("hour", "toStartOfHour"), ("day", "toStartOfDay"), ("month", "toStartOfMonth"))
    ),
    "INSERT INTO rejected_events (src_topic, src_partition, src_offset, src_index, event_id, tenant_id, reason, "
    "payload, rejected_at) VALUES ('billing_events', 0, 99, 0, NULL, 'acme', 'invalid: ts is missing', '{}', "
    "now64(3, 'UTC'))",
    "INSERT INTO alerts (alert_key, budget_id, tenant_id, user_id, model, period_kind, period, threshold, spend, "
    "amount, currency, event_id, created_at, kafka_delivered, webhook_status, version) VALUES ('acme-daily|d|0.5', "
    "'acme-daily', 'acme', '', '', 'day', '2026-12-06', 0.5, 130, 250, 'USD', 'req-3', now64(3, 'UTC'), true, '', 1)",
]


def run(args: list[str], data_dir: Path):
    return CliRunner().invoke(main, args, env={"MS_DATA_DIR": str(data_dir)}, terminal_width=200)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A migrated chDB (database 'meterstream') with a few rows in every table analysts read."""
    path = tmp_path_factory.mktemp("tables")
    with ChdbStore(path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        for statement in SEED:
            store.command(statement)
    return path


def engine_columns(data_dir: Path) -> dict[str, list[dict[str, str]]]:
    with ChdbStore(data_dir / "chdb", "meterstream") as store:
        rows = store.query(
            "SELECT table, name, type FROM system.columns WHERE database = 'meterstream' ORDER BY table, position"
        )
    out: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault(r["table"], []).append({"name": r["name"], "type": r["type"]})
    return out


def test_every_readable_object_is_described_and_every_description_names_an_object(data_dir):
    assert READABLE <= set(DESCRIPTIONS), f"describe these in sql_guard.DESCRIPTIONS: {READABLE - set(DESCRIPTIONS)}"
    existing = engine_columns(data_dir)
    assert set(DESCRIPTIONS) <= set(existing), f"described but not created: {set(DESCRIPTIONS) - set(existing)}"
    for name, text in DESCRIPTIONS.items():
        assert text and "\n" not in text and len(text) < 220, name


def test_tables_lists_each_readable_object_with_the_engines_columns(data_dir):
    res = run(["tables", "--format", "json"], data_dir)
    assert res.exit_code == 0, res.output
    objects = json.loads(res.stdout)
    assert [o["name"] for o in objects] == LISTED
    existing = engine_columns(data_dir)
    for o in objects:
        assert o["columns"] == existing[o["name"]], o["name"]
        assert o["kind"] == ("view" if o["name"].startswith("spend_by_") or o["name"] == "dead_letters" else "table"), o
        assert o["description"] == DESCRIPTIONS[o["name"]]
    table = run(["tables"], data_dir)
    assert table.exit_code == 0, table.output
    for o in objects:
        assert f"{o['name']} ({o['kind']})\n  {o['description']}\n" in table.stdout
    assert re.search(r"^    list_cost +Decimal\(38, 12\)$", table.stdout, re.M)
    assert "schema_migrations" not in table.stdout


def test_tables_names_what_this_database_lacks(tmp_path):
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        store.command("DROP VIEW spend_by_user_minute")
    res = run(["tables", "--format", "json"], tmp_path)
    assert res.exit_code == 0, res.output
    gone = [o for o in json.loads(res.stdout) if o["kind"] == "missing"]
    assert gone == [
        {"name": "spend_by_user_minute", "kind": "missing", "description": DESCRIPTIONS[gone[0]["name"]], "columns": []}
    ]
    assert "not in this database (run meterstream migrate): spend_by_user_minute" in run(["tables"], tmp_path).stdout


def test_describe_and_show_through_meterstream_sql(data_dir):
    existing = engine_columns(data_dir)
    res = run(["sql", "DESCRIBE ledger", "--format", "json"], data_dir)
    assert res.exit_code == 0, res.output
    assert [{"name": r["name"], "type": r["type"]} for r in json.loads(res.stdout)] == existing["ledger"]
    shown = run(["sql", "SHOW TABLES", "--format", "json"], data_dir)
    assert [r["name"] for r in json.loads(shown.stdout)] == sorted(READABLE)  # not schema_migrations
    liked = run(["sql", "SHOW FULL TABLES LIKE 'spend_by_model_%'", "--format", "json"], data_dir)
    assert {(r["name"], r["engine"]) for r in json.loads(liked.stdout)} == {
        (n, "View") for n in READABLE if n.startswith("spend_by_model_")
    }
    columns = run(["sql", "SHOW COLUMNS FROM spend_by_user_day", "--format", "json"], data_dir)
    assert {r["field"] for r in json.loads(columns.stdout)} == {c["name"] for c in existing["spend_by_user_day"]}
    created = run(["sql", "SHOW CREATE TABLE ledger", "--format", "json"], data_dir)
    assert "ReplacingMergeTree(version)" in json.loads(created.stdout)[0]["statement"]
    for refused, says in [
        ("DESCRIBE system.users", "only tables of the database 'meterstream' may be read, not system.users"),
        ("SHOW TABLES FROM system", "not system"),
        ("SHOW DATABASES", "SHOW DATABASES is not allowed"),
        ("DESCRIBE schema_migrations", "schema_migrations is not a table or view analysts may read"),
    ]:
        res = run(["sql", refused], data_dir)
        assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output, (refused, res.output)


def _schema_doc_statements() -> list[str]:
    text = SCHEMA_DOC.read_text()
    out = []
    for block in re.findall(r"^```sql\n(.*?)^```", text, re.M | re.S):
        code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        out += [q.strip() for q in code.split(";") if q.strip()]
    return out


SCHEMA_STATEMENTS = _schema_doc_statements()


def test_the_schema_page_has_examples_of_each_kind():
    joined = "\n".join(SCHEMA_STATEMENTS)
    assert len(SCHEMA_STATEMENTS) >= 10
    for name in ("spend_by_user_month", "spend_by_model_day", "ledger FINAL", "rejected_events FINAL", "alerts FINAL"):
        assert name in joined, name
    assert any(q.startswith(("DESCRIBE", "SHOW")) for q in SCHEMA_STATEMENTS)


@pytest.mark.parametrize("sql", SCHEMA_STATEMENTS)
def test_each_schema_page_query_passes_the_guard_and_answers(data_dir, sql):
    with ChdbStore(data_dir / "chdb", "meterstream") as store:
        rows = run_checked_sql(store, Settings(data_dir=data_dir), sql, None)
    assert rows, f"no rows: the example does not answer on the seeded ledger:\n{sql}"


def test_the_schema_page_names_every_readable_object():
    """Each READABLE object is named on the page, written out or as name_{a,b}_{c,d}."""
    named = set()
    for word in re.findall(r"`([\w{},]+)`", SCHEMA_DOC.read_text()):
        parts = re.split(r"\{([\w,]+)\}", word)
        choices = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
        named |= {"".join(c) for c in itertools.product(*choices)}
    assert READABLE <= named, READABLE - named


def test_a_refused_statement_reaches_nothing(data_dir):
    with ChdbStore(data_dir / "chdb", "meterstream") as store:
        with pytest.raises(RefusedSQL, match="INTO OUTFILE, FORMAT and SETTINGS are not allowed"):
            run_checked_sql(store, Settings(data_dir=data_dir), f"SHOW TABLES INTO OUTFILE '{data_dir}/x'", None)
    assert not (data_dir / "x").exists()
