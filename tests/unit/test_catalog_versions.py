"""Live catalog updates in the rater's core (a dict for state): a catalog record on a partition
switches the version from its position on, nothing before it is re-priced (replays included),
every row names its version, and a bad record is refused while the version in force stays."""

from __future__ import annotations

import datetime as dt
from copy import deepcopy
from decimal import Decimal

import orjson

from pricing import load_catalog
from pricing.bundle import bundle_hash, read_bundle
from schemas.catalog_record import encode, signature
from schemas.record import Seal
from streams.rating.catalogs import KEEP_VERSIONS, files_key, history_key
from streams.rating.rater import SEP, Rater, Source

BASE = load_catalog()
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
KEY = b"test catalog key, 32 bytes long!"


def ev(event_id: str, tokens: int = 1000) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": T.isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"input_tokens": tokens},
        }
    )


def src(
    offset: int,
    catalog: bytes | None = None,
    p: int = 0,
    key: bytes = KEY,
    seq: int | None = None,
    sealed_for: tuple[str, int] | None = None,
) -> Source:
    """A record; with `catalog` (its value), a catalog record sealed with `key` for its topic and
    partition (or `sealed_for`), its sequence `seq` (default: its offset + 1)."""
    seal = None
    if catalog is not None:
        seq = offset + 1 if seq is None else seq
        topic, part = sealed_for or ("billing_events", p)
        seal = Seal(seq, signature(key, catalog, topic=topic, partition=part, seq=seq))
    return Source("billing_events", p, offset, int(T.timestamp() * 1000), catalog=seal)


def rater_() -> Rater:
    return Rater(BASE, catalog_key=KEY)


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
    rater, state = rater_(), {}
    new = repriced("3.00")
    items = [(src(0), ev("a")), (src(1), ev("b")), (src(2, record(new)), record(new)), (src(3), ev("c"))]
    out = rater.process_batch(state, items)
    costs = {r["event_id"]: (r["cost"], r["catalog_hash"]) for r in out.ledger}
    assert costs == {
        "a": ("0.0025", BASE.content_hash),
        "b": ("0.0025", BASE.content_hash),
        "c": ("0.003", bundle_hash(new)),
    }
    assert out.rejected == []
    assert state[history_key(0)] == [[2 << 13, bundle_hash(new), 3]]
    assert state[files_key(0, bundle_hash(new))] == new
    assert rater.versions.current == {0: bundle_hash(new)}
    # a later batch goes on with the new version
    assert rater.process_batch(state, [(src(4), ev("d"))]).ledger[0]["cost"] == "0.003"


def test_a_replay_from_before_the_record_prices_as_the_first_time_even_on_a_fresh_worker():
    rater, state = rater_(), {}
    new = repriced("3.00")
    items = [(src(0), ev("a")), (src(1, record(new)), record(new)), (src(2), ev("b"))]
    first = rater.process_batch(state, items).ledger
    # a crash after the state (and its changelog) was written, before the commit: another
    # process restores the state and is handed the same records again
    other = rater_()
    replay = other.process_batch(deepcopy(state), items).ledger
    assert replay == first
    assert [r["cost"] for r in replay] == ["0.0025", "0.003"]
    # the same from a replay that starts after the record
    assert other.process_batch(deepcopy(state), items[2:]).ledger == first[1:]


def test_a_partition_prices_with_its_own_versions():
    rater, state = rater_(), {}
    new = record(repriced("3.00"))
    rater.process_batch(state, [(src(0, new, p=1), new)])
    assert rater.process_batch(state, [(src(0, p=0), ev("p0"))]).ledger[0]["cost"] == "0.0025"
    assert rater.process_batch(state, [(src(1, p=1), ev("p1"))]).ledger[0]["cost"] == "0.003"


def test_a_bad_catalog_record_is_refused_with_the_reason_and_the_version_stays():
    rater, state = rater_(), {}
    good = repriced("3.00")
    rater.process_batch(state, [(src(0, record(good)), record(good))])
    broken = dict(good, **{"openai-usd.yaml": good["openai-usd.yaml"].replace('price: "3.00"', "price: 3.00")})
    tampered = orjson.dumps({"version": bundle_hash(good), "files": broken})
    unsigned = Source("billing_events", 0, 5, int(T.timestamp() * 1000), catalog=Seal(6, ""))
    out = rater.process_batch(
        state,
        [
            (src(1, record(broken)), record(broken)),
            (src(2, tampered), tampered),
            (src(3, b"not json"), b"not json"),
            (src(4), ev("x")),
            (src(6, record(repriced("9.00")), key=b"another key"), record(repriced("9.00"))),
            (unsigned, record(repriced("9.00"))),
        ],
    )
    reasons = [r["reason"] for r in out.rejected]
    assert len(reasons) == 5
    assert "refused" in reasons[0] and "price must be a quoted decimal string" in reasons[0]
    assert f"hash to {bundle_hash(broken)}, not {bundle_hash(good)}" in reasons[1]
    assert "not JSON" in reasons[2]
    assert reasons[3].startswith("catalog record refused: not signed with the catalog key")
    assert reasons[4].startswith("catalog record refused: not signed with the catalog key")
    assert all(r.endswith("the version in force stays") for r in reasons)
    assert [(r["event_id"], r["cost"], r["catalog_hash"]) for r in out.ledger] == [("x", "0.003", bundle_hash(good))]
    assert state[history_key(0)] == [[0, bundle_hash(good), 1]]


def test_the_kept_versions_are_bounded_and_their_files_with_them():
    rater, state = rater_(), {}
    versions = []
    for i in range(KEEP_VERSIONS + 3):
        files = repriced(f"{3 + i}.00")
        versions.append(bundle_hash(files))
        rater.process_batch(state, [(src(i, record(files)), record(files))])
    history = state[history_key(0)]
    assert [h[1] for h in history] == versions[-KEEP_VERSIONS:]
    assert sorted(k for k in state if k.startswith(f"c{SEP}")) == sorted(
        files_key(0, v) for v in versions[-KEEP_VERSIONS:]
    )
    out = rater.process_batch(state, [(src(100), ev("last"))])
    assert out.ledger[0]["cost"] == str(Decimal(3 + KEEP_VERSIONS + 2) / 1000)  # 1,000 tokens at the last price per 1M


def test_a_rater_without_a_catalog_key_refuses_every_catalog_record():
    rater, state = Rater(BASE), {}
    new = record(repriced("3.00"))
    out = rater.process_batch(state, [(src(0, new), new), (src(1), ev("a"))])
    assert [r["reason"] for r in out.rejected] == [
        "catalog record refused: this rater has no catalog key (MS_CATALOG_KEY); the version in force stays"
    ]
    assert out.ledger[0]["catalog_hash"] == BASE.content_hash


def test_an_older_publication_written_again_is_refused_and_prices_stay():
    """A rollback: a superseded record copied to a later offset, sealed as it was, is refused;
    so is a record sealed for another partition or topic, or without a sequence."""
    rater, state = rater_(), {}
    old, new = record(repriced("0.01")), record(repriced("3.00"))
    rater.process_batch(state, [(src(0, old, seq=100), old), (src(1, new, seq=200), new)])
    out = rater.process_batch(
        state,
        [
            (src(2, old, seq=100), old),  # the old record again, as it was sealed
            (src(3, new, seq=200), new),  # the current one again
            (src(4, old, seq=300, sealed_for=("billing_events", 1)), old),  # sealed for partition 1
            (src(5, old, seq=300, sealed_for=("other_topic", 0)), old),  # sealed for another topic
            (Source("billing_events", 0, 6, int(T.timestamp() * 1000), catalog=Seal(None, "00")), old),
            (src(7), ev("after")),
        ],
    )
    reasons = [r["reason"] for r in out.rejected]
    assert reasons[0].startswith("catalog record refused: its sequence 100 is not above 200, the one in force")
    assert reasons[1].startswith("catalog record refused: its sequence 200 is not above 200")
    assert reasons[2].startswith("catalog record refused: not signed with the catalog key for this topic, partition")
    assert reasons[3].startswith("catalog record refused: not signed with the catalog key for this topic, partition")
    assert reasons[4].startswith(
        "catalog record refused: not signed with the catalog key for this topic, partition "
        "and sequence: it has no sequence"
    )
    assert len(reasons) == 5 and all(r.endswith("the version in force stays") for r in reasons)
    assert [(r["event_id"], r["cost"]) for r in out.ledger] == [("after", "0.003")]  # $3.00/M, not $0.01/M
    assert [h[2] for h in state[history_key(0)]] == [100, 200]
