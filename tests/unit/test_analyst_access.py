"""The read-only analyst role and user (streams/storage/access.py). No ClickHouse server runs
here, so every generated statement is checked by ClickHouse's own parser, through chDB:
``SELECT formatQuery({sql:String})``; the grants are checked against the objects the migrations
really create."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from streams.cli.main import main
from streams.settings import Settings
from streams.storage import StoreError
from streams.storage.access import (
    ANALYST_OBJECTS,
    ANALYST_PROFILE,
    ANALYST_ROLE,
    analyst_statements,
    apply_analyst_access,
)
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

PASSWORD = "An4lyst-p@ss'word\"-x"  # quotes too: it must never reach the SQL text


@pytest.fixture
def chdb(tmp_path):
    """chDB serves one data directory per process at a time: each test opens and closes its own."""
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        yield store


def formatted(store: ChdbStore, sql: str) -> str:
    return store.query("SELECT formatQuery({sql:String}) AS f", {"sql": sql})[0]["f"]


def test_every_statement_parses_with_clickhouses_parser(chdb):
    stmts = analyst_statements("meterstream", "meterstream_analyst", SecretStr(PASSWORD))
    assert len(stmts) == 5 + len(ANALYST_OBJECTS) + 4
    for stmt in stmts:
        out = formatted(chdb, stmt)
        assert out.split()[0] == stmt.split()[0], (stmt, out)
    with pytest.raises(StoreError, match="SYNTAX_ERROR"):  # the check can fail
        formatted(chdb, "GRANT SELEKT ON meterstream.ledger TO meterstream_analyst")


def test_the_role_gets_select_on_analyst_objects_and_nothing_else(chdb):
    stmts = analyst_statements("meterstream")
    grants = [formatted(chdb, s) for s in stmts if s.startswith(("GRANT", "REVOKE"))]
    assert grants[0] == f"REVOKE ALL ON meterstream.* FROM {ANALYST_ROLE}"
    on = []
    for g in grants[1:]:
        m = re.fullmatch(rf"GRANT SELECT ON meterstream\.(\w+) TO {ANALYST_ROLE}", g)
        assert m, g  # SELECT only: no INSERT, ALTER, CREATE TEMPORARY TABLE or sources (table functions)
        on.append(m.group(1))
    assert sorted(on) == sorted(ANALYST_OBJECTS)
    assert not any("USER" in s for s in stmts)  # no password: the role only
    profile = formatted(chdb, next(s for s in stmts if s.startswith("ALTER SETTINGS PROFILE")))
    assert profile.endswith("ADD SETTING readonly = 1")
    assert f"ADD PROFILE `{ANALYST_PROFILE}`" in formatted(chdb, next(s for s in stmts if s.startswith("ALTER ROLE")))


def test_grants_cover_every_analyst_object_and_the_tables_views_read(chdb):
    objects = {
        r["name"]: r
        for r in chdb.query("SELECT name, engine, as_select FROM system.tables WHERE database = 'meterstream'")
    }
    assert set(ANALYST_OBJECTS) <= set(objects)  # each exists
    # everything but the migrations' bookkeeping is for analysts: a new table needs a decision here
    assert set(objects) - set(ANALYST_OBJECTS) == {"schema_migrations"}
    views = [r for r in objects.values() if r["engine"] == "View"]
    assert len(views) == 13  # spend_by_{user,model,label}_{minute,hour,day,month}, dead_letters
    for v in views:  # SQL SECURITY INVOKER (the default for views): the reader needs the sources too
        sources = set(re.findall(r"FROM (?:meterstream\.)?(\w+)", v["as_select"]))
        assert sources and sources <= set(ANALYST_OBJECTS), (v["name"], sources)


def test_the_user_has_the_password_as_a_salted_hash_only(chdb):
    stmts = analyst_statements("meterstream", "ana_lyst", SecretStr(PASSWORD), salt="0123456789abcdef")
    text = "\n".join(stmts)
    assert PASSWORD not in text and "p@ss" not in text
    create = next(s for s in stmts if s.startswith("CREATE USER"))
    m = re.search(r"IDENTIFIED WITH sha256_hash BY '([0-9a-f]{64})' SALT '0123456789abcdef'", create)
    assert m and m.group(1) == hashlib.sha256((PASSWORD + "0123456789abcdef").encode()).hexdigest()
    alter = formatted(chdb, stmts[-1])
    assert "DEFAULT DATABASE meterstream" in alter and f"DEFAULT ROLE {ANALYST_ROLE}" in alter
    assert f"ADD PROFILE `{ANALYST_PROFILE}`" in alter
    assert formatted(chdb, stmts[-2]) == f"GRANT {ANALYST_ROLE} TO ana_lyst"
    salts = {
        re.search(r"SALT '(\w+)'", analyst_statements("meterstream", "u", SecretStr("p"))[-4]).group(1)
        for _ in range(3)
    }
    assert len(salts) == 3  # a fresh salt each time


def test_names_that_are_not_plain_identifiers_are_refused():
    with pytest.raises(StoreError):
        analyst_statements("meterstream", "x; DROP USER default", SecretStr("p"))
    with pytest.raises(StoreError):
        analyst_statements("db`.*", None, None)


def test_chdb_skips_with_a_clear_line(chdb):
    assert apply_analyst_access(chdb, "meterstream", "u", None) == (
        "analyst role: skipped, the embedded engine (chDB) has no access control"
    )
    note = apply_analyst_access(chdb, "meterstream", "u", SecretStr(PASSWORD))
    assert "ignored" in note and PASSWORD not in note


def test_a_server_refusing_access_management_fails_without_the_hash(tmp_path):
    """chDB answers CREATE SETTINGS PROFILE (and ROLE) with ACCESS_DENIED, as a server does to a user without access
    management: here it stands in for such a server (the statements really run)."""
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        store.backend = "server"
        with pytest.raises(StoreError) as err:
            apply_analyst_access(store, "meterstream", "u", SecretStr(PASSWORD))
    text = str(err.value)
    assert text.startswith("analyst role: CREATE SETTINGS PROFILE IF NOT … failed")
    assert "ACCESS_DENIED" in text and "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT" in text
    assert PASSWORD not in text and not re.search(r"[0-9a-f]{32}", text)


def test_migrate_on_chdb_says_it_skipped_and_stores_no_password(tmp_path, caplog):
    env = {"MS_DATA_DIR": str(tmp_path), "MS_CLICKHOUSE_ANALYST_PASSWORD": PASSWORD}
    caplog.set_level("DEBUG")
    res = CliRunner().invoke(main, ["migrate"], env=env)
    assert res.exit_code == 0, res.output
    assert "applied 0001_ledger.sql" in res.output
    assert "analyst role: skipped, the embedded engine (chDB) has no access control" in res.output
    assert "analyst role: skipped" in caplog.text
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        rows = store.query("SELECT * FROM schema_migrations")
    assert len(rows) == len(list(Settings().migrations_dir.glob("*.sql")))
    for text in (res.output, caplog.text, json.dumps(rows, default=str)):
        assert PASSWORD not in text
