"""Analysts' ad-hoc SQL, checked by ClickHouse's own parser (chDB): what passes and what not."""

from __future__ import annotations

import pytest

from streams.analyst.sql_guard import RefusedSQL, SqlGuard
from streams.storage.chdb_store import ChdbStore


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    store = ChdbStore(tmp_path_factory.mktemp("guard") / "chdb", "gdb")
    store.command("CREATE TABLE ledger (tenant_id String, user_id String, cost Decimal(38, 12), "
                  "ts DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, user_id)")
    store.command("CREATE VIEW spend AS SELECT tenant_id, sum(cost) AS cost FROM ledger GROUP BY tenant_id")
    yield SqlGuard(store, "gdb")
    store.close()


ACCEPTED = [
    "SELECT 1",
    "SELECT * FROM ledger FINAL WHERE tenant_id = {t:String} ORDER BY cost DESC LIMIT 10",
    "SELECT tenant_id, sum(cost) AS c FROM gdb.ledger GROUP BY tenant_id HAVING c > 0",
    "WITH top AS (SELECT user_id FROM ledger LIMIT 5) SELECT * FROM ledger WHERE user_id IN (SELECT user_id FROM top)",
    "SELECT a.tenant_id, b.cost FROM ledger AS a LEFT JOIN spend AS b ON a.tenant_id = b.tenant_id",
    "SELECT user_id, cost, rank() OVER (PARTITION BY tenant_id ORDER BY cost DESC) AS r FROM ledger",
    "SELECT toStartOfDay(ts) AS d, CAST(sum(cost) AS Decimal(38, 12)) FROM ledger GROUP BY d ORDER BY d",
    "SELECT tenant_id FROM ledger UNION ALL SELECT tenant_id FROM spend",
    "SELECT arrayMap(x -> x * 2, [1, 2, 3]) AS a, if(1 > 0, 'y', 'n') AS b, multiIf(1 = 1, 1, 2) AS c",
    "SELECT format('{} {}', 'a', 'b') AS s",  # the format() function, not the table function
    "SELECT user_id, count() FROM ledger GROUP BY user_id ORDER BY count() DESC LIMIT 1 BY user_id",
]

REFUSED = {
    "SELECT 1; DROP TABLE ledger": "not one valid statement",
    "DROP TABLE ledger": "only a SELECT",
    "INSERT INTO ledger SELECT * FROM ledger": "only a SELECT",
    "WITH 1 AS x INSERT INTO ledger SELECT * FROM ledger": "only a SELECT",
    "ALTER TABLE ledger DELETE WHERE 1": "only a SELECT",
    "SET readonly = 1": "only a SELECT",
    "SELECT * FROM ledger INTO OUTFILE '/tmp/x'": "INTO OUTFILE",
    "SELECT * FROM ledger FORMAT JSON": "FORMAT",
    "SELECT * FROM ledger SETTINGS readonly = 0": "SETTINGS",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')": "table functions file()",
    "SELECT file('/etc/passwd')": "function file()",
    "SELECT * FROM ledger WHERE user_id IN (SELECT * FROM url('http://h/', 'LineAsString'))": "table functions url()",
    "SELECT * FROM (SELECT * FROM remote('h', system.one))": "table functions remote()",
    "SELECT * FROM numbers(10)": "table functions numbers()",
    "SELECT * FROM system.tables": "only tables of the database",
    "SELECT * FROM other.ledger": "only tables of the database",
    "SELECT getSetting('readonly')": "function getSetting()",
    "EXPLAIN SELECT 1": "only a SELECT",
    "": "give one SELECT",
}


@pytest.mark.parametrize("sql", ACCEPTED)
def test_plain_selects_pass(guard, sql):
    canonical = guard.canonical(sql, {"t": "acme"})
    guard.store.query_readonly(canonical, {"t": "acme"}, max_rows=1000, timeout_s=10)  # and run read-only


@pytest.mark.parametrize("sql", list(REFUSED))
def test_everything_else_is_refused_with_the_reason(guard, sql):
    with pytest.raises(RefusedSQL, match=REFUSED[sql]):
        guard.canonical(sql)
    assert guard.store.query("SELECT count() AS n FROM system.tables WHERE database = 'gdb'") == [{"n": 2}]


def test_oversized_text_is_refused_before_parsing(guard):
    with pytest.raises(RefusedSQL, match="over"):
        guard.canonical("SELECT " + "1 + " * 30000 + "1")


def test_multi_line_sql_and_backslashes_reach_the_parser_intact(guard):
    """A bound value is read in ClickHouse's escaped text format: a raw newline used to end it
    (multi-line SQL was refused as "cannot be parsed as String")."""
    text = guard.canonical("SELECT user_id,\n\tsum(cost) AS c\nFROM ledger\nGROUP BY user_id")
    assert "GROUP BY user_id" in text and "sum(cost)" in text
    assert guard.store.query("SELECT {v:String} AS v", {"v": "a\\b\nc\td"})[0]["v"] == "a\\b\nc\td"
