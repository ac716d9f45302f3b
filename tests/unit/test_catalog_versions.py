"""Live catalog updates in the rater's core (a dict for state): a catalog record on a partition
switches the version from its position on, nothing before it is re-priced (replays included),
every row names its version, and a bad record is refused while the version in force stays."""

from __future__ import annotations

import datetime as dt
from copy import deepcopy
from decimal import Decimal

import orjson

from pricing import load_catalog
from pricing.catalog import bundle_hash, read_bundle
from schemas.catalog_record import encode
from streams.rating.catalogs import KEEP_VERSIONS, files_key, history_key
from streams.rating.rater import SEP, Rater, Source

BASE = load_catalog()
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def ev(event_id: str, tokens: int = 1000) -> bytes:
    return orjson.dumps({"event_id": event_id, "ts": T.isoformat(), "tenant_id": "t", "user_id": "u",
                         "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": tokens}})


def src(offset: int, catalog: bool = False, p: int = 0) -> Source:
    return Source("billing_events", p, offset, int(T.timestamp() * 1000), catalog=catalog)


def repriced(input_price: str) -> dict[str, str]:
    """The shipped files with gpt-4o's input price changed (a new content version)."""
    files = read_bundle()
    old = files["openai-usd.yaml"]
    needle = '- {dimension: input_tokens,        per: 1000000, price: "2.50"}'
    assert old.count(needle) >= 1
    files["openai-usd.yaml"] = old.replace(needle, needle.replace('"2.50"', f'"{input_price}"'), 1)
    return files


def record(files: dict[str, str]) -> bytes:
    return encode(bundle_hash(files), files)


def test_a_catalog_record_switches_from_its_position_on():
    rater, state = Rater(BASE), {}
    new = repriced("3.00")
    items = [(src(0), ev("a")), (src(1), ev("b")), (src(2, catalog=True), record(new)), (src(3), ev("c"))]
    out = rater.process_batch(state, items)
    costs = {r["event_id"]: (r["cost"], r["catalog_hash"]) for r in out.ledger}
    assert costs == {"a": ("0.0025", BASE.content_hash), "b": ("0.0025", BASE.content_hash),
                     "c": ("0.003", bundle_hash(new))}
    assert out.rejected == []
    assert state[history_key(0)] == [[2 << 13, bundle_hash(new)]]
    assert state[files_key(0, bundle_hash(new))] == new
    assert rater.versions.current == {0: bundle_hash(new)}
    # a later batch goes on with the new version
    assert rater.process(state, src(4), ev("d")).ledger[0]["cost"] == "0.003"


def test_a_replay_from_before_the_record_prices_as_the_first_time_even_on_a_fresh_worker():
    rater, state = Rater(BASE), {}
    new = repriced("3.00")
    items = [(src(0), ev("a")), (src(1, catalog=True), record(new)), (src(2), ev("b"))]
    first = rater.process_batch(state, items).ledger
    # a crash after the state (and its changelog) was written, before the commit: another
    # process restores the state and is handed the same records again
    other = Rater(BASE)
    replay = other.process_batch(deepcopy(state), items).ledger
    assert replay == first
    assert [r["cost"] for r in replay] == ["0.0025", "0.003"]
    # the same from a replay that starts after the record
    assert other.process_batch(deepcopy(state), items[2:]).ledger == first[1:]


def test_a_partition_prices_with_its_own_versions():
    rater, state = Rater(BASE), {}
    rater.process(state, src(0, catalog=True, p=1), record(repriced("3.00")))
    assert rater.process(state, src(0, p=0), ev("p0")).ledger[0]["cost"] == "0.0025"
    assert rater.process(state, src(1, p=1), ev("p1")).ledger[0]["cost"] == "0.003"


def test_a_bad_catalog_record_is_refused_with_the_reason_and_the_version_stays():
    rater, state = Rater(BASE), {}
    good = repriced("3.00")
    rater.process(state, src(0, catalog=True), record(good))
    broken = dict(good, **{"openai-usd.yaml": good["openai-usd.yaml"].replace('price: "3.00"', "price: 3.00")})
    tampered = orjson.dumps({"version": bundle_hash(good), "files": broken})
    out = rater.process_batch(state, [(src(1, catalog=True), record(broken)), (src(2, catalog=True), tampered),
                                      (src(3, catalog=True), b"not json"), (src(4), ev("x"))])
    reasons = [r["reason"] for r in out.rejected]
    assert len(reasons) == 3
    assert "refused" in reasons[0] and "price must be a quoted decimal string" in reasons[0]
    assert f"hash to {bundle_hash(broken)}, not {bundle_hash(good)}" in reasons[1]
    assert "not JSON" in reasons[2]
    assert all(r.endswith("the version in force stays") for r in reasons)
    assert [(r["event_id"], r["cost"], r["catalog_hash"]) for r in out.ledger] == [("x", "0.003", bundle_hash(good))]
    assert state[history_key(0)] == [[0, bundle_hash(good)]]


def test_the_kept_versions_are_bounded_and_their_files_with_them():
    rater, state = Rater(BASE), {}
    versions = []
    for i in range(KEEP_VERSIONS + 3):
        files = repriced(f"{3 + i}.00")
        versions.append(bundle_hash(files))
        rater.process(state, src(i, catalog=True), record(files))
    history = state[history_key(0)]
    assert [h[1] for h in history] == versions[-KEEP_VERSIONS:]
    assert sorted(k for k in state if k.startswith(f"c{SEP}")) == sorted(files_key(0, v) for v in versions[-KEEP_VERSIONS:])
    out = rater.process(state, src(100), ev("last"))
    assert out.ledger[0]["cost"] == str(Decimal(3 + KEEP_VERSIONS + 2) / 1000)  # 1,000 tokens at the last price per 1M
