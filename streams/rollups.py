"""Windowed totals per user and per model, kept by the sink from the ledger rows it writes.

The ClickHouse rollup tables are the durable state: a row holds the ABSOLUTE totals of one
(window, key, source partition) and, as its version, the last source offset applied to it. The
sink keeps the windows it touches in memory, loading a window (one table, one start) from
ClickHouse the first time a batch needs it. A ledger row is applied to a total only when its
source offset is beyond the total's version, so a ledger row seen again (a replay upstream, or
a sink batch retried) changes nothing. A batch's changes are staged, written, and only then
kept in memory: after a failed write the memory still matches ClickHouse.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pricing.engine import money_str
from streams.storage import Store
from streams.windows import WINDOWS, WindowSize

COUNTERS = ("events", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
            "images", "guardrail_units")
# (table, column of the key, window)
TABLES: tuple[tuple[str, str, WindowSize], ...] = tuple(
    (f"rollup_{kind}_{w.name}", "user_id" if kind == "user" else "model", w)
    for kind in ("user", "model") for w in WINDOWS)
UTC = dt.timezone.utc

Slice = tuple[str, int]                 # (table, window start ms)
Key = tuple[str, str, str, int]         # (tenant, user or model, currency, source partition)
# Totals: [cost, events, input, output, cached_input, cache_write, images, guardrail_units, version]


def _ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, UTC)


class Rollups:
    def __init__(self, keep_ms: int = 48 * 3_600_000) -> None:
        self.keep_ms = keep_ms  # windows ending this long before the newest event leave memory
        self.slices: dict[Slice, dict[Key, list[Any]]] = {}
        self.newest_ms = 0

    def stage(self, store: Store, ledger: list[dict[str, Any]]) -> dict[Slice, dict[Key, list[Any]]]:
        """The totals a batch of ledger rows (``ts`` in ms) changes, new values, not yet kept."""
        need = {(table, w.start(row["ts"])) for row in ledger for table, _, w in TABLES}
        self._load(store, need - self.slices.keys())
        staged: dict[Slice, dict[Key, list[Any]]] = {}
        for row in ledger:
            ts, offset, p = row["ts"], row["src_offset"], row["src_partition"]
            u_cost = Decimal(row["cost"])
            counts = (1, row["input_tokens"], row["output_tokens"], row["cached_input_tokens"],
                      row["cache_write_tokens"], row["images"], row["guardrail_units"])
            for table, column, w in TABLES:
                sl = (table, w.start(ts))
                key = (row["tenant_id"], row[column], row["currency"], p)
                changed = staged.setdefault(sl, {})
                tot = changed.get(key) or self.slices[sl].get(key)
                if tot is not None and offset <= tot[8]:
                    continue  # applied before
                base = tot or [Decimal(0), 0, 0, 0, 0, 0, 0, 0, -1]
                changed[key] = [base[0] + u_cost, *(a + b for a, b in zip(base[1:8], counts)), offset]
            self.newest_ms = max(self.newest_ms, ts)
        return staged

    @staticmethod
    def rows(staged: dict[Slice, dict[Key, list[Any]]]) -> dict[str, list[dict[str, Any]]]:
        """Staged totals as rows of their rollup tables."""
        out: dict[str, list[dict[str, Any]]] = {}
        columns = {table: column for table, column, _ in TABLES}
        for (table, start), changed in staged.items():
            column, ws = columns[table], _ms(start)
            rows = out.setdefault(table, [])
            for (tenant, who, currency, p), tot in changed.items():
                row = {"window_start": ws, "tenant_id": tenant, column: who, "currency": currency,
                       "src_partition": p, "cost": money_str(tot[0]), "version": tot[8]}
                row.update(zip(COUNTERS, tot[1:8]))
                rows.append(row)
        return out

    def keep(self, staged: dict[Slice, dict[Key, list[Any]]]) -> None:
        """After the staged rows are written: keep them, and let old windows leave memory."""
        for sl, changed in staged.items():
            self.slices.setdefault(sl, {}).update(changed)
        windows = {table: w for table, _, w in TABLES}
        for sl in [sl for sl in self.slices if sl[1] + windows[sl[0]].ms + self.keep_ms < self.newest_ms]:
            del self.slices[sl]  # ClickHouse has it: a late event reloads it

    def _load(self, store: Store, slices: set[Slice]) -> None:
        by_table: dict[str, list[int]] = {}
        for table, start in slices:
            by_table.setdefault(table, []).append(start)
            self.slices[(table, start)] = {}
        columns = {table: column for table, column, _ in TABLES}
        for table, starts in by_table.items():
            rows = store.query(
                f"SELECT toUnixTimestamp64Milli(window_start) AS ws, tenant_id, {columns[table]} AS who, currency, "
                f"src_partition, cost, {', '.join(COUNTERS)}, version FROM {table} FINAL "
                "WHERE window_start IN (" + ", ".join(f"fromUnixTimestamp64Milli(toInt64({int(s)}), 'UTC')"
                                                      for s in starts) + ")")
            for r in rows:
                self.slices[(table, int(r["ws"]))][(r["tenant_id"], r["who"], r["currency"], int(r["src_partition"]))] = [
                    Decimal(r["cost"]), *(int(r[c]) for c in COUNTERS), int(r["version"])]
