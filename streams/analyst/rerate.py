"""Re-rating: re-price a closed period from the ledger's stored usage with another catalog and
rewrite the affected rollups, absolutely, so the views show the new totals.

Only windows no stream write can reach any more are touched: the whole period must end before
now − allowed lateness − the 15-minute future bound (later events for it are dead-lettered
`too_late`). Re-rated rows carry version 2^62 + the re-rating's time in ms, above every stream
version (a source offset), so they win in ReplacingMergeTree and a later re-rating wins again.

The catalog is named, by one rule wherever a re-rate is asked for (the worker's POST /rerate,
`meterstream rerate`): a directory in MS_RERATE_CATALOGS_DIR, never a path (`catalog_dir`)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pricing import Catalog, PricingError, load_catalog, price_event
from schemas.billing_event import MAX_FUTURE, BillingEvent
from schemas.errors import InputRejected
from schemas.records import ledger_row
from streams.sink.windows import WINDOWS
from streams.storage import Store

if TYPE_CHECKING:
    from streams.settings import Settings

RERATE_BASE = 1 << 62
CATALOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
UTC = dt.UTC
_FMT = "%Y-%m-%d %H:%M:%S.%f"


class RerateError(InputRejected):
    pass


def catalog_dir(settings: Settings, name: Any) -> Path | None:
    """The catalog directory a re-rate prices with: none named, the worker's own (MS_CATALOG_DIR,
    else None: the shipped catalogs); else the directory of that name in MS_RERATE_CATALOGS_DIR.
    A name is letters, digits, _ . - (at most 64, the first a letter or digit), never a path,
    and a link out of that directory does not count. RerateError for anything else."""
    if name is None:
        return settings.catalog_dir
    root = settings.rerate_catalogs.resolve()
    if not isinstance(name, str) or not CATALOG_NAME.fullmatch(name):
        raise RerateError(
            f"meterstream re-rates only with catalogs in {root} (MS_RERATE_CATALOGS_DIR), by the "
            "name of a directory there (letters, digits, _ . -), not a path: copy the directory "
            "there and give its name"
        )
    path = (root / name).resolve()
    if path.parent != root or not path.is_dir():
        raise RerateError(f"no catalog named {name!r} in {root}")
    return path


@dataclass(frozen=True)
class Rerating:
    """A re-rate asked for, checked: its period and its catalog, resolved and loaded."""

    since: dt.datetime
    until: dt.datetime
    catalog: Catalog
    lateness: dt.timedelta

    def run(self, store: Store, *, now: dt.datetime | None = None) -> dict[str, Any]:
        return rerate(store, self.catalog, self.since, self.until, lateness=self.lateness, now=now)


def rerating(settings: Settings, catalog: Any, since: dt.datetime, until: dt.datetime) -> Rerating:
    """The re-rate of [since, until) with the catalog named `catalog` (`catalog_dir`'s rule),
    within the allowed lateness of `settings`; `.run(store)` runs it. The worker's POST /rerate
    and `meterstream rerate` both ask through here (the catalog is loaded before the store is
    taken from the sink). RerateError for a name the rule refuses; CatalogError for a catalog
    that does not load."""
    return Rerating(
        since, until, load_catalog(catalog_dir(settings, catalog)), dt.timedelta(hours=settings.allowed_lateness_hours)
    )


def _p(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime(_FMT)[:-3]


def _totals(store: Store, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    return store.query(
        "SELECT currency, sum(cost) AS cost, count() AS events FROM ledger FINAL "
        "WHERE ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')} GROUP BY currency ORDER BY currency",
        {"a": _p(since), "b": _p(until)},
    )


def rerate(
    store: Store,
    catalog: Catalog,
    since: dt.datetime,
    until: dt.datetime,
    *,
    lateness: dt.timedelta,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    now = now or dt.datetime.now(UTC)
    if until <= since:
        raise RerateError("--until must be after --since")
    # the widest window (a calendar month) containing the period's end must be closed too
    widest = WINDOWS[-1]
    until_ms = int(until.timestamp() * 1000)
    closes = dt.datetime.fromtimestamp(widest.end(widest.start(until_ms - 1)) / 1000, UTC)
    if closes > now - lateness - MAX_FUTURE:
        raise RerateError(
            f"the period's windows are still open to late events until {closes + lateness + MAX_FUTURE:%Y-%m-%d %H:%M} UTC "
            f"(allowed lateness {lateness}); re-rate a period that ends before {now - lateness - MAX_FUTURE:%Y-%m-%d %H:%M} UTC"
        )
    before = _totals(store, since, until)
    rows = store.query(
        "SELECT tenant_id, event_id, user_id, provider, model, region, mode, service_tier, inference_geo, ts, "
        "usage, labels, currency, "
        "src_partition, src_offset, src_index FROM ledger FINAL "
        "WHERE ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')}",
        {"a": _p(since), "b": _p(until)},
    )
    version = RERATE_BASE + int(now.timestamp() * 1000)
    new_rows, failures = [], []
    for r in rows:
        event = BillingEvent.model_validate(
            {
                "event_id": r["event_id"],
                "ts": r["ts"],
                "tenant_id": r["tenant_id"],
                "user_id": r["user_id"],
                "provider": r["provider"],
                "model": r["model"],
                "region": r["region"] or None,
                "mode": r["mode"],
                "service_tier": r["service_tier"] or None,  # billing_event 1.1: the tier it was priced at
                "inference_geo": r["inference_geo"] or None,
                "usage": orjson.loads(r["usage"]),
                "labels": r["labels"] or None,
            },
            strict=False,
        )
        try:
            priced = price_event(event, catalog)
        except PricingError as exc:
            failures.append(f"{r['tenant_id']}/{r['event_id']}: {exc.reason}")
            continue
        if priced["currency"] != r["currency"]:
            failures.append(
                f"{r['tenant_id']}/{r['event_id']}: currency would change {r['currency']} -> {priced['currency']}"
            )
            continue
        new_rows.append(
            {
                **ledger_row(
                    priced, r["ts"], r["src_partition"], r["src_offset"], version=version, index=r["src_index"]
                ),
                "ingested_at": now,
            }
        )
    if failures:
        raise RerateError(
            f"{len(failures)} events cannot be re-priced with this catalog (nothing written): "
            + "; ".join(failures[:5])
        )
    for i in range(0, len(new_rows), 10_000):
        store.insert("ledger", new_rows[i : i + 10_000])
    # rewrite every window overlapping the period, from the whole ledger inside those windows
    for w in WINDOWS:
        lo = dt.datetime.fromtimestamp(w.start(int(since.timestamp() * 1000)) / 1000, UTC)
        hi = dt.datetime.fromtimestamp(w.end(w.start(until_ms - 1)) / 1000, UTC)
        start = w.sql_start("ts")
        for kind, who in (("user", "user_id"), ("model", "model")):
            store.command(
                f"INSERT INTO rollup_{kind}_{w.name} (window_start, tenant_id, {who}, currency, src_partition, cost, "
                "events, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, images, guardrail_units, version) "
                f"SELECT {start} AS ws, tenant_id, {who}, currency, src_partition, sum(cost), count(), sum(input_tokens), "
                "sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(images), sum(guardrail_units), "
                "{v:UInt64} FROM ledger FINAL WHERE ts >= {a:DateTime64(3, 'UTC')} AND ts < {b:DateTime64(3, 'UTC')} "
                f"GROUP BY ws, tenant_id, {who}, currency, src_partition",
                {"v": version, "a": _p(lo), "b": _p(hi)},
            )
    after = _totals(store, since, until)
    return {
        "events": len(new_rows),
        "version": version,
        "before": [{**t, "cost": str(t["cost"])} for t in before],
        "after": [{**t, "cost": str(t["cost"])} for t in after],
    }
