"""Webhook settings and signatures: which URLs are refused at startup, how a webhook is named,
and the signature scheme that receivers check with streams.alerts.webhooks.verify_signature."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from click.testing import CliRunner

from streams.alerts.webhooks import WebhookConfigError, sign, signed_headers, url_label, verify_signature
from streams.cli.main import main
from streams.settings import Settings

TOKEN = "T0KEN-s3cr3t-9f8e7d"
SECRET = "whsec-unit-test"


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.slack.com/services/{TOKEN}",
        f"http://127.0.0.1:8080/{TOKEN}",
        f"http://127.9.9.9/{TOKEN}",
        f"http://localhost:9/{TOKEN}",
        f"http://[::1]:9/{TOKEN}",
    ],
)
def test_https_and_loopback_http_are_accepted(url):
    s = Settings(alert_webhooks=url, alert_webhook_secret=SECRET)
    [target] = s.webhook_targets
    assert target.url.get_secret_value() == url
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in repr(target)


@pytest.mark.parametrize(
    "url",
    [
        f"http://hooks.example.com/{TOKEN}",
        f"http://10.0.0.5/{TOKEN}",
        f"http://192.168.1.1:8080/{TOKEN}",
        f"http://[::ffff:10.0.0.1]/{TOKEN}",
        f"http://127.0.0.1.example.com/{TOKEN}",
        f"ftp://127.0.0.1/{TOKEN}",
        f"hooks.slack.com/services/{TOKEN}",
    ],
)
def test_other_urls_are_refused_at_startup_without_echoing_them(url):
    with pytest.raises(WebhookConfigError) as err:
        Settings(alert_webhooks=f"https://ok.example.com/a, {url}", alert_webhook_secret=SECRET)
    text = str(err.value)
    assert "entry 2" in text and url_label(url) in text
    assert TOKEN not in text and url not in text


def test_webhooks_without_a_secret_are_refused():
    with pytest.raises(WebhookConfigError, match="MS_ALERT_WEBHOOK_SECRET"):
        Settings(alert_webhooks=f"https://hooks.slack.com/{TOKEN}")
    with pytest.raises(WebhookConfigError, match="MS_ALERT_WEBHOOK_SECRET"):
        Settings(alert_webhooks=f"https://hooks.slack.com/{TOKEN}", alert_webhook_secret="")
    assert Settings().webhook_targets == []  # no webhooks: no secret needed


def test_the_cli_refuses_a_plain_http_webhook_with_one_line(tmp_path):
    url = f"http://hooks.example.com/{TOKEN}"
    res = CliRunner().invoke(
        main,
        ["status"],
        env={"MS_ALERT_WEBHOOKS": url, "MS_ALERT_WEBHOOK_SECRET": SECRET, "MS_DATA_DIR": str(tmp_path)},
    )
    assert res.exit_code == 2
    assert res.output.startswith("Error: MS_ALERT_WEBHOOKS entry 1 (hooks.example.com#")
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert TOKEN not in res.output


def test_label_is_host_and_the_first_8_hex_of_sha256_of_the_whole_url():
    url = f"https://hooks.slack.com/services/{TOKEN}"
    assert url_label(url) == "hooks.slack.com#" + hashlib.sha256(url.encode()).hexdigest()[:8]
    assert url_label("http://127.0.0.1:8080/x").startswith("127.0.0.1:8080#")
    assert url_label("https://user:pw@h.example/x").startswith("h.example#")  # no credentials in a label
    assert url_label("https://h.example/a") != url_label("https://h.example/b")


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"idempotency_key":"b|2026-03-10|0.5"}'
    headers = signed_headers(SECRET, body, "b|2026-03-10|0.5", now=1_700_000_000)
    assert headers["Meterstream-Timestamp"] == "1700000000"
    assert headers["Idempotency-Key"] == "b|2026-03-10|0.5"
    want = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["Meterstream-Signature"] == f"v1={want}"
    assert verify_signature(SECRET, "1700000000", body, headers["Meterstream-Signature"], now=1_700_000_100)


def test_verify_rejects_tampering_other_secrets_and_old_timestamps():
    body = b'{"spend":"1.00"}'
    now = time.time()
    ts = str(int(now))
    good = sign(SECRET, ts, body)
    assert verify_signature(SECRET, ts, body, good)
    assert verify_signature(SECRET, ts, body.decode(), good)  # str bodies too
    assert not verify_signature(SECRET, ts, b'{"spend":"9.00"}', good)  # body changed
    assert not verify_signature("another-secret", ts, body, good)  # wrong secret
    assert not verify_signature(SECRET, str(int(now) + 1), body, good)  # timestamp changed
    assert not verify_signature(SECRET, ts, body, good.replace("v1=", "v0="))  # unknown scheme
    assert not verify_signature(SECRET, ts, body, "")
    assert not verify_signature(SECRET, None, body, good)
    assert not verify_signature(SECRET, "12ab", body, good)
    # older than 5 minutes: refused, however well signed (a replay); within: accepted
    old = str(int(now) - 301)
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body))
    recent = str(int(now) - 290)
    assert verify_signature(SECRET, recent, body, sign(SECRET, recent, body))
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body), tolerance_s=None)
    # several v1 values (secret rotation): one match is enough
    assert verify_signature(SECRET, ts, body, f"{sign('old-secret', ts, body)}, {good}")
