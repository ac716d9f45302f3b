"""billing_event 1.1: a ledger row keeps the event's service tier and inference geography
(migration 0010), so that re-rating prices the same tier and geography again, never the
standard one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson

from pricing.bundle import load_catalog
from pricing.rating import rate
from schemas.records import ledger_row
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

UTC = dt.UTC
TS = dt.datetime(2026, 12, 5, 12, tzinfo=UTC)
EVENTS = [
    {"event_id": "flex-1", "provider": "openai", "model": "gpt-5", "service_tier": "flex"},
    {"event_id": "geo-1", "provider": "anthropic", "model": "claude-opus-4-6", "inference_geo": "us"},
    {"event_id": "std-1", "provider": "openai", "model": "gpt-5"},
]


def test_rerating_prices_the_tier_and_geography_the_event_named(tmp_path):
    from streams.analyst import reads
    from streams.fixes.periods import Closed
    from streams.fixes.rerate import plan

    catalog = load_catalog()
    rows = []
    for n, e in enumerate(EVENTS):
        raw = {"ts": TS.isoformat(), "tenant_id": "acme", "user_id": "alice", "usage": {"input_tokens": 1000000}, **e}
        priced = rate(orjson.dumps(raw), catalog, now=TS)
        rows.append({**ledger_row(priced, TS, 0, n, version=1), "ingested_at": TS, "cost": "9", "list_cost": "9"})
    assert [(r["service_tier"], r["inference_geo"]) for r in rows] == [("flex", ""), ("", "us"), ("", "")]
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        store.insert("ledger", rows)  # each counted at 9 USD: the re-rating prices them again

        def read(name: str, **params: object) -> list:
            return reads.run(store, name, params)

        change, summary = plan(
            read,
            catalog,
            dt.datetime(2026, 12, 1, tzinfo=UTC),
            dt.datetime(2026, 12, 6, tzinfo=UTC),
            tenant=None,
            closed=Closed.of([]),
            actor="test",
            why="tiers",
        )
    entries = {e["event_id"]: e for es in change.by_partition.values() for e in es}
    got = {
        k: (e["base"]["service_tier"], e["base"]["inference_geo"], Decimal(e["target"]["cost"]), e["adjustment"])
        for k, e in entries.items()
    }
    # gpt-5 1M input: flex 0.625, standard 1.25; Opus 4.6 US-only 1.1 x 5 = 5.5
    assert got == {
        "flex-1": ("flex", None, Decimal("0.625"), 1),
        "geo-1": (None, "us", Decimal("5.5"), 1),
        "std-1": (None, None, Decimal("1.25"), 1),
    }
    assert [(s["events"], s["before"], s["difference"]) for s in summary] == [
        (1, "9", "-3.5"),  # claude-opus-4-6
        (2, "18", "-16.125"),  # gpt-5
    ]
