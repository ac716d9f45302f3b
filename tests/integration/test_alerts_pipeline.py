"""Spend alerts on the real broker and engine, with local HTTP servers receiving webhooks."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import yaml

from streams.alerts.webhooks import url_label, verify_signature
from streams.harness.stack import Stack, alerts_in_topic

pytestmark = pytest.mark.integration
SECRET = "whsec-integration-7d3e"
TOKEN = "T0KEN-in-the-path-b2c4d6"  # a webhook URL's secret part: must never be stored, printed or logged
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY, MONTH = f"{NOW:%Y-%m-%d}", f"{NOW:%Y-%m}"


class Webhook:
    """A local endpoint: 'ok', 'flaky' (HTTP 500 for the first N calls) or 'dead' (never answers).
    It checks every signature with the shipped helper and refuses (401) what does not verify."""

    def __init__(self, mode: str, failures: int = 0) -> None:
        self.mode, self.failures, self.calls, self.bodies, self.unsigned = mode, failures, 0, [], 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.calls += 1
                if not verify_signature(
                    SECRET, self.headers.get("Meterstream-Timestamp"), body, self.headers.get("Meterstream-Signature")
                ):
                    hook.unsigned += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                assert self.headers["Idempotency-Key"] == json.loads(body)["idempotency_key"]
                if hook.mode == "dead":
                    time.sleep(3600)
                if hook.mode == "flaky" and hook.calls <= hook.failures:
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/{TOKEN}"

    def keys(self) -> list[str]:
        return sorted(b["idempotency_key"] for b in self.bodies)


def human_tasks(event_id: str, tenant: str, user: str, tasks: int) -> bytes:
    """0.21 USD per task (seed 002): easy sums."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": NOW.isoformat(),
            "tenant_id": tenant,
            "user_id": user,
            "provider": "bedrock",
            "model": "human-evaluation",
            "usage": {"human_tasks": tasks},
        }
    )


BUDGETS = [
    {"id": "acme-day", "tenant_id": "acme", "period": "day", "currency": "USD", "amount": "2.10"},
    {
        "id": "alice-month",
        "tenant_id": "acme",
        "user_id": "alice",
        "period": "month",
        "currency": "USD",
        "amount": "4.20",
        "thresholds": ["0.5", "0.8", "1"],
    },
    {
        "id": "heval-day",
        "tenant_id": "acme",
        "model": "human-evaluation",
        "period": "day",
        "currency": "USD",
        "amount": "10",
        "thresholds": ["0.25", "2"],
    },
]


def expected_keys(spend_by_budget: dict[str, Decimal]) -> list[str]:
    keys = []
    for b in BUDGETS:
        period = DAY if b["period"] == "day" else MONTH
        for t in b.get("thresholds", ["0.5", "0.8", "1"]):
            if spend_by_budget[b["id"]] >= Decimal(b["amount"]) * Decimal(t):
                keys.append(f"{b['id']}|{period}|{Decimal(t).normalize()}")
    return sorted(keys)


def make_stack(kafka_service, clickhouse_service, tmp_path, hooks: list[Webhook]) -> Stack:
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    stack.env.update(
        {
            "MS_ALERT_WEBHOOKS": ",".join(h.url for h in hooks),
            "MS_ALERT_WEBHOOK_SECRET": SECRET,
            "MS_ALERT_WEBHOOK_ATTEMPTS": "4",
            "MS_ALERT_WEBHOOK_TIMEOUT_S": "1",
        }
    )
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(BUDGETS))
    stack.cli("budgets", "set", "--file", str(path))
    return stack


def alerts_table(stack: Stack) -> list[dict]:
    return json.loads(stack.cli("alerts", "--format", "json").stdout)


def wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except AssertionError as exc:  # e.g. a CLI read while the worker is (re)opening the store
            last = exc
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last error: {last}")


def test_scripted_spend_crosses_thresholds_once_each(kafka_service, clickhouse_service, tmp_path):
    ok, flaky = Webhook("ok"), Webhook("flaky", failures=2)
    stack = make_stack(kafka_service, clickhouse_service, tmp_path, [ok, flaky])
    try:
        stack.start_worker()
        # alice: 4 + 6 tasks = 2.10 USD; bob: 11 tasks (one event jumps acme-day from 50% over 100%)
        lines = [
            human_tasks("a1", "acme", "alice", 4),
            human_tasks("a2", "acme", "alice", 6),
            human_tasks("b1", "acme", "bob", 11),
            human_tasks("a2", "acme", "alice", 6),  # a duplicate
            human_tasks("z1", "zeta", "zed", 100),
        ]  # another tenant: no budget
        stack.produce(lines)
        spend = {"acme-day": Decimal("4.41"), "alice-month": Decimal("2.10"), "heval-day": Decimal("4.41")}
        want = expected_keys(spend)
        assert want == [
            "acme-day|%s|0.5" % DAY,
            "acme-day|%s|0.8" % DAY,
            "acme-day|%s|1" % DAY,
            "alice-month|%s|0.5" % MONTH,
            "heval-day|%s|0.25" % DAY,
        ]
        wait_for(lambda: sorted(r["alert_key"] for r in alerts_table(stack)) == want, what="alerts in ClickHouse")
        wait_for(lambda: ok.keys() == want, what="webhook deliveries")
        wait_for(lambda: flaky.keys() == want, what="flaky webhook deliveries after retries")
        assert sorted(alerts_in_topic(stack)) == want
        assert flaky.calls >= len(want) + 2  # two 500s were retried
        body = ok.bodies[0]
        assert body["text"].startswith("meterstream: budget") and body["currency"] == "USD"
        assert isinstance(body["spend"], str) and {
            "budget",
            "scope",
            "period",
            "threshold",
            "amount",
            "event",
            "idempotency_key",
        } <= set(body)
        rows = alerts_table(stack)
        wait_for(lambda: all("delivered" in r["webhook_status"] for r in alerts_table(stack)), what="status")
        assert ok.unsigned == flaky.unsigned == 0  # every request was signed with the shared secret
        # a budget created now counts the spend already in its period: 4.41 of 4 USD -> 0.5, 0.8, 1 at once
        stack.cli(
            "budgets",
            "set",
            "--id",
            "acme-late",
            "--tenant",
            "acme",
            "--period",
            "day",
            "--currency",
            "USD",
            "--amount",
            "4",
        )
        wait_for(lambda: len(alerts_table(stack)) == len(rows) + 3, what="alerts of a budget created mid-period")
        # restart: nothing fires again
        port = stack.ports[0]
        stack.kill_worker(port)
        stack.start_worker(port)
        stack.produce([human_tasks("a9", "acme", "alice", 1)])
        time.sleep(15)
        assert len(sorted(alerts_in_topic(stack))) == len(rows) + 3 == len(set(sorted(alerts_in_topic(stack))))
    finally:
        stack.stop()


def test_sigkill_between_crossing_and_delivery(kafka_service, clickhouse_service, tmp_path):
    ok = Webhook("ok")
    stack = make_stack(kafka_service, clickhouse_service, tmp_path, [ok])
    try:
        stack.env["MS_FAULT_EXIT_AFTER_ALERT_OUTBOX"] = "1"  # the sink exits right after writing the outbox
        port = stack.start_worker()
        stack.produce([human_tasks("a1", "acme", "alice", 6)])  # 1.26 of 2.10: acme-day 0.5
        stack.workers[port].wait(120)  # it died between the crossing and its delivery
        assert sorted(alerts_in_topic(stack)) == [] and ok.keys() == []
        del stack.env["MS_FAULT_EXIT_AFTER_ALERT_OUTBOX"]
        stack.workers.pop(port)
        stack.start_worker(port)
        want = [f"acme-day|{DAY}|0.5"]  # 1.26 USD: 60% of acme-day; alice-month 30%, heval-day 12.6%
        wait_for(lambda: sorted(alerts_in_topic(stack)) == want, what="delivery after the restart")
        wait_for(lambda: ok.keys() == want, what="webhook after the restart")
        assert sorted(r["alert_key"] for r in alerts_table(stack)) == want
    finally:
        stack.stop()


def test_dead_webhook_is_recorded_failed_and_never_stalls_counting(kafka_service, clickhouse_service, tmp_path):
    dead = Webhook("dead")
    stack = make_stack(kafka_service, clickhouse_service, tmp_path, [dead])
    try:
        stack.start_worker()
        from streams.harness.generate import generate

        lines = [human_tasks("a1", "acme", "alice", 20)]
        lines += [line for _, line in generate(2000, seed=5, now=NOW)]
        t0 = time.monotonic()
        stack.produce(lines)
        stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)), timeout=120)
        assert time.monotonic() - t0 < 90
        want = expected_keys(
            {"acme-day": Decimal("4.20"), "alice-month": Decimal("4.20"), "heval-day": Decimal("4.20")}
        )
        assert len(want) == 7
        wait_for(
            lambda: all("failed after 4 attempts" in r["webhook_status"] for r in alerts_table(stack))
            and sorted(r["alert_key"] for r in alerts_table(stack)) == want,
            timeout=120,
            what="failed webhook status",
        )
        assert sorted(alerts_in_topic(stack)) == want  # Kafka delivery is independent of the webhook
        # the URL (its token) is in none of: the alerts table, the CLI's output, the worker's log
        label = url_label(dead.url)
        outputs = [stack.cli("alerts", "--format", "json").stdout.decode(), stack.cli("alerts").stdout.decode()]
        logs = [p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log")]
        assert all(r["webhook_status"].startswith(f"{label}: failed") for r in json.loads(outputs[0]))
        assert any(f"webhook {label} for alert" in text for text in logs)  # the failures were logged, by label
        for text in outputs + logs:
            assert TOKEN not in text and dead.url not in text
    finally:
        stack.stop()
