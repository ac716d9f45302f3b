"""What an analyst's read may take from the engine the ledger is written with: memory, rows and
bytes read, and, on the embedded engine, time while a write waits (streams/storage/chdb_store.py).
Real chDB (or the session's server, MS_TEST_CLICKHOUSE_URL); no Kafka."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
import time
import uuid

import pytest

from pricing import load_catalog
from pricing.rating import Rejection, rate
from schemas.records import ledger_row
from streams.analyst.reader import run_checked_sql
from streams.analyst.sql_guard import SqlGuard
from streams.harness.generate import generate
from streams.harness.stack import CLI
from streams.settings import Settings
from streams.storage import StoreError, open_store
from streams.storage.base import (
    DEFAULT_EMBEDDED_TIMEOUT_S,
    DEFAULT_MAX_BYTES_READ,
    DEFAULT_MAX_MEMORY_MB,
    DEFAULT_MAX_ROWS_READ,
)
from streams.storage.migrations import migrate

pytestmark = pytest.mark.integration
BOUND_S = 2  # MS_SQL_EMBEDDED_TIMEOUT_S in these tests
SLACK_S = 1.5  # the engine checks its time limit between blocks of rows; measured well under 0.3 s here
# Eight billion row combinations: minutes of work, were it not stopped.
HEAVY = "SELECT count() FROM ledger AS a, ledger AS b, ledger AS c WHERE a.cost + b.cost + c.cost > 1000000"
# Between 128 and 256 MiB (three million strings gathered): over 64 MiB, well under 512.
HUNGRY = "SELECT length(groupArray(toString(x))) AS n FROM (SELECT arrayJoin(range(3000000)) AS x)"


@pytest.fixture
def settings(clickhouse_service):
    return clickhouse_service.settings("t_" + uuid.uuid4().hex[:12], sql_timeout_s=60, sql_embedded_timeout_s=BOUND_S)


@pytest.fixture
def store(settings):
    with open_store(settings) as s:
        migrate(s, settings.migrations_dir)
        s.command(
            "INSERT INTO ledger (tenant_id, event_id, user_id, model, ts, currency, cost) "
            "SELECT 'acme', toString(number), 'u' || toString(number % 10), 'gpt-4o', now64(3), 'USD', "
            "number / 1000 FROM numbers(2000)"
        )
        s.command("CREATE TABLE probe (k UInt32) ENGINE = MergeTree ORDER BY k")
        yield s


def test_the_settings_defaults_are_the_stores():
    s = Settings()
    assert (
        (s.sql_max_memory_mb, s.sql_max_rows_read, s.sql_max_bytes_read, s.sql_embedded_timeout_s)
        == (DEFAULT_MAX_MEMORY_MB, DEFAULT_MAX_ROWS_READ, DEFAULT_MAX_BYTES_READ, DEFAULT_EMBEDDED_TIMEOUT_S)
        == (512, 200_000_000, 20 * 1024**3, 5)
    )


def test_every_limit_reaches_the_engine(store, settings):
    """The settings an analyst's read runs under, as the engine reports them (the guard would
    refuse getSetting: this goes to the store's read-only path directly)."""
    s = settings.model_copy(
        update={"sql_max_memory_mb": 300, "sql_max_rows_read": 12345, "sql_max_bytes_read": 67890, "sql_max_rows": 777}
    )
    [row] = store.query_readonly(
        "SELECT getSetting('readonly') AS ro, getSetting('max_memory_usage') AS mem, "
        "getSetting('max_rows_to_read') AS rows_read, getSetting('max_bytes_to_read') AS bytes_read, "
        "getSetting('max_result_rows') AS result_rows, getSetting('max_result_bytes') AS result_bytes, "
        "getSetting('max_block_size') AS block, toFloat64(getSetting('max_execution_time')) AS t",
        max_rows=s.sql_max_rows,
        timeout_s=s.sql_timeout_s,
        max_memory_mb=s.sql_max_memory_mb,
        max_rows_read=s.sql_max_rows_read,
        max_bytes_read=s.sql_max_bytes_read,
        embedded_timeout_s=s.sql_embedded_timeout_s,
    )
    assert (
        row["ro"],
        row["mem"],
        row["rows_read"],
        row["bytes_read"],
        row["result_rows"],
        row["result_bytes"],
        row["block"],
    ) == (1, 300 * 1024 * 1024, 12345, 67890, 777, 150 * 1024 * 1024, 8192)
    # the embedded engine, which the sink shares, bounds the time by MS_SQL_EMBEDDED_TIMEOUT_S
    assert row["t"] == (BOUND_S if store.analyst_reads_block_writes else 60)


def test_an_insert_waits_at_most_the_bound_behind_heavy_analyst_reads(store, settings):
    """Three heavy analyst reads are running or queued when the sink inserts: the insert goes
    after the one running (stopped by the time bound), before the other two."""
    if not store.analyst_reads_block_writes:
        pytest.skip("a server runs analysts' reads on their own connection, beside the writes")
    canonical = SqlGuard(store, settings.clickhouse_database).canonical(HEAVY)
    outcomes: list[tuple[float, str]] = []

    def analyst() -> None:
        try:
            store.query_readonly(
                canonical,
                max_rows=settings.sql_max_rows,
                timeout_s=settings.sql_timeout_s,
                embedded_timeout_s=settings.sql_embedded_timeout_s,
            )
            outcomes.append((time.monotonic(), "finished"))
        except StoreError as exc:
            outcomes.append((time.monotonic(), str(exc)))

    readers = [threading.Thread(target=analyst) for _ in range(3)]
    for t in readers:
        t.start()
    deadline = time.monotonic() + 10
    while not store._lock._busy:  # the first read holds the engine
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # the other two are queued behind it
    start = time.monotonic()
    store.insert("probe", [{"k": 1}])
    inserted = time.monotonic()
    for t in readers:
        t.join(60)
    assert 0.3 < inserted - start <= BOUND_S + SLACK_S, inserted - start  # it waited, for one read only
    assert store.query("SELECT count() AS n FROM probe") == [{"n": 1}]
    assert len(outcomes) == 3 and all("TIMEOUT_EXCEEDED" in why for _, why in outcomes), outcomes
    ends = sorted(t for t, _ in outcomes)
    assert inserted < ends[1], "the insert went before the queued analyst reads"
    assert ends[2] - start >= 2 * BOUND_S - SLACK_S  # they then ran one after another, each stopped at the bound


def test_the_bound_is_the_shorter_of_the_two_timeouts(store, settings):
    s = settings.model_copy(update={"sql_timeout_s": 1, "sql_embedded_timeout_s": 30})
    start = time.monotonic()
    with pytest.raises(StoreError, match="TIMEOUT_EXCEEDED"):
        run_checked_sql(store, s, HEAVY, None)
    assert time.monotonic() - start < 1 + SLACK_S


def test_a_memory_hungry_query_is_refused_and_the_engine_goes_on(store, settings):
    low = settings.model_copy(update={"sql_max_memory_mb": 64})
    with pytest.raises(StoreError) as err:
        run_checked_sql(store, low, HUNGRY, None)
    message = str(err.value)
    assert "MEMORY_LIMIT_EXCEEDED" in message and "\n" not in message.strip(), message
    # the same query under the default limit (512 MiB) answers: the limit is what refused it
    assert run_checked_sql(store, settings, HUNGRY, None) == [{"n": 3_000_000}]
    # a GROUP BY over the ledger with more groups than the memory holds: refused, not grown
    with pytest.raises(StoreError, match="MEMORY_LIMIT_EXCEEDED"):
        run_checked_sql(
            store,
            settings.model_copy(update={"sql_max_memory_mb": 16}),
            "SELECT a.event_id, b.event_id, count() FROM ledger AS a, ledger AS b GROUP BY a.event_id, b.event_id",
            None,
        )
    assert store.query("SELECT count() AS n FROM ledger") == [{"n": 2000}]


def test_rows_and_bytes_read_are_limited(store, settings):
    query = "SELECT sum(cost) AS c FROM ledger WHERE user_id != ''"
    assert run_checked_sql(store, settings, query, None)[0]["c"] > 0
    with pytest.raises(StoreError, match="TOO_MANY_ROWS"):
        run_checked_sql(store, settings.model_copy(update={"sql_max_rows_read": 1000}), query, None)
    with pytest.raises(StoreError, match="TOO_MANY_BYTES"):
        run_checked_sql(store, settings.model_copy(update={"sql_max_bytes_read": 1000}), query, None)
    # a subquery's reads count too
    with pytest.raises(StoreError, match="TOO_MANY_ROWS"):
        run_checked_sql(
            store,
            settings.model_copy(update={"sql_max_rows_read": 3000}),
            "SELECT count() FROM ledger WHERE event_id IN (SELECT event_id FROM ledger WHERE cost > 0)",
            None,
        )


def test_the_cli_says_one_line_when_a_query_is_over_the_memory_limit(tmp_path):
    """`meterstream sql` in its own process (an embedded engine no worker holds): a line, exit 1."""
    env = {**os.environ, "MS_DATA_DIR": str(tmp_path), "MS_SQL_MAX_MEMORY_MB": "64"}
    env.pop("MS_CLICKHOUSE_URL", None)
    proc = subprocess.run([*CLI, "sql", HUNGRY], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MEMORY_LIMIT_EXCEEDED" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    proc = subprocess.run(
        [*CLI, "sql", HUNGRY, "--format", "json"],
        env={**env, "MS_SQL_MAX_MEMORY_MB": "512"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "3000000" in proc.stdout, proc


def test_a_wide_cross_join_ends_at_the_result_limit_not_the_memory_limit(store, settings):
    """Real ledger rows (2000 generated events priced with the shipped catalogs), written 50 at a
    time as the sink does: the join's blocks are small enough that the result limit
    (MS_SQL_MAX_ROWS) stops it, as test_web_security expects of a real worker. With the engine's
    default join blocks this query took the 512 MiB at once (MEMORY_LIMIT_EXCEEDED)."""
    catalog = load_catalog(Settings().catalog_dir)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = []
    for offset, (_, line) in enumerate(generate(2000, seed=31, now=now)):
        priced = rate(line if isinstance(line, bytes) else line.encode(), catalog)
        assert not isinstance(priced, Rejection), priced
        rows.append(ledger_row(priced, priced["ts"], 0, offset, version=1))
    store.command("TRUNCATE TABLE ledger")
    for i in range(0, len(rows), 50):
        store.insert("ledger", rows[i : i + 50])
    roomy = settings.model_copy(update={"sql_embedded_timeout_s": 30})  # time is not what this is about
    with pytest.raises(StoreError, match="Limit for result exceeded"):
        run_checked_sql(store, roomy, "SELECT * FROM ledger AS a, ledger AS b, ledger AS c", None)
