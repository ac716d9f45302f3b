"""aiokafka reads every record, whatever bytes its header keys hold (applied on import).

A Kafka header key is a protocol String, but the broker does not check that it is UTF-8: any
client can write one that is not. aiokafka decodes header keys with ``.decode("utf-8")`` while it
parses a fetched record batch, inside the consumer's fetcher; the ``UnicodeDecodeError`` escapes
the fetch, Faust's worker exits, and every restart crashes on the same offset (counting stops
until someone moves the group's offset by hand).

Here a batch is still parsed by aiokafka's fast (Cython) reader; only when that raises
``UnicodeDecodeError`` is the same batch parsed again by its pure-Python reader with header keys
decoded ``surrogateescape`` (lossless: the undecodable bytes become lone surrogates), from the
record after the last one already given out. Such a key is then seen by whoever reads the
headers: the rating agent dead-letters the record with the reason (schemas/record.py), as Kafka
Streams' ``LogAndContinueExceptionHandler`` does, and the partition goes on.

Every aiokafka consumer of this process is covered (the Faust app's, the sink's, the alerts')."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher as _fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record import default_records as _default
from aiokafka.record.memory_records import _MemoryRecordsPy
from aiokafka.record.util import decode_varint

_FastBatch = _default.DefaultRecordBatch
_FastMemoryRecords = _fetcher.MemoryRecords


class _TolerantPyBatch(_default._DefaultRecordBatchPy):
    """aiokafka's pure-Python batch reader, its header keys decoded ``surrogateescape``."""

    def _read_msg(self, decode_varint: Any = decode_varint) -> Any:
        # aiokafka 0.14's DefaultRecordBatch._read_msg, but for the header key's decoding.
        buffer = self._buffer
        pos: int = self._pos  # type: ignore[has-type]  # aiokafka sets it untyped
        length, pos = decode_varint(buffer, pos)
        start_pos = pos
        _, pos = decode_varint(buffer, pos)  # attributes
        ts_delta, pos = decode_varint(buffer, pos)
        if self.timestamp_type == self.LOG_APPEND_TIME:
            timestamp = self.max_timestamp
        else:
            timestamp = self.first_timestamp + ts_delta
        offset_delta, pos = decode_varint(buffer, pos)
        offset = self.base_offset + offset_delta
        key_len, pos = decode_varint(buffer, pos)
        if key_len >= 0:
            key: bytes | None = bytes(buffer[pos : pos + key_len])
            pos += key_len
        else:
            key = None
        value_len, pos = decode_varint(buffer, pos)
        if value_len >= 0:
            value: bytes | None = bytes(buffer[pos : pos + value_len])
            pos += value_len
        else:
            value = None
        header_count, pos = decode_varint(buffer, pos)
        if header_count < 0:
            raise CorruptRecordException(f"Found invalid number of record headers {header_count}")
        headers: list[tuple[str, bytes | None]] = []
        while header_count:
            h_key_len, pos = decode_varint(buffer, pos)
            if h_key_len < 0:
                raise CorruptRecordException(f"Invalid negative header key size {h_key_len}")
            h_key = bytes(buffer[pos : pos + h_key_len]).decode("utf-8", "surrogateescape")
            pos += h_key_len
            h_value_len, pos = decode_varint(buffer, pos)
            if h_value_len >= 0:
                h_value: bytes | None = bytes(buffer[pos : pos + h_value_len])
                pos += h_value_len
            else:
                h_value = None
            headers.append((h_key, h_value))
            header_count -= 1
        if pos - start_pos != length:
            raise CorruptRecordException(
                f"Invalid record size: expected to read {length} bytes in record payload, but instead read {pos - start_pos}"
            )
        self._pos = pos
        return _default._DefaultRecordPy(offset, timestamp, self.timestamp_type, key, value, headers)


class _Batch:
    """One record batch: read by the fast reader, by the tolerant one from where it failed."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._fast = _FastBatch(data)

    def __getattr__(self, name: str) -> Any:  # base_offset, next_offset, is_control_batch, ...
        return getattr(self._fast, name)

    def __next__(self) -> Any:  # the fetcher reads a control batch's one record with next()
        return next(self._fast)

    def __iter__(self) -> Iterator[Any]:
        last = -1
        try:
            for record in self._fast:
                last = record.offset
                yield record
        except UnicodeDecodeError:
            for record in _TolerantPyBatch(self._data):
                if record.offset > last:
                    yield record


class TolerantMemoryRecords(_MemoryRecordsPy):
    """A fetch response's record batches (aiokafka's MemoryRecords, batch by batch)."""

    def next_batch(self, *args: Any) -> Any:
        data = self._next_slice
        if data is None or len(data) < self.MIN_SLICE or data[self.MAGIC_OFFSET] < 2:
            return super().next_batch(*args)  # the end, a corrupt slice, or a legacy (v0/v1) batch
        self._cache_next()
        return _Batch(data)


if not getattr(_fetcher, "_ms_tolerant", False):
    _fetcher.MemoryRecords = TolerantMemoryRecords
    _fetcher._ms_tolerant = True
