"""Dedup indexes: which source position first counted each (tenant, event_id) of a partition.

The durable truth is the state table's entries, each one changelog record of at most
DEDUP_ENTRY_IDS ids, ordered by time:

    ``t|p|<max_ts:013d>|<first_pos:020d>`` -> [max_ts, [[tenant, event_id, pos], ...]]

(``e|p|pos`` and ``d|p|offset`` entries of older versions are read as well). An index answers
"which position counted this id?" without scanning them:

- MemoryIndex: a dict built by one scan of the state (a dict in tests, Faust's memory store).
- DiskIndex: keys in the partition's RocksDB, beside the entries (Faust's rocksdb store, see
  streams/rating/rocks.py). They are written with each entry, before it, and derived from the
  changelog when Faust restores it, so RAM holds only RocksDB's bounded caches and a restart
  reads only the changelog's tail.

Writing an entry whose key exists merges the two id lists, so a replay never shrinks one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rocksdict import WriteBatch

from schemas.batch import position

SEP = "\x1f"  # key separator: cannot occur in ids (printable ASCII only)
# ids per dedup entry: an entry is one changelog record, which must stay well under Kafka's 1 MB
# limit (an id is at most ~300 bytes as JSON: two 128-character ids and a position)
DEDUP_ENTRY_IDS = 1000
Ident = tuple[str, str]


def entry_key(p: int, max_ts: int, first_pos: int) -> str:
    return f"t{SEP}{p}{SEP}{max_ts:013d}{SEP}{first_pos:020d}"


def entry_prefixes(p: int) -> tuple[str, str, str]:
    """Entry key prefixes of partition p: this version's, and two older versions'."""
    return f"t{SEP}{p}{SEP}", f"e{SEP}{p}{SEP}", f"d{SEP}{p}{SEP}"


def is_entry(key: str) -> bool:
    return key[:1] in ("t", "e", "d") and key[1:2] == SEP


def entry_ids(key: str, ids: list[list[Any]]) -> list[list[Any]]:
    """An entry's [tenant, event_id, position]; "d" entries (before batched records) held
    offsets, which are positions at index 0."""
    return [[t, e, position(o)] for t, e, o in ids] if key[0] == "d" else ids


def merged(old: list[Any] | None, max_ts: int, ids: list[list[Any]]) -> list[Any]:
    """The value to write for an entry: the new ids, and those of the entry already under the key."""
    if not old:
        return [max_ts, ids]
    known = {(t, e, pos) for t, e, pos in old[1]}
    return [max(old[0], max_ts), old[1] + [i for i in ids if (i[0], i[1], i[2]) not in known]]


class Index(Protocol):
    def get(self, ident: Ident) -> int | None: ...

    def add(self, state: MutableMapping[str, Any], key: str, max_ts: int, ids: list[list[Any]]) -> None:
        """Write one entry to the state (its changelog) and to the index."""

    def expired(self, state: MutableMapping[str, Any], cutoff: int) -> list[str]:
        """Entries whose max_ts < cutoff, dropped from the index (the caller deletes them)."""


@dataclass(slots=True)
class MemoryIndex:
    seen: dict[Ident, int] = field(default_factory=dict)  # (tenant, event_id) -> position
    entries: dict[str, int] = field(default_factory=dict)  # entry key -> max ts

    @classmethod
    def build(cls, state: MutableMapping[str, Any], p: int) -> MemoryIndex:
        idx = cls()
        prefixes = entry_prefixes(p)
        for key in [k for k in list(state.keys()) if k.startswith(prefixes)]:
            max_ts, ids = state[key]
            idx.entries[key] = max_ts
            for tenant, event_id, pos in entry_ids(key, ids):
                idx.seen[(tenant, event_id)] = pos
        return idx

    def get(self, ident: Ident) -> int | None:
        return self.seen.get(ident)

    def add(self, state: MutableMapping[str, Any], key: str, max_ts: int, ids: list[list[Any]]) -> None:
        value = state[key] = merged(state.get(key), max_ts, ids)
        self.entries[key] = value[0]
        for tenant, event_id, pos in ids:
            self.seen[(tenant, event_id)] = pos

    def expired(self, state: MutableMapping[str, Any], cutoff: int) -> list[str]:
        gone = [k for k, ts in self.entries.items() if ts < cutoff]
        for key in gone:
            del self.entries[key]
            for tenant, event_id, pos in entry_ids(key, state[key][1]):
                if self.seen.get((tenant, event_id)) == pos:
                    del self.seen[(tenant, event_id)]
        return gone


# --- on disk -------------------------------------------------------------------------------------

INDEX_TAG = b"\x00d"  # index keys: cannot collide with the table's JSON keys or Faust's offset key
_POS = struct.Struct(">q")


def index_key(tenant: str, event_id: str) -> bytes:
    return INDEX_TAG + tenant.encode() + b"\x1f" + event_id.encode()


def index_writes(ids: Iterable[list[Any]]) -> Iterable[tuple[bytes, bytes]]:
    for tenant, event_id, pos in ids:
        yield index_key(tenant, event_id), _POS.pack(pos)


def index_deletes(get: Callable[[bytes], bytes | None], ids: Iterable[list[Any]]) -> Iterable[bytes]:
    """The index keys of these ids that still point at these positions."""
    for tenant, event_id, pos in ids:
        k = index_key(tenant, event_id)
        v = get(k)
        if v is not None and _POS.unpack(v)[0] == pos:
            yield k


class DiskIndex:
    """One partition's index in its RocksDB. `db` returns the partition's open database (never
    held here: Faust closes it on revocation); `codec` encodes and decodes the table's keys and
    values as its changelog does."""

    def __init__(self, db: Callable[[], Any], codec: Any, p: int) -> None:
        self.db, self.codec, self.p = db, codec, p
        # entries of older versions, by key -> max ts (their keys are not time-ordered)
        self.legacy: dict[str, int] = {}
        for prefix in entry_prefixes(p)[1:]:
            for key, value in self._scan(prefix):
                self.legacy[key] = value[0]

    def _scan(self, prefix: str, below: bytes | None = None) -> Iterable[tuple[str, Any]]:
        start = self.codec.encode_key(prefix)[:-1]  # a JSON string without its closing quote
        it = self.db().iter()
        it.seek(start)
        while it.valid():
            k = it.key()
            if not k.startswith(start) or (below is not None and k >= below):
                break
            yield self.codec.decode_key(k), self.codec.decode_value(it.value())
            it.next()
        del it

    def get(self, ident: Ident) -> int | None:
        v = self.db().get(index_key(*ident))
        return None if v is None else _POS.unpack(v)[0]

    def add(self, state: MutableMapping[str, Any], key: str, max_ts: int, ids: list[list[Any]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for k, v in index_writes(ids):
            batch.put(k, v)
        self.db().write(batch)  # the index first: an entry is never on disk without its ids
        state[key] = merged(state.get(key), max_ts, ids)

    def expired(self, state: MutableMapping[str, Any], cutoff: int) -> list[str]:
        prefix = entry_prefixes(self.p)[0]
        below = self.codec.encode_key(prefix)[:-1] + b"%013d" % max(cutoff, 0)
        gone = list(self._scan(prefix, below))
        old = [k for k, ts in self.legacy.items() if ts < cutoff]
        gone += [(k, state[k]) for k in old]
        for k in old:
            del self.legacy[k]
        db = self.db()
        batch = WriteBatch(raw_mode=True)
        for key, value in gone:
            for index_key in index_deletes(db.get, entry_ids(key, value[1])):
                batch.delete(index_key)
        db.write(batch)
        return [key for key, _ in gone]
