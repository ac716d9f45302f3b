"""Closed periods (streams/fixes/periods.py): where a change is booked, when a month may close, and
a digest that any change to a row, its order aside, alters; and what of a dead letter is whole."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from streams.fixes.flows import whole
from streams.fixes.periods import Closed, closable, digest

UTC = dt.UTC


def ms(*a: int) -> int:
    return int(dt.datetime(*a, tzinfo=UTC).timestamp() * 1000)


def test_a_change_in_a_closed_month_is_booked_at_the_first_open_one():
    closed = Closed.of([{"tenant_id": "acme", "month": "2026-08"}, {"tenant_id": "acme", "month": "2026-09"}])
    assert closed.book_ms("acme", ms(2026, 8, 15)) == ms(2026, 10, 1)
    assert closed.book_ms("acme", ms(2026, 9, 30, 23)) == ms(2026, 10, 1)
    assert closed.book_ms("acme", ms(2026, 10, 2)) is None  # open: at its own time
    assert closed.book_ms("beta", ms(2026, 8, 15)) is None  # closed for acme only
    dec = Closed.of([{"tenant_id": "t", "month": "2026-12"}])
    assert dec.book_ms("t", ms(2026, 12, 31)) == ms(2027, 1, 1)


def test_a_month_closes_only_after_its_last_late_event_could_arrive():
    late, future = dt.timedelta(hours=48), dt.timedelta(minutes=15)
    assert closable("2026-11", dt.datetime(2026, 12, 3, 0, 14, tzinfo=UTC), late, future)
    assert closable("2026-11", dt.datetime(2026, 12, 3, 0, 15, tzinfo=UTC), late, future) is None


def rows() -> list[dict]:
    base = {
        "entry": "",
        "audit_id": "",
        "user_id": "u",
        "provider": "openai",
        "model": "gpt-4o",
        "region": "",
        "mode": "realtime",
        "service_tier": "",
        "inference_geo": "",
        "ts_ms": ms(2026, 10, 2),
        "occurred_ms": ms(2026, 10, 2),
        "currency": "USD",
        "list_cost": Decimal("1.5"),
        "events": 1,
        "input_tokens": 10,
        "output_tokens": 1,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "images": 0,
        "guardrail_units": 0,
        "line_items": "[]",
        "usage": "{}",
        "labels": {"team": "a", "app": "b"},
        "catalog_version": "v",
        "catalog_hash": "h",
        "price_overlay": "",
        "src_partition": 0,
        "src_offset": 7,
        "src_index": 0,
        "version": 1,
    }
    return [
        {**base, "event_id": "e1", "adjustment": 0, "cost": Decimal("1.500000000000")},
        {**base, "event_id": "e1", "adjustment": 1, "cost": Decimal("-1.5"), "events": -1},
        {**base, "event_id": "e2", "adjustment": 0, "cost": Decimal("0.25")},
    ]


def reader(data: list[dict]):
    def read(name: str, *, tenant: str, month: str, after, limit: int) -> list[dict]:
        assert name == "period_rows"
        return data[:limit] if after is None else []

    return read


def test_the_digest_is_the_same_however_the_values_are_typed_and_changes_with_any_row():
    d = digest(reader(rows()), "acme", "2026-10")
    assert d.rows == 3 and d.totals == {"USD": {"cost": "0.25", "events": 1}}
    as_json = [
        {**r, "cost": str(r["cost"]), "ts_ms": str(r["ts_ms"]), "labels": dict(reversed(r["labels"].items()))}
        for r in rows()
    ]
    assert digest(reader(as_json), "acme", "2026-10").head == d.head  # through a worker: texts, another order
    for change in (
        {"cost": Decimal("1.500000000001")},
        {"input_tokens": 11},
        {"labels": {"team": "b"}},
        {"version": 2},
    ):
        altered = rows()
        altered[0] = {**altered[0], **change}
        assert digest(reader(altered), "acme", "2026-10").head != d.head, change
    assert digest(reader(rows()[:2]), "acme", "2026-10").head != d.head  # a row gone
    assert digest(reader(rows()), "beta", "2026-10").head != d.head  # bound to its tenant and month


def test_a_dead_letter_is_whole_only_without_redaction():
    event = '{"event_id":"e","ts":"2026-10-01T00:00:00Z","tenant_id":"t","user_id":"u","usage":{"input_tokens":1}}'
    assert whole(event)[0] is not None
    assert (
        whole('{"event_id":"e","labels":{"<key: 4 chars, sha256:0a1b2c3d>":"<string: 3 chars, sha256:0a1b2c3d>"}}')[0]
        is None
    )
    assert "redacted" in whole('{"event_id":"e","text":{"input":"<removed>"}}')[1]
    assert whole('{"not_stored":{"why":"not JSON","sha256":"00","bytes":3}}')[0] is None
