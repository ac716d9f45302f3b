"""The CLI's output and errors: table cells are shown as they are (never read as Rich markup),
bad times and store errors end a command with one clear line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
import socket
from decimal import Decimal

import pytest
from click.testing import CliRunner

from streams.cli.main import main
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

UTC = dt.UTC
USERS = ["[/x]", "[b]alice", "[red]mallory[/red]", ":smile:", "plain"]


def run(args: list[str], tmp_path, **env: str):
    return CliRunner().invoke(main, args, env={"MS_DATA_DIR": str(tmp_path), **env}, terminal_width=200)


def error_lines(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line for line in output.splitlines() if line.startswith("Error")]


@pytest.fixture
def spend_store(tmp_path):
    """A migrated chDB with one month of spend for users whose ids look like markup."""
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        start = dt.datetime(2026, 3, 1, tzinfo=UTC)
        store.insert(
            "rollup_user_month",
            [
                {
                    "window_start": start,
                    "tenant_id": "acme",
                    "user_id": u,
                    "currency": "USD",
                    "src_partition": 0,
                    "cost": Decimal(f"{i + 1}.5"),
                    "events": i + 1,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "images": 0,
                    "guardrail_units": 0,
                    "version": 1,
                }
                for i, u in enumerate(USERS)
            ],
        )
    return tmp_path


def test_report_table_shows_markup_like_user_ids_as_they_are(spend_store):
    res = run(["report", "--by", "user"], spend_store)
    assert res.exit_code == 0, res.output
    cells = [c.strip() for line in res.stdout.splitlines() for c in line.split("│")]
    for u in USERS:
        assert u in cells, f"{u!r} not shown as is:\n{res.output}"
    as_json = run(["report", "--by", "user", "--format", "json"], spend_store)
    assert sorted(r["user_id"] for r in json.loads(as_json.stdout)) == sorted(USERS)


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--by", "user", "--since", "garbage"],
        ["report", "--by", "user", "--until", "2026-13-45T00:00:00Z"],
        ["rerate", "--since", "garbage", "--until", "2026-10-02T00:00:00Z"],
        ["rerate", "--since", "2026-10-01T00:00:00Z", "--until", "yesterday"],
    ],
)
def test_a_bad_time_is_one_usage_error(args, tmp_path):
    res = run(args, tmp_path)
    assert res.exit_code == 2
    [line] = error_lines(res.output)
    option = "--since" if "--since" in line else "--until"
    assert f"Invalid value for '{option}'" in line and "is not an RFC 3339 time" in line
    assert not (tmp_path / "chdb").exists()  # refused before touching the store


def test_a_good_time_still_works(spend_store):
    res = run(
        [
            "report",
            "--by",
            "user",
            "--since",
            "2026-03-01T00:00:00Z",
            "--until",
            "2026-04-01T00:00:00+00:00",
            "--format",
            "json",
        ],
        spend_store,
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == len(USERS)
    # no broker answers here: the report says it cannot tell whether events wait, on stderr
    assert res.stderr.startswith("warning: cannot tell whether events are waiting: Kafka at ")
    empty = run(["report", "--by", "user", "--since", "2026-04-01T00:00:00Z", "--format", "json"], spend_store)
    assert json.loads(empty.stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--by", "user"],
        ["report", "--by", "model", "--window", "day"],
        ["rejects"],
        ["alerts"],
        ["rerate", "--since", "2026-10-01T00:00:00Z", "--until", "2026-10-02T00:00:00Z"],
    ],
)
def test_a_store_error_is_one_line(args, tmp_path):
    """A chDB directory without the tables (never migrated): ClickHouse's own error, on one line."""
    res = run(args, tmp_path)
    assert res.exit_code == 3, res.output
    [line] = error_lines(res.output)
    assert len(res.output.strip().splitlines()) == 1
    assert "UNKNOWN_TABLE" in line or "does not exist" in line, line


def test_an_unreachable_server_is_one_line_without_its_password(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(
        ["report", "--by", "user"], tmp_path, MS_CLICKHOUSE_URL=f"http://meterstream:pa55-w0rd-zz@127.0.0.1:{port}"
    )
    assert res.exit_code == 3
    [line] = error_lines(res.output)
    assert "cannot connect to the ClickHouse server" in line
    assert "pa55-w0rd-zz" not in res.output
