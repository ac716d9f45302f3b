"""The worker's web port from the outside, as an attacker on the network or in a browser would
probe it: a real `meterstream worker` on the real broker and engine."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.harness.generate import generate
from streams.harness.stack import CLI, Stack

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def raw(
    port: int, path: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Listener:
    """A loopback TCP port that records whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def worker(kafka_service, clickhouse_service, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("websec")
    stack = Stack(kafka_service.bootstrap, tmp, clickhouse_service.url)
    lines = [line for _, line in generate(2000, seed=31, now=NOW)]
    stack.produce(lines)
    port = stack.start_worker()
    stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)))
    yield stack, port
    stack.stop()


def ledger_count(stack: Stack) -> int:
    return int(stack.query("SELECT count() AS n FROM ledger")[0]["n"])


def test_binds_to_loopback_only(worker):
    stack, port = worker
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    addrs = {line.split()[3] for line in out.splitlines() if line.strip()}
    assert addrs == {f"127.0.0.1:{port}"}, addrs


def test_token_file_is_private(worker):
    stack, _ = worker
    path = Path(stack.env["MS_DATA_DIR"]) / "web-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32


def test_every_endpoint_but_health_needs_the_token(worker):
    stack, port = worker
    assert raw(port, "/health") == (200, {"ok": True})  # liveness says nothing else
    for path, body in [
        ("/status", None),
        ("/sql", b'{"sql": "SELECT 1"}'),
        ("/read/counts", b"{}"),
        ("/read/event_rows", b"{}"),
        ("/metrics", None),
    ]:
        method = "POST" if body is not None else "GET"
        for auth in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": stack.token()}):
            status, answer = raw(
                port, path, method=method, body=body, headers={"Content-Type": "application/json", **auth}
            )
            assert status == 401, (path, auth, status, answer)
    status, answer = stack.request(port, "/status")
    assert status == 200 and answer["stats"]["counted"] > 0


def test_cross_site_posts_and_foreign_hosts_are_refused(worker):
    stack, port = worker
    auth = {"Authorization": f"Bearer {stack.token()}"}
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _ = raw(
            port, "/sql", method="POST", body=b'{"sql": "SELECT 1"}', headers={**auth, "Content-Type": ctype}
        )
        assert status == 415, ctype
    status, answer = raw(port, "/status", headers={**auth, "Host": "attacker.example:6066"})
    assert status == 421, answer  # DNS rebinding: a name that resolves here is still not ours
    for body in (b"[1, 2]", b'"SELECT 1"', b"not json", b"42"):
        status, answer = raw(
            port, "/sql", method="POST", body=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert status == 400 and "error" in answer, (body, answer)


def test_faust_pages_and_fault_injection_are_absent(worker):
    stack, port = worker
    for path in ("/", "/table/state/", "/router/", "/graph/", "/stats/", "/fault/sink", "/fault/recover", "/query"):
        for method, body in (("GET", None), ("POST", {"fail": True})):
            status, _ = stack.request(port, path, body) if method == "POST" else stack.request(port, path)
            assert status == 404, (path, method, status)


ATTACKS = {
    "multiple statements": "SELECT 1; DROP TABLE ledger",
    "WITH ... INSERT": "WITH 1 AS x INSERT INTO ledger SELECT * FROM ledger",
    "ALTER DELETE": "ALTER TABLE ledger DELETE WHERE 1",
    "DROP": "DROP TABLE ledger",
    "SET readonly": "SET readonly = 1",
    "INTO OUTFILE": "SELECT * FROM ledger INTO OUTFILE '{out}'",
    "INSERT INTO FUNCTION file": "INSERT INTO FUNCTION file('{out}', 'TSV') SELECT 1",
    "file() table function": "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
    "file() scalar": "SELECT file('/proc/self/environ') AS e",
    "file() in a subquery": "SELECT count() FROM ledger WHERE event_id IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    "url()": "SELECT * FROM url('http://127.0.0.1:{port}/', 'LineAsString')",
    "s3()": "SELECT * FROM s3('http://127.0.0.1:{port}/b/k.csv', 'CSV')",
    "remote()": "SELECT * FROM remote('127.0.0.1:{port}', system.one)",
    "mysql()": "SELECT * FROM mysql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
    "postgresql()": "SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
    "url() in a JOIN": "SELECT * FROM ledger AS l JOIN url('http://127.0.0.1:{port}/', 'CSV', 'a String') AS u ON 1",
    "per-query SETTINGS": "SELECT count() FROM ledger SETTINGS max_execution_time = 100000, readonly = 0",
    "FORMAT": "SELECT * FROM ledger FORMAT TSV",
    "system tables": "SELECT * FROM system.users",
    "another database": "SELECT * FROM default.ledger",
    "SYSTEM": "SYSTEM SHUTDOWN",
    "EXPLAIN": "EXPLAIN SELECT 1",
    "empty": "   ",
}


@pytest.mark.parametrize("kind", list(ATTACKS))
def test_sql_attacks_are_refused_with_nothing_changed(worker, tmp_path, kind):
    stack, port = worker
    listener = Listener()
    out = tmp_path / "planted.pth"
    try:
        before = ledger_count(stack)
        sql = ATTACKS[kind].format(out=out, port=listener.port)
        status, answer = stack.post(port, "/sql", {"sql": sql})
        assert status == 400 and "refused" in answer["error"], (kind, status, answer)
        time.sleep(0.3)
        assert not out.exists()
        assert listener.connections == 0
        assert ledger_count(stack) == before
    finally:
        listener.close()


def test_plain_selects_run_read_only_with_limits(worker):
    stack, port = worker
    rows = stack.query(
        "SELECT tenant_id, sum(cost) AS cost FROM spend_by_user_day WHERE tenant_id != {t:String} "
        "GROUP BY tenant_id ORDER BY tenant_id",
        {"t": "nobody"},
    )
    assert rows and all(isinstance(r["cost"], str) or r["cost"] is not None for r in rows)
    status, answer = stack.post(port, "/sql", {"sql": "SELECT number FROM numbers(1000000)"})
    assert status == 400 and "table function" in answer["error"]
    status, answer = stack.post(port, "/sql", {"sql": "SELECT 1 FROM ledger AS a, ledger AS b"})
    assert status == 400 and "Limit for result exceeded" in answer["error"], answer  # MS_SQL_MAX_ROWS


def test_named_reads_check_their_parameters(worker):
    stack, port = worker
    status, rows = stack.post(port, "/read/spend", {"by": "user", "window": "day"})
    assert status == 200 and rows
    for name, body in [
        ("spend", {"by": "user; DROP TABLE ledger"}),
        ("spend", {"by": "user", "window": "week"}),
        ("spend", {"by": "user", "extra": 1}),
        ("rejects", {"limit": -1}),
        ("spend", {"by": "user", "since": "garbage"}),
        ("nope", {}),
    ]:
        status, answer = stack.post(port, f"/read/{name}", body)
        assert status == 400 and "error" in answer, (name, body, answer)


def test_sink_keeps_writing_after_the_attacks(worker):
    """`SET readonly=1` through the old endpoint stopped all later sink writes: counting goes on."""
    stack, port = worker
    stack.post(port, "/sql", {"sql": "SET readonly = 1"})
    more = [line for _, line in generate(300, seed=32, now=NOW)]
    stack.produce(more)
    stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)))


def test_the_cli_reads_through_the_worker_with_its_token(worker):
    stack, _ = worker
    rows = json.loads(stack.cli("sql", "SELECT count() AS n FROM ledger FINAL", "--format", "json").stdout)
    assert int(rows[0]["n"]) > 0
    env = {**stack.env, "MS_WEB_TOKEN": "not-the-token-0123456789"}
    proc = subprocess.run([*CLI, "report", "--by", "user"], env=env, capture_output=True, timeout=120)
    assert proc.returncode != 0 and b"bearer token" in proc.stderr and b"Traceback" not in proc.stderr


def test_fault_injection_only_when_enabled(kafka_service, clickhouse_service, tmp_path):
    """MS_FAULT_INJECTION=1 (chaos runs, tests): /fault/recover re-executes the worker in place;
    it comes back on its own (same pid) and counting stays exact."""
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url, extra_env={"MS_FAULT_INJECTION": "1"})
    try:
        lines = [line for _, line in generate(6000, seed=33, now=NOW, duplicate_rate=0.1)]
        stack.produce(lines, batch=False)
        port = stack.start_worker()
        pid = stack.workers[port].pid
        stack.wait_for_progress(port, at_least=500)
        assert stack.post(port, "/fault/recover", {}) == (200, {"recovering": True})
        stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)))
        assert stack.workers[port].poll() is None and stack.workers[port].pid == pid
        rec = stack.health(port)["recoveries"]  # more than one if Faust dropped a message after it
        log = (stack.tmp / f"worker-{port}.log").read_text(errors="replace")
        assert rec["count"] >= 1 and "recovering (1 since start): fault injection;" in log
        assert os.path.exists(f"/proc/{pid}")
    finally:
        stack.stop()
