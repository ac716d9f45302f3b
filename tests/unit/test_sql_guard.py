"""Analysts' ad-hoc SQL, checked by ClickHouse's own parser (chDB): what passes and what not."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from streams.analyst import reads
from streams.analyst.sql_guard import ALLOWED_FUNCTIONS, READABLE, RefusedSQL, SqlGuard
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    store = ChdbStore(tmp_path_factory.mktemp("guard") / "chdb", "gdb")
    store.command(
        "CREATE TABLE ledger (tenant_id String, user_id String, cost Decimal(38, 12), "
        "ts DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, user_id)"
    )
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


# --- The review's findings: tables named where the parser gives a plain identifier, and functions
# from an allow-list. Each attack below first ANSWERS on the raw engine (so the refusal matters),
# then is refused by the guard with its reason.

LEAKS = {  # answers the raw engine gives: proof that each is a real read past the old guard
    "SELECT 0 IN system.one": "only tables of the database 'gdb' may be read, not system.one",
    "SELECT ('SYSTEM', 'Linux') IN system.build_options": "not system.build_options",  # a lookup oracle
    "SELECT 0 NOT IN system.one": "not system.one",
    "SELECT 0 GLOBAL IN system.one": "not system.one",
    "SELECT nullIn(0, system.one)": "not system.one",
    "SELECT globalNotNullIn(0, system.one)": "not system.one",
    "SELECT 0 IN (system.one AS t)": "not system.one",
    "SELECT system.one.dummy": "not system.one.dummy",
    "SELECT system.one.*": "not system.one",
    "SELECT getSettingOrDefault('readonly', 5)": "function getSettingOrDefault() is not allowed",
    "SELECT globalVariable('max_allowed_packet')": "function globalVariable() is not allowed",
    "SELECT hasColumnInTable('system', 'one', 'dummy')": "function hasColumnInTable() is not allowed",
    "SELECT version()": "function version() is not allowed",
    "SELECT hostName()": "function hostName() is not allowed",
    "SELECT currentUser()": "function currentUser() is not allowed",
    "SELECT uptime()": "function uptime() is not allowed",
    "SELECT getSetting('max_memory_usage')": "function getSetting() is not allowed",
    "SELECT arrayReduce('max', [1, 2])": "function arrayReduce() is not allowed",  # an aggregate by name
    "SELECT * APPLY(x -> getSetting('readonly')) FROM (SELECT 1 AS a)": "APPLY is not allowed",  # f not in the tree
}

REFUSED_ONLY = {  # refused before they run (they would fail or need objects this engine lacks)
    "SELECT joinGet('system.one', 'dummy', 0)": "function joinGet() is not allowed",
    "SELECT joinGetOrNull('gdb.j', 'v', 0)": "function joinGetOrNull() is not allowed",
    "SELECT dictGet('gdb.d', 'v', toUInt64(1))": "function dictGet() is not allowed",
    "SELECT dictGetOrDefault('d', 'v', 1, 0)": "function dictGetOrDefault() is not allowed",
    "SELECT dictHas('d', 1)": "function dictHas() is not allowed",
    "SELECT initializeAggregation('sumState', 1)": "function initializeAggregation() is not allowed",
    "SELECT JSONExtractRaw('{}', 'a')": "function JSONExtractRaw() is not allowed",
    "SELECT sleep(3)": "function sleep() is not allowed",
    "SELECT GETSETTING('readonly')": "function GETSETTING() is not allowed",
    "SELECT throwIf(1)": "function throwIf() is not allowed",
    "SELECT fileIf('/etc/passwd', 1)": "function fileIf() is not allowed",  # a combinator on a banned base
    "SELECT count() FROM ledger WHERE 1 IN numbers(10)": "function numbers() is not allowed",
    "SELECT 'x' IN information_schema.tables": "not information_schema.tables",
    "SELECT 0 IN gdb.ledger.x": "not gdb.ledger.x",
    "SELECT * FROM ledger WHERE user_id IN other.t": "not other.t",
    # a parameter naming a table is checked as substituted (the engine reads it as one quoted name)
    "SELECT 0 IN {tbl:Identifier}": "not system.one",
    "SELECT * FROM {tbl:Identifier}": "not system.one",
}


@pytest.mark.parametrize("sql", list(LEAKS))
def test_each_leak_answers_on_the_engine_but_is_refused(guard, sql):
    params = {"tbl": "system.one"}
    assert guard.store.query(sql, params)  # the attack is real here: the engine answers it
    with pytest.raises(RefusedSQL, match=re.escape(LEAKS[sql])):
        guard.canonical(sql, params)


@pytest.mark.parametrize("sql", list(REFUSED_ONLY))
def test_functions_off_the_list_and_other_databases_are_refused(guard, sql):
    with pytest.raises(RefusedSQL, match=re.escape(REFUSED_ONLY[sql])):
        guard.canonical(sql, {"tbl": "system.one"})


def test_the_allow_list_names_real_functions_and_no_dangerous_one(guard):
    rows = guard.store.query("SELECT name, alias_to FROM system.functions")
    canonical = {r["name"] for r in rows if not r["alias_to"]}
    assert not ALLOWED_FUNCTIONS - canonical, "allow-listed names the engine lacks (or aliases, not canonical names)"
    for name in (
        "file",
        "getSetting",
        "getSettingOrDefault",
        "globalVariable",
        "hasColumnInTable",
        "joinGet",
        "dictGet",
        "arrayReduce",
        "initializeAggregation",
        "sleep",
        "throwIf",
        "url",
        "numbers",
        "version",
        "currentDatabase",
        "getMacro",
        "getServerSetting",
        "filesystemAvailable",
    ):
        assert name not in ALLOWED_FUNCTIONS, name


@pytest.fixture(scope="module")
def analyst(guard):
    """A second session on the guard's data directory holding the real schema (the migrations) in
    the database 'meterstream', with a few rows: the queries analysts, the CLI and the tests send."""
    store = ChdbStore(guard.store.path, "meterstream")
    migrate(store, Settings().migrations_dir)
    store.command(
        "INSERT INTO ledger (tenant_id, event_id, user_id, provider, model, ts, currency, cost, input_tokens, "
        "output_tokens, labels, src_partition, src_offset) SELECT 'acme', 'req-' || toString(number), "
        "'u' || toString(number % 3), 'openai', 'gpt-4o', now64(3) - number, 'USD', number / 100, 10, 20, "
        "map('team', 'a'), 0, number FROM numbers(30)"
    )
    yield SqlGuard(store, "meterstream")
    store.close()


def _readme_queries() -> list[str]:
    """The SQL the README and the docs show analysts."""
    root = Path(__file__).parents[2]
    text = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    queries = re.findall(r'^meterstream sql "([^"]+)"', text, re.M)
    for block in re.findall(r"^```sql\n(.*?)^```", text, re.M | re.S):
        code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        queries += [q.strip() for q in code.split(";") if q.strip()]
    return queries


# What goes through the guard today: the README's queries, the SQL the tests, the harness and the
# benchmarks send to POST /sql, and what an analyst writes (aliases, combinators, windows, maps).
ANALYST_QUERIES = [
    "SELECT event_id, toString(cost) AS cost, toString(list_cost) AS list_cost, price_overlay, catalog_hash FROM ledger FINAL",
    "SELECT reason FROM rejected_events FINAL",
    "SELECT count() AS n FROM ledger",
    "SELECT tenant_id, sum(cost) AS cost FROM spend_by_user_day WHERE tenant_id != {t:String} GROUP BY tenant_id ORDER BY tenant_id",
    "SELECT count() AS n, sum(cost) AS c FROM ledger FINAL",
    "SELECT sum(events) AS n, sum(cost) AS c FROM spend_by_user_day",
    "SELECT tenant_id, user_id, src_partition FROM ledger FINAL",
    "SELECT usage FROM ledger FINAL WHERE event_id = 'chatcmpl-5'",
    "SELECT reason, payload FROM rejected_events FINAL",
    "SELECT count() AS n FROM ledger FINAL",
    "SELECT user_id, toUnixTimestamp64Milli(min(written_at)) AS w FROM rollup_user_minute WHERE tenant_id = 'bench' GROUP BY user_id",
    "SELECT count() AS n FROM rejected_events FINAL",
    "SELECT SUM(cost), COUNT(*), countDistinct(user_id), count(DISTINCT model), sumIf(cost, cost > 0), "
    "uniqExactIf(user_id, input_tokens > 0), median(cost), quantiles(0.5, 0.9)(cost), avgOrNull(cost), "
    "maxIf(ts, model = 'gpt-4o'), argMax(user_id, cost), topK(3)(model), groupArray(3)(event_id) FROM ledger",
    "SELECT sumMap(mapKeys(labels), arrayMap(x -> 1, mapValues(labels))), sumState(cost) FROM ledger",
    "SELECT finalizeAggregation(s) FROM (SELECT sumState(cost) AS s FROM ledger)",
    "SELECT user_id, cost, row_number() OVER w AS n, dense_rank() OVER (ORDER BY cost) AS d, "
    "lagInFrame(cost) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM ledger WINDOW w AS (ORDER BY ts)",
    "SELECT DATE_TRUNC('day', ts) AS d, toStartOfHour(ts) AS h, toYYYYMM(ts) AS m, dateDiff('minute', ts, now()) AS age_min, "
    "formatDateTime(ts, '%F') AS f, ts - INTERVAL 1 DAY AS before, toDate(ts) = today() AS is_today FROM ledger LIMIT 5",
    "SELECT CASE WHEN cost > 1 THEN 'big' ELSE 'small' END AS size, CASE model WHEN 'gpt-4o' THEN 1 ELSE 0 END AS m, "
    "if(estimated, 'yes', 'no') AS e, coalesce(nullIf(region, ''), '-') AS r, multiIf(cost > 0, 1, 0) AS p FROM ledger",
    "SELECT labels['team'] AS team, lower(user_id) AS u, concat(tenant_id, '/', user_id) AS k, substr(event_id, 1, 4) AS p, "
    "replaceRegexpAll(event_id, '[0-9]', '#') AS shape, splitByChar('-', event_id)[1] AS head, "
    "toDecimal64(cost, 4) AS c4, round(toFloat64(cost), 2) AS approx, formatReadableQuantity(input_tokens) AS q FROM ledger",
    "SELECT tenant_id, user_id, currency, sum(cost) AS cost FROM spend_by_user_month GROUP BY tenant_id, user_id, currency "
    "WITH ROLLUP ORDER BY cost DESC LIMIT 10",
    "SELECT l.user_id, s.cost FROM ledger AS l INNER JOIN (SELECT user_id, sum(cost) AS cost FROM ledger GROUP BY user_id) "
    "AS s ON l.user_id = s.user_id WHERE l.event_id IN (SELECT event_id FROM ledger WHERE cost > 0) "
    "AND (l.tenant_id, l.user_id) IN ledger_pairs",
    "SELECT arrayJoin(['a', 'b']) AS x, (1, 'y').2 AS t, [1, 2, 3][2] AS e, has([1, 2], 1) AS h, exists(SELECT 1) AS ex",
]


def _named_reads() -> list[tuple[str, str, dict]]:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    examples = {
        "spend": [
            {"by": "user", "window": "day", "tenant": "acme", "since": when, "until": when + dt.timedelta(days=1)},
            {"by": "model", "window": "total", "since": when},
        ],
        "usage": [  # streams/analyst/usage.py: each source (rollup views, the ledger), windows, zones, top N
            {"group_by": ["user"], "window": "total", "tenant": "acme", "since": when},
            {"group_by": ["model", "user"], "window": "hour", "top": 3, "order": "tokens"},
            {"group_by": ["label:team"], "window": "day", "tz": "Asia/Kolkata", "rolled_up_labels": ["team"]},
            {"group_by": ["tenant"], "window": "month", "tz": "Asia/Shanghai", "labels": {"app": "chat"}},
            {"group_by": ["model"], "average": True, "labels": {"team": "a"}, "until": when},
        ],
        "explain": [{"event_id": "req-1"}, {"event_id": "req-1", "tenant": "acme"}],
        "rejected_event": [{"event_id": "req-1"}],
        "statement_lines": [{"tenant": "acme", "month": "2026-01"}],
        "statement_totals": [{"tenant": "acme", "month": "2026-01"}],
        "statement_rejected": [{"tenant": "acme", "month": "2026-01"}],
        "rejects": [{"limit": 10}, {"tenant": "acme", "since": when, "reason": "model", "group": True}],
        "alerts": [{}],
        "counts": [{}],
        "ledger_spend": [
            {
                "tenant_id": "acme",
                "user_id": "u1",
                "model": "gpt-4o",
                "currency": "USD",
                "since": when,
                "until": when + dt.timedelta(days=1),
            }
        ],
        # fixing the past (streams/analyst/past_reads.py)
        "event_rows": [{"tenant": "acme", "event_ids": ["req-1", "req-2"]}],
        "dead_letters": [
            {"limit": 10},
            {"reason": "model", "tenant": "acme", "since": when, "until": when, "after": ["ev", 0, 5, 1]},
        ],
        "period_closes": [{}, {"tenant": "acme", "month": "2026-01"}],
        "month_tenants": [{"month": "2026-01"}, {"month": "2026-01", "tenant": "acme"}],
        "period_rows": [
            {"tenant": "acme", "month": "2026-01"},
            {"tenant": "acme", "month": "2026-01", "after": ["e", 1]},
        ],
        "period_events": [
            {"since": when, "until": when + dt.timedelta(days=1)},
            {"since": when, "until": when, "tenant": "acme", "after": ["acme", "e"], "limit": 10},
        ],
        "audit": [{}, {"since": when, "until": when, "action": "period close", "audit_id": "a1", "limit": 5}],
        "audit_rows": [{"audit_id": "a1"}],
    }
    assert set(examples) == set(reads.READS), "a new named read: add an example here"
    out = []
    for name, cases in examples.items():
        for params in cases:
            read, p = reads.parse(name, params)
            sql, bound = read.sql(p)
            out.append((name, sql, bound))
    return out


def test_the_readme_shows_the_queries_this_checks():
    queries = _readme_queries()
    assert len(queries) >= 4 and any("spend_by_model_day" in q for q in queries), queries


@pytest.mark.parametrize("sql", _readme_queries() + ANALYST_QUERIES)
def test_analysts_queries_pass_and_run(analyst, sql):
    if "ledger_pairs" in sql:  # a WITH-less table name on the right of IN: a table of this database
        analyst.store.command("CREATE TABLE IF NOT EXISTS ledger_pairs (t String, u String) ENGINE = Memory")
    checked = analyst.check(sql, {"t": "nobody"})  # a SELECT, or the docs' DESCRIBE and SHOW
    analyst.store.query_readonly(checked.sql, checked.params, max_rows=10_000, timeout_s=10)


NAMED_READS = _named_reads()


@pytest.mark.parametrize(("name", "sql", "bound"), NAMED_READS, ids=[n for n, _, _ in NAMED_READS])
def test_the_named_reads_would_pass_the_guard_too(analyst, name, sql, bound):
    """report, rejects, alerts and the alerts role run these by name (no guard on that path); the
    allow-list still covers every function they call."""
    canonical = analyst.canonical(sql, bound)
    analyst.store.query_readonly(canonical, bound, max_rows=10_000, timeout_s=10)


# --- Looking the schema up: DESCRIBE and SHOW of the tables and views analysts may read (READABLE),
# in this database only. The guard runs a statement it builds from the checked name, never the
# analyst's text, and SHOW TABLES keeps only READABLE names.

METADATA_ACCEPTED = {  # what an analyst writes -> what the guard runs
    "DESCRIBE ledger": "DESCRIBE TABLE meterstream.ledger",
    "desc table meterstream.spend_by_user_day": "DESCRIBE TABLE meterstream.spend_by_user_day",
    "DESC `alerts`": "DESCRIBE TABLE meterstream.alerts",
    "SHOW TABLES": "SHOW TABLES FROM meterstream",
    "show tables in meterstream": "SHOW TABLES FROM meterstream",
    "SHOW FULL TABLES LIKE 'spend%'": "SHOW FULL TABLES FROM meterstream LIKE 'spend%'",
    "SHOW TABLES NOT ILIKE '%_MINUTE'": "SHOW TABLES FROM meterstream NOT ILIKE '%_MINUTE'",
    "SHOW COLUMNS FROM rejected_events": "SHOW COLUMNS FROM rejected_events FROM meterstream",
    "SHOW COLUMNS IN meterstream.ledger": "SHOW COLUMNS FROM ledger FROM meterstream",
    "SHOW CREATE TABLE ledger": "SHOW CREATE TABLE meterstream.ledger",
    "SHOW CREATE ledger": "SHOW CREATE TABLE meterstream.ledger",
    "SHOW CREATE VIEW spend_by_model_month": "SHOW CREATE TABLE meterstream.spend_by_model_month",
}


@pytest.mark.parametrize("sql", list(METADATA_ACCEPTED))
def test_describe_and_show_of_readable_objects_pass_as_the_guards_own_statement(analyst, sql):
    checked = analyst.check(sql, {"t": "x"})
    assert checked.sql == METADATA_ACCEPTED[sql] and not checked.params
    rows = checked.keep(analyst.store.query_readonly(checked.sql, None, max_rows=10_000, timeout_s=10))
    assert rows
    if "TABLES" in checked.sql:  # the database holds schema_migrations too
        assert {r["name"] for r in rows} <= READABLE


def test_show_tables_lists_the_readable_objects_only(analyst):
    analyst.store.command("CREATE TABLE IF NOT EXISTS secret_notes (x String) ENGINE = Memory")
    raw = {r["name"] for r in analyst.store.query("SHOW TABLES")}
    assert {"schema_migrations", "secret_notes"} <= raw  # the engine would show them
    checked = analyst.check("SHOW TABLES")
    shown = [r["name"] for r in checked.keep(analyst.store.query_readonly(checked.sql, max_rows=100, timeout_s=10))]
    assert shown == sorted(READABLE)


METADATA_LEAKS = {  # each answers on the raw engine: what it would reveal past the guard
    "DESCRIBE system.users": "only tables of the database 'meterstream' may be read, not system.users",
    "DESCRIBE TABLE system.one": "not system.one",
    "DESC information_schema.tables": "not information_schema.tables",
    "SHOW COLUMNS FROM users FROM system": "not system.users",
    "SHOW TABLES FROM system": "only tables of the database 'meterstream' may be read, not system",
    "SHOW FULL TABLES FROM information_schema LIKE 't%'": "not information_schema",
    "SHOW DATABASES": "SHOW DATABASES is not allowed: only a SELECT query",
    "SHOW SETTINGS LIKE 'max_%'": "is not allowed: only a SELECT query",
    "SHOW CHANGED SETTINGS LIKE '%'": "is not allowed: only a SELECT query",
    "SHOW GRANTS": "SHOW GRANTS is not allowed",
    "SHOW PROCESSLIST": "SHOW PROCESSLIST is not allowed",
    "SHOW FUNCTIONS": "SHOW FUNCTIONS is not allowed",
    "SHOW CREATE DATABASE meterstream": "SHOW CREATE DATABASE meterstream is not allowed",
    "DESCRIBE numbers(3)": "DESCRIBE takes the name of a table or view, not the table function numbers()",
    "DESCRIBE (SELECT * FROM system.users)": "DESCRIBE takes the name of a table or view, not a query",
    "DESCRIBE schema_migrations": "schema_migrations is not a table or view analysts may read",
    "SHOW CREATE TABLE schema_migrations": "schema_migrations is not a table or view analysts may read",
    "EXISTS TABLE ledger": "EXISTS TABLE ledger is not allowed",
}

METADATA_REFUSED = {  # refused for their shape, or what a server would answer (chDB has no users, no clusters)
    "SHOW CREATE TABLE system.one": "not system.one",
    "SHOW CLUSTERS": "SHOW CLUSTERS is not allowed",
    "SHOW USERS": "SHOW USERS is not allowed",
    "SHOW CREATE USER default": "SHOW CREATE USER default is not allowed",
    "DESCRIBE ledger FORMAT JSON": "INTO OUTFILE, FORMAT and SETTINGS are not allowed",
    "DESCRIBE ledger SETTINGS describe_include_subcolumns = 1": "INTO OUTFILE, FORMAT and SETTINGS are not allowed",
    "SHOW TABLES SETTINGS readonly = 0": "INTO OUTFILE, FORMAT and SETTINGS are not allowed",
    "SHOW CREATE TABLE ledger INTO OUTFILE '/tmp/ms-guard-x'": "INTO OUTFILE, FORMAT and SETTINGS are not allowed",
    "DESCRIBE ledger; SHOW TABLES": "not one valid statement",
    "DESCRIBE {tbl:Identifier}": "give DESCRIBE TABLE name",  # a parameter naming the table
    "SHOW CREATE TABLE {tbl:Identifier}": "give SHOW CREATE TABLE name",
    "SHOW TABLES FROM {db:Identifier}": "give SHOW [FULL] TABLES",
    "DESCRIBE ledger AS l": "give DESCRIBE TABLE name",
    "SHOW TABLES LIMIT 1": "give SHOW [FULL] TABLES",
    "SHOW TABLES LIKE 'a\\'' || (SELECT 1)": "not one valid statement",
    "SHOW TABLES LIKE '%\\_x'": "give SHOW [FULL] TABLES",  # an escape: the pattern is letters, digits, _ and %
    "SHOW FULL COLUMNS FROM ledger": "give SHOW COLUMNS FROM name",
    "SHOW COLUMNS FROM ledger LIKE 't%'": "give SHOW COLUMNS FROM name",
    "SHOW TEMPORARY TABLES": "SHOW TEMPORARY TABLES is not allowed",
    "SHOW DICTIONARIES": "SHOW DICTIONARIES is not allowed",
    "SHOW CREATE TEMPORARY TABLE ledger": "give SHOW CREATE TABLE name",
    "SHOW CREATE DICTIONARY ledger": "not allowed",
    "SHOW INDEX FROM ledger": "not allowed",
    "DESCRIBE LEDGER": "LEDGER is not a table or view analysts may read",  # names are case-sensitive
    "DESCRIBE other.ledger": "not other.ledger",
}


@pytest.mark.parametrize("sql", list(METADATA_LEAKS))
def test_each_metadata_leak_answers_on_the_engine_but_is_refused(analyst, sql):
    assert analyst.store.query(sql) or sql.startswith("SHOW GRANTS")  # the engine answers it
    with pytest.raises(RefusedSQL, match=re.escape(METADATA_LEAKS[sql])):
        analyst.check(sql)


@pytest.mark.parametrize("sql", list(METADATA_REFUSED))
def test_other_metadata_statements_are_refused_with_the_reason(analyst, sql):
    with pytest.raises(RefusedSQL, match=re.escape(METADATA_REFUSED[sql])):
        analyst.check(sql, {"tbl": "system.one", "db": "system"})
    assert not Path("/tmp/ms-guard-x").exists()


def test_a_select_still_goes_through_canonical_only(analyst):
    """canonical() is the SELECT check (the limits tests use it); check() also takes DESCRIBE/SHOW."""
    with pytest.raises(RefusedSQL, match="only a SELECT query"):
        analyst.canonical("DESCRIBE ledger")
    assert analyst.check("SELECT 1").sql == analyst.canonical("SELECT 1")
