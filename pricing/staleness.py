"""Stale prices: an entry whose source is older than the events it would price by more than a
stated age (`meterstream catalog validate` warns; it does not fail).

The rule. An entry's source date is its ``source_date:`` (the day its prices were read from the
source, YYYY-MM-DD; a file's ``defaults`` may give it for every product). The last event the
entry can price is at its ``effective_to`` (exclusive), or, open-ended, at the check's time
(``as_of``: now by default; an open-ended entry prices every event from now on). The entry is
stale when that instant is more than ``max_age`` (MAX_SOURCE_AGE, 365 days) after its source
date: a 2024 price still in force for 2026 events. The date is never read out of the free-text
``source``: such text names several dates (the page's, the copy's, the day it was read), and
which one dates the price is a judgement the catalog's author writes down in ``source_date``.

An entry without a ``source_date`` is counted, not judged: the warning names how many entries per
provider have none, so that staleness nobody can check is visible too."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from pricing.catalog import Catalog, Product

MAX_SOURCE_AGE = dt.timedelta(days=365)  # documented in pricing/catalogs/FORMAT.md


@dataclass(frozen=True)
class Stale:
    product: Product
    until: dt.datetime  # the last instant the entry prices (its effective_to, or as_of)
    age: dt.timedelta  # until - source_date


def stale_entries(catalog: Catalog, as_of: dt.datetime, max_age: dt.timedelta = MAX_SOURCE_AGE) -> list[Stale]:
    """Entries whose source is more than ``max_age`` older than the last event they price."""
    out = []
    for p in catalog.entries():
        s = p.spec
        if s.source_date is None:
            continue
        until = min(s.effective_to, as_of) if s.effective_to is not None else as_of
        if until <= s.effective_from:
            continue  # not in force before as_of: prices nothing yet
        age = until - dt.datetime.combine(s.source_date, dt.time(), tzinfo=dt.UTC)
        if age > max_age:
            out.append(Stale(p, until, age))
    return out


def undated(catalog: Catalog) -> dict[str, int]:
    """Per provider, how many entries carry no ``source_date`` (their staleness is not checked)."""
    return dict(sorted(Counter(p.provider for p in catalog.entries() if p.spec.source_date is None).items()))


def warnings(catalog: Catalog, as_of: dt.datetime, max_age: dt.timedelta = MAX_SOURCE_AGE) -> list[str]:
    """The warning lines `catalog validate` prints."""
    lines = []
    for st in stale_entries(catalog, as_of, max_age):
        s = st.product.spec
        span = f"until {s.effective_to.date().isoformat()}" if s.effective_to else "open-ended"
        lines.append(
            f"stale: {st.product.provider}/{s.id} from {s.effective_from.date().isoformat()} ({span}): source dated "
            f"{s.source_date} prices events up to {st.until.date().isoformat()}, {st.age.days} days later "
            f"(more than {max_age.days})"
        )
    lines += [
        f"undated: {n} {provider} entr{'y has' if n == 1 else 'ies have'} no source_date (staleness not checked)"
        for provider, n in undated(catalog).items()
    ]
    return lines
