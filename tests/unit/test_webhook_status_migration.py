"""Migration 0006 rewrites webhook statuses stored before URLs became secrets: each URL becomes
its label (host and short hash, the same as streams.alerts.webhooks.url_label), on real chDB."""

from __future__ import annotations

import datetime as dt
import shutil

from streams.alerts.webhooks import url_label
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

TOKEN = "T0KEN-old-row-1a2b3c"
URLS = [
    f"https://hooks.slack.com/services/{TOKEN}",
    f"http://127.0.0.1:8080/hook/{TOKEN}",
    f"https://h.example:443/a?token={TOKEN}",
]


def row(key: str, status: str, version: int) -> dict:
    return {
        "alert_key": key,
        "budget_id": "b",
        "tenant_id": "t",
        "user_id": "",
        "model": "",
        "period_kind": "day",
        "period": "2026-03-10",
        "threshold": "0.5",
        "spend": "1",
        "amount": "2",
        "currency": "USD",
        "event_id": "",
        "created_at": dt.datetime(2026, 3, 10, tzinfo=dt.UTC),
        "kafka_delivered": True,
        "webhook_status": status,
        "version": version,
    }


def test_old_statuses_name_webhooks_by_label_after_migrating(tmp_path):
    every = Settings().migrations_dir
    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(every.glob("000[1-5]_*.sql")):
        shutil.copy(f, before / f.name)
    old = "; ".join(
        [
            f"{URLS[0]}: delivered after 1 attempt(s)",
            f"{URLS[1]}: failed after 5 attempts: HTTP 500",
            f"{URLS[2]}: failed after 5 attempts: ClientResponseError: 400, url='{URLS[2]}'",
        ]
    )
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, before)
        store.insert("alerts", [row("k1", "pending", 2), row("k2", old, 3), row("k3", "none", 2)])
        assert [m.path.name for m in migrate(store, every)][0] == "0006_alerts_webhook_labels.sql"
        rows = {
            r["alert_key"]: r["webhook_status"] for r in store.query("SELECT alert_key, webhook_status FROM alerts")
        }
    assert rows["k1"] == "pending" and rows["k3"] == "none"
    assert rows["k2"] == "; ".join(
        [
            f"{url_label(URLS[0])}: delivered after 1 attempt(s)",
            f"{url_label(URLS[1])}: failed after 5 attempts: HTTP 500",
            f"{url_label(URLS[2])}: failed after 5 attempts: ClientResponseError: 400, url='[url removed]'",
        ]
    )
    assert url_label(URLS[1]).startswith("127.0.0.1:8080#") and url_label(URLS[2]).startswith("h.example:443#")
    assert all(TOKEN not in s and "://" not in s for s in rows.values())
