"""Cluster DDL (streams/storage/cluster.py, MS_CLICKHOUSE_CLUSTER). No ClickHouse cluster runs
here, so every rewritten statement of every migration is checked by ClickHouse's own parser,
through chDB: ``SELECT formatQuery('…')`` gives the canonical text, which is then compared with
the canonical text of the single-node statement, changed only where the cluster form must
differ. The run against a real server (Keeper, one shard) is the last test: it needs a Docker
engine for testcontainers, and skips without one."""

from __future__ import annotations

import hashlib
import re
import uuid
from decimal import Decimal

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from streams.cli.main import main
from streams.settings import Settings
from streams.storage import StoreError
from streams.storage.base import split_statements
from streams.storage.chdb_store import ChdbStore
from streams.storage.cluster import REPLICATED_WINDOW, check_cluster_name, cluster_statements
from streams.storage.migrations import BOOKKEEPING, discover, migrate, statements

CLUSTER, DB = "ms_cluster", "meterstream"
WINDOWS = ("minute", "hour", "day", "month")
# Each table's sharding key, decided (docs/operations.md "ClickHouse cluster"): a new table fails
# test_every_migration_statement_in_its_cluster_form until it is given one here.
SHARDING = {
    "schema_migrations": "cityHash64(version)",
    "ledger": "cityHash64(tenant_id)",
    "rejected_events": "cityHash64(src_topic, src_partition, src_offset)",
    "alerts": "cityHash64(alert_key)",
    "redrives": "cityHash64(src_topic, src_partition, src_offset, src_index)",
    "period_closes": "cityHash64(tenant_id)",
    "audit_log": "cityHash64(audit_id)",
    **{f"rollup_{k}_{w}": "cityHash64(tenant_id)" for k in ("user", "model", "label") for w in WINDOWS},
}
# sha256 of each file's statements joined by NUL, as the single-node path ran them before
# MS_CLICKHOUSE_CLUSTER existed (computed on main at 3800399).
SINGLE_NODE = {
    1: "4d6ecda7e52bf2337d70c098ddf43b19398b7526878c35364b842b6e30c02745",
    2: "bcf7c2b03915a5c5e9323b2347b1bacbe5bfd80df34217d4050943e579588346",
    3: "5b83982e57ab244e9d9a3fd6a2124290894d5d009011e7b18fb48bb7f1dd7152",
    4: "1621856c1d068b835f3e288a189925b48e41a8623d7727f9e3ab92f09fe9e067",
    5: "15256d50958b6a7d15444bb51e65557cfabe28656b79e3acdf50f58efe8d8fb4",
    6: "f71a0c459c3e1238143f55b54028cc13e648cc5db84b2bdbc6d9163b016edb77",
    7: "8f06fa1d1b2267f4d3e8529c98ff62528c99c373e42475f43d244d8912ac6226",
}
BOOKKEEPING_SHA256 = "178c4801c266288a87bf6e0dafd970f5c08daf4a7b51fe2550d48fccf0abf2f0"


@pytest.fixture
def chdb(tmp_path):
    """chDB serves one data directory per process at a time: each test opens and closes its own."""
    with ChdbStore(tmp_path / "chdb", DB) as store:
        yield store


def sql_string(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def canonical(store: ChdbStore, sql: str) -> str:
    return store.query(f"SELECT formatQuery({sql_string(sql)}) AS f")[0]["f"]


def migration_statements() -> list[tuple[str, str]]:
    """(file, statement) of the bookkeeping table and of every migration, in order."""
    out = [("schema_migrations", BOOKKEEPING.strip())]
    for mig in discover(Settings().migrations_dir):
        out += [(mig.path.name, stmt) for stmt in split_statements(mig.sql)]
    return out


def _first_line(text: str, new: str) -> str:
    return new + text[text.index("\n") :]


def expected_local(single: str, name: str) -> str:
    """The canonical single-node CREATE TABLE as its replicated `_local` form must read."""
    engine = re.search(r"^ENGINE = (\w+)MergeTree(?:\((.*)\))?$", single, re.M)
    assert engine, single
    args = f", {engine[2]}" if engine[2] else ""
    replicated = (
        f"ENGINE = Replicated{engine[1]}MergeTree('/clickhouse/tables/{{shard}}/{{database}}/"
        f"{name}_local', '{{replica}}'{args})"
    )
    out = _first_line(single, f"CREATE TABLE IF NOT EXISTS {name}_local ON CLUSTER {CLUSTER}")
    out = out.replace(engine[0], replicated)
    return out.replace("non_replicated_deduplication_window = 1000", REPLICATED_WINDOW.format(n=1000))


def test_the_parser_check_can_fail(chdb):
    with pytest.raises(StoreError, match="SYNTAX_ERROR"):
        canonical(chdb, "CREATE TABLE t ON CLUSTER (a UInt8) ENGINE = MergeTree ORDER BY a")
    quoted = "SELECT 'it\\'s', 'a\\\\b'"  # SELECT 'it\'s', 'a\\b': a quote and a backslash
    assert canonical(chdb, quoted) == "SELECT\n    'it\\'s',\n    'a\\\\b'"  # reached the parser exactly


def test_every_migration_statement_in_its_cluster_form(chdb):
    tables, views, alters = set(), set(), 0
    for source, stmt in migration_statements():
        single = canonical(chdb, stmt)
        out = [canonical(chdb, s) for s in cluster_statements(stmt, CLUSTER, DB)]
        for text in out:
            assert re.search(rf" ON CLUSTER {CLUSTER}( |$)", text.split("\n")[0]), (source, text)
            assert "non_replicated" not in text
        kind, name = re.match(
            r"(CREATE TABLE|CREATE VIEW|ALTER TABLE) (?:IF NOT EXISTS )?(\w+)$", single.split("\n")[0]
        ).groups()
        if kind == "CREATE TABLE":
            tables.add(name)
            assert len(out) == 2, (source, out)
            assert out[0] == expected_local(single, name)
            assert "{shard}" in out[0] and "'{replica}'" in out[0] and "ENGINE = Replicated" in out[0]
            assert out[0].count("Decimal(38, 12)") == single.count("Decimal(38, 12)")  # money untouched
            if "non_replicated_deduplication_window" in single:
                assert (
                    "SETTINGS replicated_deduplication_window = 1000, "
                    "replicated_deduplication_window_seconds = 604800" in out[0]
                )
            assert out[1] == (
                f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER {CLUSTER} AS {DB}.{name}_local\n"
                f"ENGINE = Distributed({CLUSTER}, {DB}, {name}_local, {SHARDING[name]})"
            )
        elif kind == "CREATE VIEW":
            views.add(name)
            assert out == [_first_line(single, f"CREATE VIEW IF NOT EXISTS {name} ON CLUSTER {CLUSTER}")]
            read = re.findall(r"\bFROM (\w+)", out[0])
            assert read and set(read) <= tables and "_local" not in out[0]  # views read the Distributed tables
        else:
            alters += 1
            assert name in tables
            assert out[0] == _first_line(single, f"ALTER TABLE {name}_local ON CLUSTER {CLUSTER}")
            columns = [ln.strip().rstrip(",") for ln in single.split("\n")[1:] if " COLUMN " in ln]
            if columns:  # the Distributed table gets the column changes, and only those
                assert out[1:] == [f"ALTER TABLE {name} ON CLUSTER {CLUSTER}\n    " + ",\n    ".join(columns)]
            else:
                assert len(out) == 1
    assert tables == set(SHARDING)
    assert views == {f"spend_by_{k}_{w}" for k in ("user", "model", "label") for w in WINDOWS} | {"dead_letters"}
    assert alters == 6 + 1 + 2 + 1 + 1 + 3 + 12  # 0004, 0006, 0007, 0008, 0010, 0011 (the ledger, 12 rollups)


def test_the_alters_of_0006_and_0007(chdb):
    stmts = {
        s.split()[2]: s for s in split_statements((Settings().migrations_dir / "0007_batch_positions.sql").read_text())
    }
    ledger = [canonical(chdb, s) for s in cluster_statements(stmts["ledger"], CLUSTER, DB)]
    assert ledger == [
        f"ALTER TABLE ledger_local ON CLUSTER {CLUSTER}\n"
        "    (ADD COLUMN IF NOT EXISTS `src_index` UInt16 DEFAULT 0 AFTER src_offset)",
        f"ALTER TABLE ledger ON CLUSTER {CLUSTER}\n"
        "    (ADD COLUMN IF NOT EXISTS `src_index` UInt16 DEFAULT 0 AFTER src_offset)",
    ]
    rejected = [canonical(chdb, s) for s in cluster_statements(stmts["rejected_events"], CLUSTER, DB)]
    assert rejected == [
        f"ALTER TABLE rejected_events_local ON CLUSTER {CLUSTER}\n"
        "    (ADD COLUMN IF NOT EXISTS `src_index` UInt16 AFTER src_offset),\n"
        "    (MODIFY ORDER BY (src_topic, src_partition, src_offset, src_index))",
        f"ALTER TABLE rejected_events ON CLUSTER {CLUSTER}\n"  # no sort key on a Distributed table
        "    (ADD COLUMN IF NOT EXISTS `src_index` UInt16 AFTER src_offset)",
    ]
    [update] = split_statements((Settings().migrations_dir / "0006_alerts_webhook_labels.sql").read_text())
    [out] = [canonical(chdb, s) for s in cluster_statements(update, CLUSTER, DB)]
    assert out.startswith(f"ALTER TABLE alerts_local ON CLUSTER {CLUSTER}\n    (UPDATE webhook_status = ")
    assert out.endswith("WHERE webhook_status LIKE '%://%')\nSETTINGS mutations_sync = 2")
    assert "'[a-zA-Z][a-zA-Z0-9+.-]*://[^\\\\s;,\\'\"]+'" in out  # the regex literal kept byte for byte


def test_sharding_keys_are_prefixes_of_the_sort_keys(chdb):
    """ReplacingMergeTree collapses a row's versions within one shard only: the sharding key must
    be a function of the sort key, checked against the sort keys the migrations really make."""
    migrate(chdb, Settings().migrations_dir)
    keys = {
        r["name"]: r["sorting_key"].split(", ")
        for r in chdb.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'"
        )
    }
    assert set(keys) == set(SHARDING)
    for name, key in keys.items():
        columns = re.fullmatch(r"cityHash64\((.*)\)", SHARDING[name])[1].split(", ")
        assert key[: len(columns)] == columns, (name, key, columns)
    assert all(key[0] == "tenant_id" for name, key in keys.items() if SHARDING[name] == "cityHash64(tenant_id)")


class RecordingChdbStore(ChdbStore):
    """A real chDB store that also keeps the text of every command it ran."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.commands: list[str] = []

    def command(self, sql, params=None) -> None:
        self.commands.append(sql)
        super().command(sql, params)


def test_without_a_cluster_the_statements_are_the_files_as_before(tmp_path):
    with RecordingChdbStore(tmp_path / "chdb", DB) as store:
        assert store.cluster is None
        migrate(store, Settings().migrations_dir)
        engines = {
            r["name"]: r["engine"]
            for r in store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
        }
        ran = store.commands
    assert hashlib.sha256(ran[0].encode()).hexdigest() == BOOKKEEPING_SHA256
    rest = ran[1:]
    for mig in discover(Settings().migrations_dir):
        stmts = list(split_statements(mig.sql))
        assert rest[: len(stmts)] == stmts == statements(mig.sql, store)
        if mig.version in SINGLE_NODE:
            assert hashlib.sha256("\0".join(stmts).encode()).hexdigest() == SINGLE_NODE[mig.version], mig.path.name
        rest = rest[len(stmts) :]
    assert rest == []
    assert not any("ON CLUSTER" in s or "Replicated" in s or "_local" in s for s in ran)
    assert engines["ledger"] == "ReplacingMergeTree" and "ledger_local" not in engines
    assert set(SHARDING) <= set(engines)


def test_chdb_with_a_cluster_is_refused_at_startup(tmp_path, monkeypatch):
    monkeypatch.delenv("MS_CLICKHOUSE_URL", raising=False)
    with pytest.raises(
        ValidationError,
        match=r"MS_CLICKHOUSE_CLUSTER needs a ClickHouse server \(MS_CLICKHOUSE_URL\): "
        r"the embedded engine \(chDB\) has no cluster",
    ):
        Settings(clickhouse_cluster=CLUSTER, data_dir=tmp_path)
    res = CliRunner().invoke(main, ["migrate"], env={"MS_DATA_DIR": str(tmp_path), "MS_CLICKHOUSE_CLUSTER": CLUSTER})
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert "MS_CLICKHOUSE_CLUSTER needs a ClickHouse server (MS_CLICKHOUSE_URL)" in res.output, res.output
    assert not (tmp_path / "chdb").exists()  # refused before the embedded engine opened
    assert Settings(clickhouse_cluster="", data_dir=tmp_path).clickhouse_cluster is None  # empty: unset


def test_cluster_setting_on_a_server_is_checked_as_a_name(tmp_path):
    url = "http://u:p@127.0.0.1:1"  # never connected to: settings only
    assert Settings(clickhouse_url=url, clickhouse_cluster="prod-eu", data_dir=tmp_path).clickhouse_cluster == "prod-eu"
    with pytest.raises(ValidationError, match="MS_CLICKHOUSE_CLUSTER must be a cluster name") as err:
        Settings(clickhouse_url=url, clickhouse_cluster="a'; DROP", data_dir=tmp_path)
    assert "DROP" not in str(err.value)


@pytest.mark.parametrize("bad", ["", "1c", "-c", "a b", "c`", "c'", "c;DROP", "{cluster}", "a.b", "ä", "c" * 129])
def test_bad_cluster_names_are_refused(bad):
    with pytest.raises(StoreError, match="not a cluster name"):
        check_cluster_name(bad)
    with pytest.raises(StoreError, match="not a cluster name"):
        cluster_statements("CREATE VIEW v AS SELECT 1", bad, DB)


def test_a_name_with_a_hyphen_is_quoted(chdb):
    assert check_cluster_name("ms_cluster") == "ms_cluster"
    assert check_cluster_name("prod-eu") == "`prod-eu`"
    stmt = "CREATE TABLE IF NOT EXISTS t (tenant_id String, v UInt64) ENGINE = MergeTree ORDER BY tenant_id"
    local, dist = (canonical(chdb, s) for s in cluster_statements(stmt, "prod-eu", DB))
    assert local.startswith("CREATE TABLE IF NOT EXISTS t_local ON CLUSTER `prod-eu`\n")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/t_local', '{replica}')\n" in local
    assert dist == (
        f"CREATE TABLE IF NOT EXISTS t ON CLUSTER `prod-eu` AS {DB}.t_local\n"
        f"ENGINE = Distributed(`prod-eu`, {DB}, t_local, cityHash64(tenant_id))"
    )


@pytest.mark.parametrize(
    ("engine", "replicated"),
    [
        ("MergeTree", "ReplicatedMergeTree('{p}', '{{replica}}')"),
        ("ReplacingMergeTree(version)", "ReplicatedReplacingMergeTree('{p}', '{{replica}}', version)"),
        ("SummingMergeTree((a, b))", "ReplicatedSummingMergeTree('{p}', '{{replica}}', (a, b))"),
        ("CollapsingMergeTree(sign)", "ReplicatedCollapsingMergeTree('{p}', '{{replica}}', sign)"),
        ("AggregatingMergeTree()", "ReplicatedAggregatingMergeTree('{p}', '{{replica}}')"),
    ],
)
def test_engine_arguments_follow_the_two_replication_arguments(chdb, engine, replicated):
    stmt = f"CREATE TABLE t (k String, a UInt64, b UInt64, sign Int8, version UInt64) ENGINE = {engine} ORDER BY (k, a)"
    local, dist = (canonical(chdb, s) for s in cluster_statements(stmt, CLUSTER, DB))
    p = "/clickhouse/tables/{shard}/{database}/t_local"
    assert f"ENGINE = {replicated.format(p=p)}\n" in local
    assert dist.endswith("ENGINE = Distributed(ms_cluster, meterstream, t_local, cityHash64(k, a))")


def test_strings_and_comments_do_not_steer_the_rewrite(chdb):
    stmt = (
        "CREATE TABLE t (\n  a String DEFAULT 'ENGINE = Memory, ORDER BY (z)', -- ORDER BY (y), ENGINE = Log\n"
        "  b String COMMENT 'it''s \\' (x'\n) ENGINE /* = Memory */ = MergeTree ORDER BY (a, b) "
        "SETTINGS index_granularity = 8192"
    )
    local, dist = (canonical(chdb, s) for s in cluster_statements(stmt, CLUSTER, DB))
    assert "DEFAULT 'ENGINE = Memory, ORDER BY (z)'" in local and "COMMENT 'it\\'s \\' (x'" in local
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/t_local', '{replica}')" in local
    assert local.endswith("ORDER BY (a, b)\nSETTINGS index_granularity = 8192")
    assert dist.endswith("Distributed(ms_cluster, meterstream, t_local, cityHash64(a, b))")
    update = "ALTER TABLE t UPDATE a = 'x, ADD COLUMN y UInt8', b = 'z' WHERE 1"
    assert [canonical(chdb, s) for s in cluster_statements(update, CLUSTER, DB)] == [
        f"ALTER TABLE t_local ON CLUSTER {CLUSTER}\n    (UPDATE a = 'x, ADD COLUMN y UInt8', b = 'z' WHERE 1)"
    ]


def test_drops_drop_both_tables(chdb):
    out = [canonical(chdb, s) for s in cluster_statements("DROP TABLE IF EXISTS ledger SYNC", CLUSTER, DB)]
    assert out == [
        f"DROP TABLE IF EXISTS ledger ON CLUSTER {CLUSTER} SYNC",
        f"DROP TABLE IF EXISTS ledger_local ON CLUSTER {CLUSTER} SYNC",
    ]
    assert [canonical(chdb, s) for s in cluster_statements("DROP VIEW spend_by_user_day", CLUSTER, DB)] == [
        f"DROP VIEW spend_by_user_day ON CLUSTER {CLUSTER}"
    ]


@pytest.mark.parametrize(
    ("stmt", "why"),
    [
        ("CREATE MATERIALIZED VIEW mv TO t AS SELECT * FROM s", "materialized views"),
        ("CREATE TABLE db.t (a UInt8) ENGINE = MergeTree ORDER BY a", "not a statement the cluster rewrite knows"),
        ("CREATE TABLE t AS other", "column list"),
        ("CREATE TABLE t (a UInt8) ENGINE = Memory", "not Memory"),
        ("CREATE TABLE t (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", "not ReplicatedMergeTree"),
        ("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY tuple()", "plain columns"),
        ("CREATE TABLE t (ts DateTime) ENGINE = MergeTree ORDER BY toDate(ts)", "plain columns"),
        ("CREATE TABLE t (a UInt8) ENGINE = MergeTree PRIMARY KEY a", "without ORDER BY"),
        ("INSERT INTO t VALUES (1)", "not a statement the cluster rewrite knows"),
        ("RENAME TABLE a TO b", "not a statement the cluster rewrite knows"),
        ("DROP TABLE a, b", "one plain name"),
        ("CREATE VIEW v AS SELECT 'unterminated", "unterminated"),
    ],
)
def test_statements_it_does_not_know_are_refused(stmt, why):
    with pytest.raises(StoreError, match=re.escape(why)):
        cluster_statements(stmt, CLUSTER, DB)


def test_a_bad_migration_is_refused_before_any_statement_runs(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "0001_ok.sql").write_text("CREATE VIEW IF NOT EXISTS v AS SELECT 1;\n")
    (tmp_path / "m" / "0002_bad.sql").write_text("CREATE MATERIALIZED VIEW mv TO t AS SELECT 1;\n")
    with RecordingChdbStore(tmp_path / "chdb", DB) as store:
        store.command(BOOKKEEPING)  # single-node, so that migrate can read it
        store.commands.clear()
        # From here the store has a cluster, and keeps the statements without running them
        # (chDB cannot run cluster DDL): what matters is which statements reach it.
        store.cluster = CLUSTER
        store.command = lambda sql, params=None: store.commands.append(sql)
        with pytest.raises(StoreError, match="materialized views"):
            migrate(store, tmp_path / "m")
        ran = store.commands
    assert len(ran) == 2 and all("schema_migrations" in s for s in ran)  # the bookkeeping only
    assert not any("CREATE VIEW" in s for s in ran)


# --- a real server with Keeper and a one-shard cluster (needs Docker) ---------------------------

CLUSTER_XML = """<clickhouse>
  <keeper_server>
    <tcp_port>9181</tcp_port>
    <server_id>1</server_id>
    <log_storage_path>/var/lib/clickhouse/coordination/log</log_storage_path>
    <snapshot_storage_path>/var/lib/clickhouse/coordination/snapshots</snapshot_storage_path>
    <raft_configuration><server><id>1</id><hostname>localhost</hostname><port>9234</port></server></raft_configuration>
  </keeper_server>
  <zookeeper><node><host>localhost</host><port>9181</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <ms_cluster>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port><user>ms</user><password>ms-test</password></replica>
      </shard>
    </ms_cluster>
  </remote_servers>
</clickhouse>
"""


def _docker_reason() -> str | None:
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        return "testcontainers is not installed (pip install 'meterstream[test]')"
    from tests.conftest import docker_answers

    if not docker_answers():
        return (
            "no Docker engine answers (testcontainers needs one to start clickhouse/clickhouse-server:25.8 "
            "with Keeper and a one-shard cluster); only ClickHouse's parser checks the cluster DDL here"
        )
    return None


def test_migrations_on_a_real_cluster_server(tmp_path):
    reason = _docker_reason()
    if reason:
        pytest.skip(reason)
    try:
        from testcontainers.community.clickhouse import ClickHouseContainer
    except ImportError:  # testcontainers before the community package
        from testcontainers.clickhouse import ClickHouseContainer
    from streams.storage.server_store import ServerStore

    conf = tmp_path / "ms_cluster.xml"
    conf.write_text(CLUSTER_XML)
    container = ClickHouseContainer("clickhouse/clickhouse-server:25.8", username="ms", password="ms-test")
    container.with_volume_mapping(str(conf), "/etc/clickhouse-server/config.d/ms_cluster.xml", "ro")
    with container as ch:
        url = f"http://ms:ms-test@{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
        db = "t_" + uuid.uuid4().hex[:12]
        with ServerStore(url, db, CLUSTER) as store:
            every = [m.version for m in discover(Settings().migrations_dir)]
            assert [m.version for m in migrate(store, Settings().migrations_dir)] == every
            assert migrate(store, Settings().migrations_dir) == []  # recorded, through the Distributed table
            engines = {
                r["name"]: r["engine"]
                for r in store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
            }
            for name in SHARDING:
                assert engines[name] == "Distributed" and engines[f"{name}_local"].startswith("Replicated"), name
            row = {"tenant_id": "acme", "event_id": "e1", "cost": Decimal("0.000000000001"), "version": 1}
            store.insert("ledger", [row], dedup_token="tok-1")
            store.insert("ledger", [row], dedup_token="tok-1")  # a retried block: dropped by the shard
            assert store.query("SELECT count() AS n FROM ledger")[0]["n"] == 1
            store.insert("ledger", [row], dedup_token="tok-2")  # another block: kept, collapsed by FINAL
            assert store.query("SELECT count() AS n FROM ledger")[0]["n"] == 2
            [final] = store.query("SELECT count() AS n, sum(cost) AS c FROM ledger FINAL")
            assert final == {"n": 1, "c": Decimal("0.000000000001")}
