"""Alert webhooks delivered by the real delivery code (streams.alerts.delivery.Deliverer) to real
HTTP servers on loopback, with the outcome written to a real chDB `alerts` table and read back by
`meterstream alerts`. No Kafka: only the webhook half of delivery runs here."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from streams.alerts.budgets import parse_budget
from streams.alerts.delivery import Deliverer
from streams.alerts.evaluator import Alert, alert_key
from streams.alerts.webhooks import WebhookConfigError, WebhookTarget, url_label, verify_signature
from streams.cli.main import main
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

SECRET = "whsec-delivery-test-4c1d"
TOKEN = "XOXB-path-token-5e6f7a8b"  # the secret part of a webhook URL
UTC = dt.UTC


class Receiver:
    """A loopback HTTP endpoint that checks every request's signature with the shipped helper.

    mode 'ok': 200 when the signature verifies, 401 when it does not; 'redirect': 307 to
    `location`; 'error': 500."""

    def __init__(self, mode: str = "ok", location: str = "") -> None:
        self.mode, self.location = mode, location
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(
                    SECRET, self.headers.get("Meterstream-Timestamp"), body, self.headers.get("Meterstream-Signature")
                )
                hook.requests.append({"path": self.path, "body": body, "verified": ok, "headers": dict(self.headers)})
                if hook.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", hook.location)
                elif hook.mode == "error":
                    self.send_response(500)
                else:
                    self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_GET = do_POST  # noqa: N815 - a followed redirect would arrive as any of these

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args: str) -> Receiver:
        made.append(Receiver(*args))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def store(tmp_path):
    s = ChdbStore(tmp_path / "chdb", "meterstream")
    migrate(s, Settings().migrations_dir)
    yield s
    s.close()


def an_alert(budget_id: str = "acme-day") -> Alert:
    b = parse_budget({"id": budget_id, "tenant_id": "acme", "period": "day", "currency": "USD", "amount": "10"})
    t = Decimal("0.5")
    return Alert(
        alert_key(b.id, "2026-03-10", t),
        b,
        "2026-03-10",
        t,
        Decimal("5.25"),
        {"event_id": "e1"},
        dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC),
    )


def deliverer(store: ChdbStore, urls: list[str], secret: str = SECRET, attempts: int = 3) -> Deliverer:
    async def write_row(row: dict) -> None:
        store.insert("alerts", [row])

    targets = [WebhookTarget.parse(u) for u in urls]
    return Deliverer(
        "127.0.0.1:1", "unused", targets, write_row, secret=secret, attempts=attempts, timeout_s=5, first_backoff_s=0.01
    )


def stored_rows(store: ChdbStore) -> list[dict]:
    return store.query("SELECT * FROM alerts ORDER BY version")  # every version, not only the newest


def test_signed_delivery_is_verified_by_the_receiver(store, receivers):
    hook = receivers("ok")
    alert = an_alert()
    status = asyncio.run(deliverer(store, [hook.url]).send_webhooks(alert))
    assert status == f"{url_label(hook.url)}: delivered after 1 attempt(s)"
    [req] = hook.requests
    assert req["verified"] and req["path"] == f"/hooks/{TOKEN}"
    assert req["headers"]["Idempotency-Key"] == alert.key == "acme-day|2026-03-10|0.5"
    assert req["headers"]["Content-Type"] == "application/json"
    body = json.loads(req["body"])
    assert body["idempotency_key"] == alert.key and body["text"].startswith("meterstream: budget acme-day")
    [row] = store.query("SELECT * FROM alerts FINAL")
    assert row["webhook_status"] == status and row["alert_key"] == alert.key


def test_a_receiver_with_another_secret_refuses_and_the_failure_is_recorded(store, receivers):
    hook = receivers("ok")
    status = asyncio.run(
        deliverer(store, [hook.url], secret="not-the-shared-secret", attempts=2).send_webhooks(an_alert())
    )
    assert [r["verified"] for r in hook.requests] == [False, False]
    assert status == f"{url_label(hook.url)}: failed after 2 attempts: HTTP 401"


def test_a_307_is_a_failed_delivery_and_the_target_of_the_redirect_gets_nothing(store, receivers, caplog):
    elsewhere = receivers("ok")
    redirecting = receivers("redirect")
    redirecting.location = f"http://127.0.0.1:{elsewhere.server.server_address[1]}/stolen"
    good = receivers("ok")
    caplog.set_level(logging.DEBUG)
    status = asyncio.run(deliverer(store, [redirecting.url, good.url]).send_webhooks(an_alert()))
    assert elsewhere.requests == []  # the body was not re-sent to where the 307 pointed
    assert len(redirecting.requests) == 1  # and a redirect is not retried: it will not change
    assert status == (
        f"{url_label(redirecting.url)}: failed: HTTP 307 redirect, not followed; "
        f"{url_label(good.url)}: delivered after 1 attempt(s)"
    )
    [row] = store.query("SELECT * FROM alerts FINAL")
    assert "HTTP 307 redirect, not followed" in row["webhook_status"]
    assert f"webhook {url_label(redirecting.url)} for alert acme-day|2026-03-10|0.5: failed: HTTP 307" in caplog.text


def test_a_non_loopback_http_url_is_refused_before_any_delivery(store):
    with pytest.raises(WebhookConfigError, match="plain http://"):
        WebhookTarget.parse(f"http://hooks.example.com/{TOKEN}")
    with pytest.raises(WebhookConfigError, match="signing secret"):
        deliverer(store, ["https://hooks.example.com/x"], secret="")
    with pytest.raises(TypeError):
        Deliverer("127.0.0.1:1", "t", [f"https://hooks.example.com/{TOKEN}"], None)  # type: ignore[list-item]


def test_the_url_appears_in_neither_the_table_nor_the_cli_nor_the_log(store, receivers, tmp_path, caplog):
    ok, failing = receivers("ok"), receivers("error")
    dead = f"http://127.0.0.1:1/hooks/{TOKEN}-dead"  # nothing listens on port 1: connection refused
    urls = [ok.url, failing.url, dead]
    caplog.set_level(logging.DEBUG)  # everything any logger says (meterstream, aiohttp, asyncio)
    d = deliverer(store, urls, attempts=2)
    for budget_id in ("acme-day", "acme-day-2"):
        alert = an_alert(budget_id)
        asyncio.run(_deliver_webhooks_only(d, alert))
    rows = stored_rows(store)
    assert len(rows) == 4 and {r["version"] for r in rows} == {2, 3}
    store.close()

    runner = CliRunner()
    env = {"MS_DATA_DIR": str(tmp_path), "MS_CLICKHOUSE_DATABASE": "meterstream"}
    table = runner.invoke(main, ["alerts"], env=env, terminal_width=400)
    as_json = runner.invoke(main, ["alerts", "--format", "json"], env=env)
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output + as_json.output
    statuses = [r["webhook_status"] for r in json.loads(as_json.output)]
    assert len(statuses) == 2
    for status in statuses:
        assert f"{url_label(ok.url)}: delivered after 1 attempt(s)" in status
        assert f"{url_label(failing.url)}: failed after 2 attempts: HTTP 500" in status
        assert f"{url_label(dead)}: failed after 2 attempts: ClientConnectorError" in status
    assert url_label(dead) in caplog.text and url_label(failing.url) in caplog.text
    everything = [json.dumps(rows, default=str), table.output, as_json.output, caplog.text]
    for text in everything:
        assert TOKEN not in text
        for url in urls:
            assert url not in text


async def _deliver_webhooks_only(d: Deliverer, alert: Alert) -> None:
    """What deliver() does once the alert is in the topic (in_topic=True needs no producer): the
    'pending' row, then the webhooks task, awaited here."""
    await d.deliver(alert, in_topic=True)
    await asyncio.gather(*d.tasks)


def test_a_failed_webhook_is_delivered_again_with_the_same_body_and_key_and_only_it(store, receivers):
    from streams.alerts.outbox import failed_labels, webhook_outcomes

    ok, down = receivers("ok"), receivers("error")
    d = deliverer(store, [ok.url, down.url], attempts=1)
    alert = an_alert()
    asyncio.run(_deliver_webhooks_only(d, alert))
    [row] = store.query("SELECT * FROM alerts FINAL")
    assert failed_labels(row) == [url_label(down.url)]
    first = down.requests[0]["body"]

    down.mode = "ok"  # the receiver is back
    status = asyncio.run(d.redeliver(row, first, only_failed=True))
    assert len(ok.requests) == 1  # the webhook that had it gets nothing again
    [again] = down.requests[1:]
    assert again["verified"] and again["body"] == first  # byte for byte
    assert again["headers"]["Idempotency-Key"] == alert.key
    assert webhook_outcomes(status) == {
        url_label(ok.url): "delivered after 1 attempt(s)",
        url_label(down.url): "delivered after 1 attempt(s)",
    }
    [latest] = store.query("SELECT * FROM alerts FINAL")
    assert latest["webhook_status"] == status and latest["version"] == 4 and failed_labels(latest) == []

    # a resend of this alert (every webhook): both get it once more, the version goes up again
    asyncio.run(d.redeliver(latest, first, only_failed=False))
    assert len(ok.requests) == 2 and len(down.requests) == 3
    assert store.query("SELECT version FROM alerts FINAL")[0]["version"] == 5


def test_webhook_status_parses_per_label():
    from streams.alerts.outbox import RESEND_ALL, join_outcomes, webhook_outcomes

    status = "127.0.0.1:80#0a1b2c3d: failed after 2 attempts: HTTP 503; [::1]:9#ffffffff: delivered after 1 attempt(s)"
    outcomes = webhook_outcomes(status)
    assert outcomes == {
        "127.0.0.1:80#0a1b2c3d": "failed after 2 attempts: HTTP 503",
        "[::1]:9#ffffffff": "delivered after 1 attempt(s)",
    }
    assert join_outcomes(outcomes) == status
    assert webhook_outcomes("pending") == webhook_outcomes("") == webhook_outcomes(RESEND_ALL) == {}


def test_resend_takes_one_alert_or_failed():
    runner = CliRunner()
    for args in (["alerts", "resend"], ["alerts", "resend", "k|2026-01-01|1", "--failed"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and "give one alert key, or --failed" in result.output
