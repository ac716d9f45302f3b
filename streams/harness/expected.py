"""What the pipeline must report for a known list of produced lines, computed straight from the
pricing engine (no Kafka, no Faust, no ClickHouse): the oracle of the demo, tests and chaos runs.

It follows the pipeline's stated rules independently: a line's partition is Kafka's default
partitioner (murmur2) on the producer's key; per partition, in order: a rejected line is
dead-lettered; an event more than the allowed lateness behind the partition's stream time is
dead-lettered `too_late`; a repeated (tenant_id, event_id) is dropped; the rest is counted in its
minute, hour and day windows per user and per model."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from pricing import Catalog
from pricing.rating import Rejection, rate
from streams.placement import event_key
from streams.settings import Settings
from streams.sink.windows import WINDOWS

LATENESS = dt.timedelta(hours=Settings.model_fields["allowed_lateness_hours"].default)  # the settings' default
Key = tuple[str, int | None, str, str, str]  # (window, start_ms | None for total, tenant, who, currency)


@dataclass
class Expected:
    counted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    by_user: dict[Key, list] = field(default_factory=lambda: defaultdict(lambda: [Decimal(0), 0]))
    by_model: dict[Key, list] = field(default_factory=lambda: defaultdict(lambda: [Decimal(0), 0]))
    # per label: who = "KEY=VALUE" (an event without the key: "KEY="), for LABEL_KEYS
    by_label: dict[Key, list] = field(default_factory=lambda: defaultdict(lambda: [Decimal(0), 0]))


LABEL_KEYS = ("app", "team")  # the label keys the oracle rolls up (the generated traffic's)


def partition_for(key: bytes | None, partitions: int) -> int | None:
    if key is None:
        return None  # unkeyed lines (bad input) go anywhere; they never count
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Oracle:
    """The expected totals, fed one line at a time in production order (bounded memory for
    long runs: the soak)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        partitions: int,
        lateness: dt.timedelta = LATENESS,
        now: dt.datetime | None = None,
    ) -> None:
        self.exp = Expected()
        self.catalog, self.partitions, self.now = catalog, partitions, now
        self.watermark: dict[int | None, int] = defaultdict(int)
        self.seen: set[tuple[int | None, str, str]] = set()
        self.lateness_ms = int(lateness.total_seconds() * 1000)

    def add(self, line: bytes) -> None:
        exp = self.exp
        p = partition_for(event_key(line), self.partitions)
        result = rate(line, self.catalog, now=self.now)
        if isinstance(result, Rejection):
            exp.rejected += 1
            exp.reasons.append(result.reason)
            return
        ts_ms = int(dt.datetime.fromisoformat(result["ts"]).timestamp() * 1000)
        if ts_ms < self.watermark[p] - self.lateness_ms:
            exp.rejected += 1
            exp.reasons.append("too_late")
            return
        self.watermark[p] = max(self.watermark[p], ts_ms)
        ident = (p, result["tenant_id"], result["event_id"])
        if ident in self.seen:
            exp.duplicates += 1
            return
        self.seen.add(ident)
        exp.counted += 1
        cost = Decimal(result["cost"])
        cur = result["currency"]
        labels = result.get("labels") or {}
        pairs = [(exp.by_user, result["user_id"]), (exp.by_model, result["model"])]
        pairs += [(exp.by_label, f"{k}={labels.get(k, '')}") for k in LABEL_KEYS]
        for table, who in pairs:
            for w in WINDOWS:
                acc = table[(w.name, w.start(ts_ms), result["tenant_id"], who, cur)]
                acc[0] += cost
                acc[1] += 1
            acc = table[("total", None, result["tenant_id"], who, cur)]
            acc[0] += cost
            acc[1] += 1


def adjust(
    exp: Expected,
    tenant: str,
    user: str,
    model: str,
    labels: dict[str, str],
    currency: str,
    ts_ms: int,
    cost: Decimal,
    events: int,
) -> None:
    """A correction's difference (`cost`, `events`) booked at `ts_ms` (docs/fixing-the-past.md),
    in every window of the event's user, model and label keys."""
    pairs = [(exp.by_user, user), (exp.by_model, model)]
    pairs += [(exp.by_label, f"{k}={labels.get(k, '')}") for k in LABEL_KEYS]
    for table, who in pairs:
        for key in [(w.name, w.start(ts_ms), tenant, who, currency) for w in WINDOWS] + [
            ("total", None, tenant, who, currency)
        ]:
            acc = table[key]
            acc[0] += cost
            acc[1] += events


def expected_totals(
    lines: Iterable[bytes],
    catalog: Catalog,
    *,
    partitions: int,
    lateness: dt.timedelta = LATENESS,
    now: dt.datetime | None = None,
) -> Expected:
    oracle = Oracle(catalog, partitions=partitions, lateness=lateness, now=now)
    for line in lines:
        oracle.add(line)
    return oracle.exp


def as_rows(exp: Expected, by: str, window: str) -> dict[tuple, tuple[Decimal, int]]:
    """The oracle's totals keyed like normalize(); `by`: user, model or label:KEY."""
    table = exp.by_user if by == "user" else exp.by_model if by == "model" else exp.by_label
    prefix = by.removeprefix("label:") + "=" if by.startswith("label:") else None
    out = {}
    for (w, start, tenant, who, cur), (cost, n) in table.items():
        if prefix is not None:
            if not who.startswith(prefix):
                continue
            who = who[len(prefix) :]
        if w == window:
            ws = None if start is None else dt.datetime.fromtimestamp(start / 1000, dt.UTC)
            out[(ws, tenant, who, cur)] = (cost, n)
    return out


def normalize(rows: list[dict], by: str, window: str) -> dict[tuple, tuple[Decimal, int]]:
    """Report rows (from `report --format json`, or from streams.analyst.reads) keyed like as_rows."""
    who = "user_id" if by == "user" else "model" if by == "model" else by  # label:KEY
    out = {}
    for r in rows:
        ws = None
        if window != "total":
            ws = r["window_start"]
            ws = dt.datetime.fromisoformat(ws) if isinstance(ws, str) else ws
        if not isinstance(r["cost"], (str, Decimal)):
            raise TypeError(f"cost must be a decimal string or Decimal, not {type(r['cost']).__name__}")
        out[(ws, r["tenant_id"], r[who], r["currency"])] = (Decimal(r["cost"]), int(r["events"]))
    return out


def diff(got: dict, want: dict) -> list:
    keys = set(got) | set(want)
    return [(k, got.get(k), want.get(k)) for k in sorted(keys, key=str) if got.get(k) != want.get(k)]
