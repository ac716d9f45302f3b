"""Re-rating: re-price the events booked in a period with another catalog, as adjustments.

Each event with a row booked in [since, until) is priced again on the usage it is priced on now
(its last replacement's, or its own; a void event is left alone), with the catalog named. Where
the price changes, an adjustment entry ("rerate", schemas/adjustment.py) carries the new values,
and the rating agent writes the difference as the event's next ledger row: the original rows are
kept, and the rollups, budgets and alerts move by the difference, exactly once. The row is booked
at the event's own time, or, when its month is closed, at the start of the first open month.
`--dry-run` shows the difference per tenant, model and currency without sending anything.

The catalog is named, by one rule: a directory in MS_RERATE_CATALOGS_DIR, never a path
(`catalog_dir`); none named: the worker's own (MS_CATALOG_DIR, else the shipped catalogs)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pricing import Catalog, PricingError, price_event
from schemas.billing_event import BillingEvent
from schemas.errors import InputRejected
from schemas.money import money_str
from schemas.records import ledger_row
from streams.fixes.flows import Change, audit_row
from streams.fixes.ledger import states
from streams.fixes.periods import Closed

if TYPE_CHECKING:
    from streams.settings import Settings

CATALOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PAGE = 5_000


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


def plan(
    read: Callable[..., list[dict[str, Any]]],
    catalog: Catalog,
    since: dt.datetime,
    until: dt.datetime,
    *,
    tenant: str | None,
    closed: Closed,
    actor: str,
    why: str,
) -> tuple[Change, list[dict[str, Any]]]:
    """The re-rating's Change (an entry per event whose price changes) and its summary: per
    tenant, model and currency, the events re-priced, their cost now and after. RerateError
    (nothing sent) when an event cannot be priced with the catalog or would change currency."""
    if until <= since:
        raise RerateError("--until must be after --since")
    asked = {"since": since.isoformat(), "until": until.isoformat(), "tenant": tenant, "catalog": catalog.content_hash}
    change = Change("rerate", audit_row("rerate", actor, why, asked))
    summary: dict[tuple[str, str, str], dict[str, Any]] = {}
    failures: list[str] = []
    after: list[str] | None = None
    while True:
        rows = read("period_events", since=since, until=until, tenant=tenant, after=after, limit=PAGE)
        events = states(rows)
        for (t, e), state in events.items():
            usage = state.usage()
            if usage is None:
                continue  # void: nothing to re-price
            try:
                event = BillingEvent.model_validate(state.event(usage), strict=False)
                priced = price_event(event, catalog)
            except (PricingError, ValueError) as exc:
                failures.append(f"{t}/{e}: {getattr(exc, 'reason', exc)}")
                continue
            base, current = state.base(), state.current()
            if priced["currency"] != base["currency"]:
                failures.append(f"{t}/{e}: currency would change {base['currency']} -> {priced['currency']}")
                continue
            full = ledger_row(priced, 0, state.partition, 0, version=1)
            target = {**full, "events": current["events"], "line_items": priced["line_items"], "usage": priced["usage"]}
            key = (t, base["model"], base["currency"])
            s = summary.setdefault(key, {"events": 0, "before": Decimal(0), "after": Decimal(0)})
            s["events"] += 1
            s["before"] += Decimal(current["cost"])
            s["after"] += Decimal(priced["cost"])
            if Decimal(priced["cost"]) == Decimal(current["cost"]) and Decimal(priced["list_cost"]) == Decimal(
                current["list_cost"]
            ):
                continue  # the same price: nothing to move
            own_ts = int(state.own["ts_ms"])
            book = closed.book_ms(t, own_ts)
            change.booked_later += book is not None
            change.add(
                state.partition,
                {
                    "op": "adjust",
                    "entry": "rerate",
                    "tenant_id": t,
                    "event_id": e,
                    "adjustment": state.next_adjustment,
                    "book_ms": own_ts if book is None else book,
                    "base": base,
                    "current": current,
                    "target": target,
                },
            )
        if len(events) < PAGE:
            break
        last = rows[-1]
        after = [last["tenant_id"], last["event_id"]]
    if failures:
        raise RerateError(
            f"{len(failures)} events cannot be re-priced with this catalog (nothing sent): " + "; ".join(failures[:5])
        )
    out = [
        {
            "tenant_id": t,
            "model": m,
            "currency": c,
            "events": s["events"],
            "before": money_str(s["before"]),
            "after": money_str(s["after"]),
            "difference": money_str(s["after"] - s["before"]),
        }
        for (t, m, c), s in sorted(summary.items())
    ]
    return change, out
