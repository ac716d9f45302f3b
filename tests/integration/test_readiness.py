"""What an operator sees is true (streams/health.py): `GET /ready` fails, with the reason, when
the sink cannot write to the store and when Kafka stops under a running worker, and recovers
after each; `/health` stays liveness; `meterstream status` shows the roles, their partitions and
the lag; `report` says how many events its totals do not hold yet; `meterstream up` while the
worker holds the embedded engine asks it which migrations it has. The counting stays exact
throughout. On a broker of the test's own (it is stopped), never the session's."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request

import pytest

from streams.harness.generate import generate
from streams.harness.stack import Broker, Stack

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ready(stack: Stack, port: int) -> tuple[int | None, dict]:
    try:
        status, body = stack.request(port, "/ready", timeout=10)
    except OSError as exc:
        return None, {"error": str(exc)}
    return status, body


def wait_ready(stack: Stack, port: int, want: int, timeout: float, saying: str = "") -> dict:
    """Wait until /ready answers `want` (and, for 503, a problem containing `saying`)."""
    deadline = time.monotonic() + timeout
    seen: tuple[int | None, dict] = (None, {})
    while time.monotonic() < deadline:
        seen = ready(stack, port)
        if seen[0] == want and (want == 200 or any(saying in p for p in seen[1].get("problems", []))):
            return seen[1]
        time.sleep(1)
    raise AssertionError(f"/ready never answered {want} {saying!r} within {timeout} s; last: {seen}")


def liveness(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:  # no token: liveness
        return int(resp.status)


def scrape(stack: Stack, port: int) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {stack.token()}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def metric(text: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def test_ready_fails_with_the_store_or_kafka_away_and_recovers(tmp_path):
    broker = Broker(tmp_path / "kafka").start()
    stack = Stack(broker.bootstrap, tmp_path, extra_env={"MS_FAULT_INJECTION": "1"})
    try:
        port = stack.start_worker()
        wait_ready(stack, port, 200, timeout=120)
        assert liveness(port) == 200
        with pytest.raises(urllib.error.HTTPError) as refused:  # readiness is behind the token
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert refused.value.code == 401

        # `up` again while the worker holds the embedded engine: it asks the worker, no lock error
        up = stack.cli("up")
        assert b"holds the embedded engine; its migrations are current" in up.stderr, up.stderr

        status = stack.cli("status").stdout.decode()
        assert f"worker:     http://127.0.0.1:{port} ready" in status, status
        for role, held in (("rating", 4), ("sink", 5), ("alerts", 4)):  # the sink also reads the alert log
            assert f"  {role:<7} holds {held} partition(s)" in status, status

        # the store away: the sink's writes fail; /ready says so, the report says what waits
        stack.post(port, "/fault/sink", {"fail": True})
        first = [line for _, line in generate(600, seed=61, now=NOW)]
        stack.produce(first)
        body = wait_ready(stack, port, 503, timeout=60, saying="the sink cannot write to the store")
        assert body["ready"] is False
        assert liveness(port) == 200  # still alive: a supervisor must not kill it
        assert metric(scrape(stack, port), "meterstream_ready") == 0
        deadline = time.monotonic() + 60
        while True:  # the probe sees the sink's lag within its 5 s
            report = stack.cli("report", "--by", "user", "--format", "json")
            if b"sink records waiting to be written" in report.stderr or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert b"warning: not in these totals yet: " in report.stderr, report.stderr
        stack.post(port, "/fault/sink", {"fail": False})
        wait_ready(stack, port, 200, timeout=60)
        stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)), timeout=120)
        deadline = time.monotonic() + 60
        while True:  # the groups commit on their own interval, and the probe reads them every 5 s
            text = scrape(stack, port)
            lags = [line for line in text.splitlines() if line.startswith("meterstream_consumer_lag{")]
            if all(line.endswith(" 0.0") for line in lags) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert metric(text, "meterstream_ready") == 1 and metric(text, "meterstream_kafka_reachable") == 1
        assert len(lags) == 4 + 5 + 4 and all(line.endswith(" 0.0") for line in lags), lags
        report = stack.cli("report", "--by", "user", "--format", "json")
        assert b"warning" not in report.stderr, report.stderr  # nothing waits

        # Kafka stopped under the running worker: /ready fails within a probe or two, and recovers
        broker.stop()
        body = wait_ready(stack, port, 503, timeout=60, saying=f"Kafka at {broker.bootstrap} cannot be reached")
        assert liveness(port) == 200
        status_code, full = stack.request(port, "/status", timeout=10)
        assert status_code == 200 and full["ok"] is False and full["kafka"]["reachable"] is False
        broker.start()
        wait_ready(stack, port, 200, timeout=180)
        second = [line for _, line in generate(400, seed=62, now=NOW)]
        stack.produce(second)
        stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)), timeout=180)
        assert stack.workers[port].poll() is None  # the same process throughout
    finally:
        stack.stop()
        broker.remove()
