"""The dedup index on disk (streams/rating/dedup.py DiskIndex in Faust's rocksdb store,
streams/rating/rocks.py), on a real RocksDB: it decides as the in-memory index does, a restore
from the changelog derives it, and a crash that leaves the disk ahead of the changelog loses no id."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP

from pricing import load_catalog
from streams.rating.agent import PartitionState
from streams.rating.dedup import DiskIndex
from streams.rating.rater import Rater, Source
from streams.rating.rocks import StateStore

CAT = load_catalog()
T = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
HOUR = 3_600_000


def ev(event_id: str, ts: dt.datetime = T) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": ts.isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": "openai",
            "model": "gpt-4o",
            "usage": {"input_tokens": 10},
        }
    )


def src(offset: int, at: dt.datetime = T) -> Source:
    return Source("billing_events", 0, offset, int(at.timestamp() * 1000))


class Node:
    """One worker's state for partition 0: Faust's rocksdb table store in its own data directory
    and a changelog that keeps what was flushed (`flush`), as Kafka would after a crash."""

    def __init__(self, datadir: Any, changelog: list[tuple[str, Any]]) -> None:
        self.app = faust.App(f"dedup-{id(self)}", store="meterstream-rocksdb://", datadir=str(datadir))
        self.table = self.app.Table(
            "state", partitions=1, options={"cache_bytes": 8 << 20, "write_buffer_bytes": 8 << 20}
        )
        self.store: StateStore = self.table.data
        self.changelog, self.unflushed = changelog, []
        self.table.send_changelog = lambda p, k, v, **kw: self.unflushed.append((k, v))
        self.rater = Rater(
            CAT,
            lateness_ms=HOUR,
            dedup_ms=HOUR,
            index=lambda state, p: DiskIndex(lambda: self.store._db_for_partition(p), self.store, p),
        )
        self.state = PartitionState(self.table, 0)

    def run(self, items: list[tuple[Source, bytes]]) -> Any:
        out = self.rater.process_batch(self.state, items)
        for key in self.rater.expired(self.state, 0):
            del self.state[key]
        return out

    def flush(self) -> None:
        self.changelog += self.unflushed
        self.unflushed = []

    def restore(self) -> None:
        """Faust's recovery: the changelog applied to this node's database."""
        events = [
            SimpleNamespace(
                message=SimpleNamespace(
                    key=self.store.encode_key(k),
                    value=None if v is None else self.store.encode_value(v),
                    partition=0,
                    offset=i,
                    tp=TP("state-changelog", 0),
                )
            )
            for i, (k, v) in enumerate(self.changelog)
        ]
        self.store.apply_changelog_batch(events, None, None)
        self.rater.reset()


def test_the_disk_index_decides_as_the_memory_index(tmp_path):
    rng = __import__("random").Random(7)
    node, memory, mstate = Node(tmp_path / "a", []), Rater(CAT, lateness_ms=HOUR, dedup_ms=HOUR), {}
    offset = 0
    for step in range(40):
        at = T + dt.timedelta(minutes=5 * step)  # stream time passes the retention: entries expire
        items = []
        for _ in range(rng.randint(1, 30)):
            items.append((src(offset, at), ev(f"e{rng.randint(0, 150)}", at)))
            offset += 1
        disk_out, mem_out = node.run(items), memory.process_batch(mstate, items)
        gone = memory.expired(mstate, 0)
        for key in gone:
            del mstate[key]
        assert disk_out.ledger == mem_out.ledger and disk_out.duplicates == mem_out.duplicates
    assert sum(1 for k in mstate if k[0] == "t") > 0 and any(v is None for _, v in node.unflushed)  # expiries ran


def test_a_restore_from_the_changelog_derives_the_index_and_drops_expired_ids(tmp_path):
    changelog: list[tuple[str, Any]] = []
    first = Node(tmp_path / "a", changelog)
    first.run([(src(i), ev(f"e{i}")) for i in range(5)])
    later = T + dt.timedelta(hours=3)
    first.run([(src(5, later), ev("late-one", later))])  # the first entry expires
    first.flush()
    fresh = Node(tmp_path / "b", changelog)  # another machine: nothing on disk but the changelog
    fresh.restore()
    assert fresh.run([(src(9, later), ev("late-one", later))]).duplicates == 1
    assert len(fresh.run([(src(10, later), ev("e2", later))]).ledger) == 1  # expired: counted anew


def test_crash_then_a_smaller_replay_then_a_restart_then_a_duplicate_counts_it_once(tmp_path):
    """Issue 12, item 2. The disk is ahead of the changelog after a crash (the ids were written,
    their changelog record not flushed); the replay comes in smaller batches; another node then
    restores from the changelog alone and sees a duplicate of one of the replayed ids."""
    changelog: list[tuple[str, Any]] = []
    node = Node(tmp_path / "a", changelog)
    batch = [(src(i), ev(f"e{i}")) for i in range(10)]
    assert len(node.run(batch).ledger) == 10
    node.unflushed.clear()  # SIGKILL before the producer flushed: the changelog lacks the entry
    node.rater.reset()  # the same node restarts (its disk kept) and the source replays from 0
    assert len(node.run(batch[:4]).ledger) == 4  # a smaller replay, re-emitted
    assert len(node.run(batch[4:]).ledger) == 6
    node.flush()
    fresh = Node(tmp_path / "b", changelog)  # a rebalance to a node with no disk of its own
    fresh.restore()
    dup = fresh.run([(src(20), ev("e7"))])
    assert dup.duplicates == 1 and dup.ledger == []


def test_a_replay_never_shrinks_an_entry(tmp_path):
    """The replay's first entry has the original's key (same time, same first position) and
    fewer ids: written, it is merged with the one on disk, not put over it."""
    changelog: list[tuple[str, Any]] = []
    node = Node(tmp_path / "a", changelog)
    batch = [(src(i), ev(f"e{i}")) for i in range(10)]
    node.run(batch)
    node.flush()
    node.rater.reset()
    node.run(batch[:3])  # crash again after this replay: only e0..e2 were written again
    node.flush()
    ((key, value),) = {k: v for k, v in changelog if k[0] == "t"}.items()
    assert sorted(e for _, e, _ in value[1]) == sorted(f"e{i}" for i in range(10))
    fresh = Node(tmp_path / "b", changelog)
    fresh.restore()
    assert fresh.run([(src(30), ev("e9"))]).duplicates == 1


def test_the_on_disk_state_is_never_scanned(tmp_path):
    node = Node(tmp_path / "a", [])
    node.run([(src(0), ev("x"))])
    with pytest.raises(TypeError):
        list(node.state)
    assert node.store.estimated_keys() >= 2  # the entry, its id, the partition's meta
