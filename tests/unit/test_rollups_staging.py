"""The sink's two ways of staging window totals agree: the per-(minute, key) aggregation with
hour/day/month derived from minutes, and the row-by-row path it falls back to on replays."""

from __future__ import annotations

import random

from schemas.money import to_units, units_text
from streams.sink.rollups import MINUTE_MS, Rollups

T0 = 1_764_547_200_000 - 7 * 60_000  # a few minutes before 2025-12-01: windows of both months


class EmptyStore:
    """A store with no rollup rows yet (the tables are read only on a window's first use)."""

    def query(self, sql: str, params: object = None) -> list:
        return []


def row(rnd: random.Random, p: int, offset: int, index: int = 0) -> dict:
    return {
        "tenant_id": f"t{rnd.randrange(3)}",
        "user_id": f"u{rnd.randrange(5)}",
        "model": rnd.choice("ab"),
        "currency": rnd.choice(["USD", "CNY"]),
        "cost": f"{rnd.randrange(10**6)}.{rnd.randrange(10**12):012d}",
        "ts": T0 + rnd.randrange(20 * MINUTE_MS),
        "src_partition": p,
        "src_offset": offset,
        "src_index": index,
        "input_tokens": rnd.randrange(100),
        "output_tokens": rnd.randrange(50),
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "images": rnd.randrange(2),
        "guardrail_units": 0,
        "labels": {"app": rnd.choice(["chat", "search"]), **({"team": "a=b"} if rnd.random() < 0.5 else {})},
    }


def test_aggregated_staging_equals_row_by_row_and_falls_back_on_replays():
    rnd = random.Random(11)
    fell_back = 0
    for trial in range(60):
        keys = ("app", "team") if trial % 2 else ()
        a, b = Rollups(label_keys=keys), Rollups(label_keys=keys)
        offsets = {p: 0 for p in range(3)}
        for _batch in range(4):
            ledger = []
            for _ in range(rnd.randrange(1, 120)):
                p = rnd.randrange(3)
                if rnd.random() < 0.05 and offsets[p] > 5:  # a replay of earlier positions
                    offsets[p] -= rnd.randrange(1, 5)
                ledger.append(row(rnd, p, offsets[p], rnd.randrange(3)))
                offsets[p] += 1
            staged = a.stage(EmptyStore(), ledger)
            by_rows = b.stage(EmptyStore(), ledger, aggregate=False)
            assert staged == by_rows, trial
            a.keep(staged)
            b.keep(by_rows)
        fell_back += a.row_by_row
    assert 0 < fell_back < 240  # both paths ran


def test_each_label_keys_values_add_up_to_the_tenants_total():
    """An event without a key counts under the value "" (a value may hold "="): per key, the values'
    totals are the tenant's, as the user totals are."""
    rnd = random.Random(5)
    r = Rollups(label_keys=("app", "team"))
    ledger = [row(rnd, p=i % 3, offset=i) for i in range(300)]
    staged = r.stage(EmptyStore(), ledger)
    rows = r.rows(staged)

    def sums(table: str, column: str) -> dict:
        out: dict = {}
        for x in rows[table]:
            k = (x["tenant_id"], x["currency"], x[column])
            out[k] = out.get(k, 0) + to_units(x["cost"])
        return out

    by_user = sums("rollup_user_month", "tenant_id")
    labels = rows["rollup_label_month"]
    assert {x["label_key"] for x in labels} == {"app", "team"}
    assert {x["label_value"] for x in labels if x["label_key"] == "team"} == {"", "a=b"}  # split on the first "="
    for key in ("app", "team"):
        per_key: dict = {}
        for x in labels:
            if x["label_key"] == key:
                k = (x["tenant_id"], x["currency"], x["tenant_id"])
                per_key[k] = per_key.get(k, 0) + to_units(x["cost"])
        assert per_key == by_user
    assert "rollup_label_month" not in Rollups().rows(Rollups().stage(EmptyStore(), ledger))  # none unless asked


def test_units_text_round_trips():
    for u in (0, 1, -1, 10**12, -(10**12), 1234567890123456789, 5 * 10**11):
        assert to_units(units_text(u)) == u
    assert units_text(150_000_000_000) == "0.15" and units_text(10 * 10**12) == "10"
