"""Rating, sink and alerts as separate processes (`meterstream worker --role rate|sink|alerts`)
on the real broker and engine: each is SIGKILLed in turn mid-stream, and the totals are exact and
every spend alert is delivered exactly once."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from pricing import load_catalog
from streams.harness.expected import as_rows, expected_totals, normalize
from streams.harness.generate import generate
from streams.harness.stack import Stack, alerts_in_topic, budgets_for

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def owners_of(stack: Stack, ports: list[int], flag: str) -> list[int]:
    """The ports whose /status sets `flag`, once some do (within 60 s); exactly one is expected."""
    deadline = time.monotonic() + 60
    owners: list[int] = []
    while time.monotonic() < deadline and not owners:
        try:
            owners = [p for p in ports if stack.health(p).get(flag)]
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    assert len(owners) == 1, owners
    return owners


def assert_alerts_once(stack: Stack, want: list[str], timeout: float) -> None:
    """Every expected alert reaches the topic (within `timeout`), none twice."""
    deadline = time.monotonic() + timeout
    while set(alerts_in_topic(stack)) != set(want) and time.monotonic() < deadline:
        time.sleep(2)
    delivered = alerts_in_topic(stack)
    assert want and sorted(set(delivered)) == want
    assert len(delivered) == len(set(delivered))  # none twice


def test_rate_and_sink_roles_killed_in_turn_are_exact(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    try:
        lines = [line for _, line in generate(24000, seed=51, now=NOW, duplicate_rate=0.1, bad=20)]
        exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        budgets, want = budgets_for(exp)
        (tmp_path / "budgets.json").write_text(json.dumps(budgets))
        stack.cli("budgets", "set", "--file", str(tmp_path / "budgets.json"))
        stack.produce(lines, batch=False)  # many records: the kills land mid-stream
        sink = stack.start_worker(role="sink")
        stack.start_worker(role="alerts")
        rate_a = stack.start_worker(role="rate")
        rate_b = stack.start_worker(role="rate")
        stack.wait_for_progress(rate_a, at_least=1000)
        assert "state_keys" not in stack.health(sink) and "rollup_keys" not in stack.health(rate_a)
        stack.kill_worker(rate_a)  # SIGKILL a rater: its partitions move to the other one
        time.sleep(3)
        stack.kill_worker(sink)  # SIGKILL the sink: it resumes from its committed offsets
        sink = stack.start_worker(sink)
        stack.wait_for_progress(rate_b, at_least=2000)
        stack.kill_worker(rate_b)
        stack.start_worker(rate_b)
        stack.start_worker(rate_a)
        stack.wait_until_exact(exp, timeout=300)
        for by, window in (("user", "minute"), ("model", "day")):
            assert normalize(stack.report(by, window), by, window) == as_rows(exp, by, window)
        assert_alerts_once(stack, want, timeout=60)
        assert stack.request(rate_b, "/read/counts", {})[0] == 503  # a rater holds no store
    finally:
        stack.stop()


def test_rate_sink_and_alerts_processes_killed_in_turn_are_exact(kafka_service, clickhouse_service, tmp_path):
    """Three roles, four processes: a rater, the sink, the active alerts process and a standby.
    Each is SIGKILLed in turn mid-stream; the totals are exact and every alert is delivered once."""
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    try:
        lines = [line for _, line in generate(20000, seed=53, now=NOW, duplicate_rate=0.1, bad=10)]
        exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        budgets, want = budgets_for(exp)
        (tmp_path / "budgets.json").write_text(json.dumps(budgets))
        stack.cli("budgets", "set", "--file", str(tmp_path / "budgets.json"))
        stack.produce(lines, batch=False)
        sink = stack.start_worker(role="sink")
        alerts_a = stack.start_worker(role="alerts")
        alerts_b = stack.start_worker(role="alerts")
        rate = stack.start_worker(role="rate")
        stack.wait_for_progress(rate, at_least=2000)
        assert "rollup_keys" not in stack.health(alerts_a) and "alerts_sent" not in stack.health(sink)
        owners = owners_of(stack, [alerts_a, alerts_b], "alerts_owner")  # one owns the sink topic
        standby = owners[0] ^ alerts_a ^ alerts_b
        stack.kill_worker(owners[0])  # the active alerts process: the standby takes over
        stack.kill_worker(rate)  # the rater: it resumes from its commit, re-emitting some rows
        rate = stack.start_worker(rate)
        stack.wait_for_progress(rate, at_least=1000)
        stack.kill_worker(sink)  # the sink: the alerts role waits for it before any lookup
        sink = stack.start_worker(sink)
        stack.wait_until_exact(exp, timeout=300)
        for by, window in (("user", "minute"), ("model", "day")):
            assert normalize(stack.report(by, window), by, window) == as_rows(exp, by, window)
        assert_alerts_once(stack, want, timeout=90)
        table = json.loads(stack.cli("alerts", "--format", "json").stdout)  # the sink copied the log
        assert sorted(r["alert_key"] for r in table) == want
        assert stack.health(standby)["alerts_sent"] > 0  # it took over mid-stream
        assert stack.request(standby, "/read/counts", {})[0] == 503  # the alerts role holds no store
    finally:
        stack.stop()


def test_a_standby_sink_takes_over_the_embedded_engine(kafka_service, clickhouse_service, tmp_path):
    """Two sink processes on one embedded engine: every sink partition goes to one of them (the
    other holds no store and stands by); SIGKILL it and the standby opens the engine and goes on."""
    if clickhouse_service.url:
        pytest.skip("a ClickHouse server: sink processes share the partitions instead")
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    try:
        lines = [line for _, line in generate(12000, seed=57, now=NOW, duplicate_rate=0.1)]
        exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        stack.produce(lines[:8000], batch=False)
        sinks = [stack.start_worker(role="sink"), stack.start_worker(role="sink")]
        rate = stack.start_worker(role="rate")
        stack.wait_for_progress(rate, at_least=3000)
        owners = owners_of(stack, sinks, "store_open")
        stack.kill_worker(owners[0])
        stack.produce(lines[8000:], batch=False)  # rows the standby must write (the first sink may have done the rest)
        stack.wait_until_exact(exp, timeout=300)
        standby = sinks[0] if owners[0] == sinks[1] else sinks[1]
        assert stack.health(standby)["store_open"] and stack.health(standby)["sink_rows"] > 0
    finally:
        stack.stop()
