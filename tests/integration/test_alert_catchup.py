"""Delivery that catches up (issue 21), on the real broker and engine with a real receiver on
loopback: a webhook that refused an alert gets it after it comes back and the worker restarts
(the same body, byte for byte, and the same Idempotency-Key); `alerts resend` delivers again;
`budgets status` shows the spend and the thresholds crossed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.alerts.webhooks import url_label, verify_signature
from tests.integration.test_alerts_pipeline import DAY, SECRET, alerts_table, human_tasks, make_stack, wait_for

pytestmark = pytest.mark.integration


class Receiver:
    """Refuses (HTTP 503) while `accept` is False; then takes every signed POST (200)."""

    def __init__(self) -> None:
        self.accept, self.refused, self.bodies = False, 0, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(
                    SECRET, self.headers.get("Meterstream-Timestamp"), body, self.headers.get("Meterstream-Signature")
                )
                if not hook.accept or not ok:
                    hook.refused += 1
                    self.send_response(503 if ok else 401)
                    self.end_headers()
                    return
                hook.bodies.append((self.headers["Idempotency-Key"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def topic_bodies(stack) -> dict[str, bytes]:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(stack.env["MS_ALERTS_TOPIC"], 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: dict[str, bytes] = {}
        while consumer.position(tp) < end:
            for msgs in consumer.poll(timeout_ms=1000).values():
                out.update((m.key.decode(), m.value) for m in msgs)
        return out
    finally:
        consumer.close()


def test_a_receiver_that_was_down_gets_its_alerts_after_it_is_back_and_the_worker_restarts(
    kafka_service, clickhouse_service, tmp_path
):
    hook = Receiver()
    stack = make_stack(kafka_service, clickhouse_service, tmp_path, [hook])  # type: ignore[list-item]
    stack.env["MS_ALERT_WEBHOOK_ATTEMPTS"] = "2"
    label = url_label(hook.url)
    want = f"acme-day|{DAY}|0.5"
    try:
        port = stack.start_worker()
        stack.produce([human_tasks("a1", "acme", "alice", 6)])  # 1.26 of 2.10 USD: acme-day 0.5
        wait_for(
            lambda: [(r["alert_key"], r["webhook_status"]) for r in alerts_table(stack)]
            == [(want, f"{label}: failed after 2 attempts: HTTP 503")],
            what="the failed delivery recorded",
        )
        assert hook.bodies == [] and hook.refused == 2
        failed = json.loads(stack.cli("budgets", "status", "--format", "json").stdout)
        acme = next(r for r in failed if r["id"] == "acme-day")
        assert (acme["period"], acme["spend"], acme["percent"], acme["crossed"]) == (DAY, "1.26", "60", "0.5")

        stack.kill_worker(port)
        hook.accept = True  # the receiver is back
        stack.start_worker(port)
        wait_for(lambda: [k for k, _ in hook.bodies] == [want], what="the alert delivered after the restart")
        assert hook.bodies[0][1] == topic_bodies(stack)[want]  # the same body, byte for byte
        wait_for(
            lambda: alerts_table(stack)[0]["webhook_status"] == f"{label}: delivered after 1 attempt(s)",
            what="the new state in the alerts table",
        )

        # resend: one alert by its key, again with the same body and key
        out = stack.cli("alerts", "resend", want).stdout.decode()
        assert "requested" in out
        wait_for(lambda: len(hook.bodies) == 2, what="the resent alert")
        assert hook.bodies[1] == hook.bodies[0]
        # --failed: nothing has failed now
        assert "resend of 0 alert(s)" in stack.cli("alerts", "resend", "--failed").stdout.decode()
    finally:
        stack.stop()
