"""The rating state on disk: Faust's rocksdb table store (rocksdict), with the dedup index kept
beside the entries (streams/rating/dedup.py) and RocksDB's memory bounded.

Faust restores a partition from its changelog from the last offset this store persisted, so a
restart reads only the tail. Restored entries have their index keys derived here, in the same
pass; a restored tombstone (an expired entry) removes them.

Memory: one block cache (partitioned index and filter blocks included) and one write buffer
budget shared by every partition's database, 10 bloom bits per key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import faust.stores
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore

from streams.rating.dedup import entry_ids, index_deletes, index_writes, is_entry

_SHARED: dict[tuple[int, int], tuple[Any, Any]] = {}


class BoundedOptions(RocksDBOptions):
    """Faust's options, with the cache and the memtables shared and bounded (Faust's defaults: a
    2 GiB cache and 3 x 64 MiB memtables per partition)."""

    def __init__(self, *, cache_bytes: int, write_buffer_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache_bytes, self.write_buffer_bytes = cache_bytes, write_buffer_bytes

    def as_options(self) -> Any:
        key = (self.cache_bytes, self.write_buffer_bytes)
        if key not in _SHARED:
            cache = rocksdict.Cache(self.cache_bytes)
            _SHARED[key] = (
                cache,
                rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(self.write_buffer_bytes, False, cache),
            )
        cache, wbm = _SHARED[key]
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_open_files(self.max_open_files or 1000)
        opts.set_write_buffer_size(min(self.write_buffer_size, self.write_buffer_bytes // 2))
        opts.set_max_write_buffer_number(2)
        opts.set_target_file_size_base(self.target_file_size_base)
        opts.set_write_buffer_manager(wbm)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_block_cache(cache)
        # index and filters in the cache, partitioned: a lookup loads a few KiB of them, not the
        # whole filter of a 64 MiB file (which made lookups on 100M ids thrash the cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_metadata_block_size(4096)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        opts.set_block_based_table_factory(table)
        return opts


class StateStore(RocksStore):
    """Faust's rocksdb store for the rating state (``meterstream-rocksdb://``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        options = dict(kwargs.get("options") or {})
        cache, wb = options.pop("cache_bytes", 128 << 20), options.pop("write_buffer_bytes", 64 << 20)
        kwargs["options"] = options
        super().__init__(*args, **kwargs)
        self.rocksdb_options = BoundedOptions(
            cache_bytes=cache, write_buffer_bytes=wb, **(self.options or {}), use_rocksdict=True
        )

    def apply_changelog_batch(
        self, batch: Iterable[Any], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        events = list(batch)
        index: dict[tuple[int, bytes], bytes | None] = {}  # index keys as this batch leaves them
        entries: dict[tuple[int, bytes], bytes | None] = {}  # entries as this batch leaves them
        for event in events:
            msg = event.message
            key = self._decode_key(msg.key)
            if not isinstance(key, str) or not is_entry(key):
                continue
            p, db = msg.partition, self._db_for_partition(msg.partition)

            def get(k: bytes, p: int = p, db: Any = db) -> bytes | None:
                return index[(p, k)] if (p, k) in index else db.get(k)

            if msg.value is None:  # an expired entry: its ids go too
                old = entries[(p, msg.key)] if (p, msg.key) in entries else db.get(msg.key)
                if old is not None:
                    for k in list(index_deletes(get, entry_ids(key, json.loads(old)[1]))):
                        index[(p, k)] = None
            else:
                for k, put in index_writes(entry_ids(key, json.loads(msg.value)[1])):
                    index[(p, k)] = put
            entries[(p, msg.key)] = msg.value
        writes: dict[int, Any] = {}
        for (p, k), v in index.items():
            wb = writes.setdefault(p, rocksdict.WriteBatch(raw_mode=True))
            if v is None:
                wb.delete(k)
            else:
                wb.put(k, v)
        for p, wb in writes.items():  # the index before the entries, as when they are written
            self._db_for_partition(p).write(wb)
        super().apply_changelog_batch(events, to_key, to_value)

    # the codec DiskIndex and PartitionState use: the changelog's own encoding
    def encode_key(self, key: str) -> bytes:
        return self._encode_key(key)

    def decode_key(self, raw: bytes) -> Any:
        return self._decode_key(raw)

    def encode_value(self, value: Any) -> bytes | None:
        return self._encode_value(value)

    def decode_value(self, raw: bytes) -> Any:
        return self._decode_value(raw)

    def estimated_keys(self) -> int:
        """RocksDB's estimate of the keys in the open partitions (a count would read them all)."""
        return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in self._dbs.values())


faust.stores.STORES.aliases["meterstream-rocksdb"] = "streams.rating.rocks:StateStore"
