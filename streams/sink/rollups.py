"""Windowed totals per user, per model and per label value (MS_ROLLUP_LABELS), kept by the sink
from the ledger rows it writes.

The ClickHouse rollup tables are the durable state: a row holds the ABSOLUTE totals of one
(window, key, source partition) and, as its version, the last source position applied to it
(offset << 13 | index in a batch record, schemas/batch.py). The
sink keeps the windows it touches in memory, loading a window (one table, one start) from
ClickHouse the first time a batch needs it. A ledger row is applied to a total only when its
source position is beyond the total's version, so a ledger row seen again (a replay upstream, or
a sink batch retried) changes nothing. A batch's changes are staged, written, and only then
kept in memory: after a failed write the memory still matches ClickHouse.

In memory a total is a Totals tuple (read by its FIELDS' names): the cost as an integer count of 10^-12 (the ledger's Decimal(38, 12)
scale: exact, schemas/money.py), the seven counters, the version; key strings are interned. About
250 bytes a key.

A label's key is held as "KEY=VALUE" in the place of the user or model (a label key has no "="),
and written as the label tables' label_key and label_value; an event without the key counts
under the value "".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from schemas.batch import position
from schemas.money import to_units, units_text
from schemas.records import COUNTERS, LedgerRow
from streams.settings import Settings
from streams.sink.windows import WINDOWS, WindowSize
from streams.storage import Store
from streams.storage.base import EpochMs

KINDS = {"user": "user_id", "model": "model", "label": "label"}  # rollup kind -> its key column
LABEL = "label"  # the label tables' key: label_key and label_value (above)
# (table, column of the key, window): every rollup table, label ones included
TABLES: tuple[tuple[str, str, WindowSize], ...] = tuple(
    (f"rollup_{kind}_{w.name}", column, w) for kind, column in KINDS.items() for w in WINDOWS
)
MINUTE_MS = 60_000


# One key's totals in one window: the cost in 10^-12, the events, the six COUNTERS after it, and
# the version (the last source position applied). A plain tuple, by design: the garbage collector
# stops tracking an exact tuple of ints, so a million keys in memory cost its collections nothing
# (a NamedTuple stays tracked: the sink ran a third slower with one). Read it by these names.
Totals = tuple[int, ...]
FIELDS = ("cost", *COUNTERS, "version")
COST, VERSION = 0, len(FIELDS) - 1
SUMMED = VERSION  # every field but the version is a sum
FIRST, LAST = SUMMED, SUMMED + 1  # a group's lowest and highest source position, after its sums
ZERO: Totals = (0,) * SUMMED + (-1,)


def plus(tot: Totals, sums: list[int], version: int) -> Totals:
    """`tot` with `sums` added to its summed fields, at `version` (the hot path writes it out)."""
    return (*(t + x for t, x in zip(tot[:SUMMED], sums)), version)


def row_sums(row: LedgerRow, cost: int) -> list[int]:
    """What a ledger row adds to Totals' summed fields, in their order (`cost`: its cost in 10^-12)."""
    return [
        cost,
        row.get("events", 1),
        row["input_tokens"],
        row["output_tokens"],
        row["cached_input_tokens"],
        row["cache_write_tokens"],
        row["images"],
        row["guardrail_units"],
    ]


Slice = tuple[str, int]  # (table, window start ms)
Key = tuple[str, str, str, int]  # (tenant, user or model, currency, source partition)


class Rollups:
    def __init__(
        self,
        keep_ms: int = Settings.model_fields["allowed_lateness_hours"].default * 3_600_000,
        label_keys: tuple[str, ...] = (),
    ) -> None:
        """`label_keys`: the label keys rolled up besides users and models (MS_ROLLUP_LABELS)."""
        self.keep_ms = keep_ms  # windows ending this long before the newest event leave memory
        self.slices: dict[Slice, dict[Key, Totals]] = {}
        self.newest_ms = 0
        self.row_by_row = 0  # batches staged row by row (replays), not aggregated
        self.label_keys = label_keys
        self.prefixes = tuple((k, k + "=") for k in label_keys)
        # the tables kept (label ones only with label keys), and for each source of a row's keys
        # (its user, its model, then one per label key) the indices of its tables in self.tables
        self.tables = tuple(t for t in TABLES if t[1] != LABEL or label_keys)
        per_kind = len(WINDOWS)
        self.sources = (range(0, per_kind), range(per_kind, 2 * per_kind)) + tuple(
            range(2 * per_kind, 3 * per_kind) for _ in label_keys
        )
        self.windows = {table: w for table, _, w in self.tables}

    def whos(self, row: LedgerRow) -> tuple[str, ...]:
        """A ledger row's key in each source, in the order of self.sources."""
        if not self.prefixes:
            return (row["user_id"], row["model"])
        labels = row["labels"]
        return (row["user_id"], row["model"], *(prefix + labels.get(k, "") for k, prefix in self.prefixes))

    def __len__(self) -> int:
        return sum(len(keys) for keys in self.slices.values())

    def stage(self, store: Store, ledger: list[LedgerRow], *, aggregate: bool = True) -> dict[Slice, dict[Key, Totals]]:
        """The totals a batch of ledger rows (``ts`` in ms) changes, new values, not yet kept
        (`aggregate=False`: always row by row, for tests that compare the two)."""
        # minute -> the window starts of TABLES (every window boundary is a minute boundary)
        tables = self.tables
        starts = {m: [w.start(m) for _, _, w in tables] for m in {row["ts"] - row["ts"] % MINUTE_MS for row in ledger}}
        need = {(t[0], st[i]) for st in starts.values() for i, t in enumerate(tables)}
        self._load(store, need - self.slices.keys())
        if ledger:
            self.newest_ms = max(self.newest_ms, max(row["ts"] for row in ledger))
        staged = self._stage_aggregated(ledger, starts) if aggregate else None
        if staged is None:
            self.row_by_row += aggregate
            staged = self._stage_rows(ledger, starts)
        return staged

    def _stage_aggregated(
        self, ledger: list[LedgerRow], starts: dict[int, list[int]]
    ) -> dict[Slice, dict[Key, Totals]] | None:
        """The batch summed once per (minute, key), the minute sums derived into hour, day and
        month; valid only when no row would be skipped (each partition's positions rise through
        the batch and lie beyond every version they touch), else None. Same result as
        _stage_rows, with 2 updates per row in place of 8."""
        last: dict[int, int] = {}
        minutes: list[dict[tuple[int, Key], list[int]]] = [{} for _ in self.sources]
        intern, whos, labelled = sys.intern, self.whos, bool(self.prefixes)
        for row in ledger:
            p = row["src_partition"]
            pos = position(row["src_offset"], row.get("src_index", 0))
            if pos <= last.get(p, -1):
                return None  # a replayed row inside the batch: row by row
            last[p] = pos
            cost = to_units(row["cost"])
            tenant, currency, start = (
                intern(row["tenant_id"]),
                intern(row["currency"]),
                row["ts"] - row["ts"] % MINUTE_MS,
            )
            for groups, who in zip(minutes, whos(row) if labelled else (row["user_id"], row["model"])):
                k = (start, (tenant, intern(who), currency, p))
                g = groups.get(k)
                if g is None:
                    # row_sums(row, cost) + [pos, pos], written out: once per row on the hot path
                    groups[k] = [
                        cost,
                        row.get("events", 1),
                        row["input_tokens"],
                        row["output_tokens"],
                        row["cached_input_tokens"],
                        row["cache_write_tokens"],
                        row["images"],
                        row["guardrail_units"],
                        pos,
                        pos,
                    ]
                else:
                    g[0] += cost
                    g[1] += row.get("events", 1)
                    g[2] += row["input_tokens"]
                    g[3] += row["output_tokens"]
                    g[4] += row["cached_input_tokens"]
                    g[5] += row["cache_write_tokens"]
                    g[6] += row["images"]
                    g[7] += row["guardrail_units"]
                    g[LAST] = pos
        staged: dict[Slice, dict[Key, Totals]] = {}
        for source, groups in zip(self.sources, minutes):
            for t in source:
                table = self.tables[t][0]
                derived: dict[tuple[int, Key], list[int]] = {}
                for (start, key), g in groups.items():
                    k = (starts[start][t], key)
                    d = derived.get(k)
                    if d is None:
                        derived[k] = list(g)
                    else:
                        for i in range(SUMMED):
                            d[i] += g[i]
                        d[FIRST], d[LAST] = min(d[FIRST], g[FIRST]), max(d[LAST], g[LAST])
                for (start, key), d in derived.items():
                    sl = (table, start)
                    tot = self.slices[sl].get(key, ZERO)
                    if d[FIRST] <= tot[VERSION]:
                        return None  # a row at or below a version: row by row
                    # plus(tot, d, d[LAST]), written out: once per key and window on the hot path
                    staged.setdefault(sl, {})[key] = (
                        tot[0] + d[0],
                        tot[1] + d[1],
                        tot[2] + d[2],
                        tot[3] + d[3],
                        tot[4] + d[4],
                        tot[5] + d[5],
                        tot[6] + d[6],
                        tot[7] + d[7],
                        d[LAST],
                    )
        return staged

    def _stage_rows(self, ledger: list[LedgerRow], starts: dict[int, list[int]]) -> dict[Slice, dict[Key, Totals]]:
        """Row by row: a row is applied to a total only when its position is beyond the total's version."""
        staged: dict[Slice, dict[Key, Totals]] = {}
        intern, tables = sys.intern, self.tables
        for row in ledger:
            pos, p = position(row["src_offset"], row.get("src_index", 0)), row["src_partition"]
            delta = row_sums(row, to_units(row["cost"]))
            tenant, currency = intern(row["tenant_id"]), intern(row["currency"])
            row_starts = starts[row["ts"] - row["ts"] % MINUTE_MS]
            for source, who in zip(self.sources, self.whos(row)):
                key = (tenant, intern(who), currency, p)
                for t in source:
                    sl = (tables[t][0], row_starts[t])
                    changed = staged.get(sl)
                    if changed is None:
                        changed = staged[sl] = {}
                    tot = changed.get(key) or self.slices[sl].get(key, ZERO)
                    if pos <= tot[VERSION]:
                        continue  # applied before
                    changed[key] = plus(tot, delta, pos)
        return staged

    def rows(self, staged: dict[Slice, dict[Key, Totals]]) -> dict[str, list[dict[str, Any]]]:
        """Staged totals as rows of their rollup tables."""
        return dict(self.table_rows(staged))

    def table_rows(self, staged: dict[Slice, dict[Key, Totals]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Staged totals as rows, one rollup table at a time."""
        for table, column, _ in self.tables:
            rows = []
            for (t, start), changed in staged.items():
                if t != table:
                    continue
                ws = EpochMs(start)
                for (tenant, who, currency, p), tot in changed.items():
                    row = {
                        "window_start": ws,
                        "tenant_id": tenant,
                        "currency": currency,
                        "src_partition": p,
                        "cost": units_text(tot[COST]),
                        "version": tot[VERSION],
                    }
                    if column == LABEL:
                        row["label_key"], _, row["label_value"] = who.partition("=")
                    else:
                        row[column] = who
                    row.update(zip(COUNTERS, tot[COST + 1 : SUMMED]))
                    rows.append(row)
            if rows:
                yield table, rows

    def keep(self, staged: dict[Slice, dict[Key, Totals]]) -> None:
        """After the staged rows are written: keep them, and let old windows leave memory."""
        for sl, changed in staged.items():
            self.slices.setdefault(sl, {}).update(changed)
        windows = self.windows
        for sl in [sl for sl in self.slices if windows[sl[0]].end(sl[1]) + self.keep_ms < self.newest_ms]:
            del self.slices[sl]  # ClickHouse has it: a late event reloads it

    def _load(self, store: Store, slices: set[Slice]) -> None:
        by_table: dict[str, list[int]] = {}
        for table, start in slices:
            by_table.setdefault(table, []).append(start)
            self.slices[(table, start)] = {}
        columns = {
            table: "concat(label_key, '=', label_value)" if column == LABEL else column
            for table, column, _ in self.tables
        }
        for table, starts in by_table.items():
            rows = store.query(
                f"SELECT toUnixTimestamp64Milli(window_start) AS ws, tenant_id, {columns[table]} AS who, currency, "
                f"src_partition, cost, {', '.join(COUNTERS)}, version FROM {table} FINAL "
                "WHERE window_start IN ("
                + ", ".join(f"fromUnixTimestamp64Milli(toInt64({int(s)}), 'UTC')" for s in starts)
                + ")"
            )
            intern = sys.intern
            for r in rows:
                key = (intern(r["tenant_id"]), intern(r["who"]), intern(r["currency"]), int(r["src_partition"]))
                self.slices[(table, int(r["ws"]))][key] = tuple(
                    (to_units(r["cost"]), *(int(r[c]) for c in COUNTERS), int(r["version"]))
                )
