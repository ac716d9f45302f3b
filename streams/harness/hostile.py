"""Kafka records no well-behaved client writes, written as an attacker with write access would:
tombstones, headers without a value, header keys that are not UTF-8, empty and huge values
(tests/integration/test_hostile_records.py, the chaos runs' bad-input scenarios).

kafka-python refuses to build most of them, so they are written with aiokafka's producer and
its pure-Python record builder, whose header key is taken as ``key.encode("utf-8")``: a
``RawKey`` gives any bytes there."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from schemas.batch import BATCH_HEADER
from schemas.catalog_record import CATALOG_HEADER
from schemas.refusal import REFUSED_HEADER


class RawKey(str):
    """A header key whose UTF-8 encoding is the given bytes (not UTF-8 at all, if one likes)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        key = super().__new__(cls, raw.decode("latin-1"))
        key.raw = raw
        return key

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return self.raw


@dataclass
class Raw:
    partition: int
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    key: bytes | None = None


@contextmanager
def _python_builder():
    from aiokafka.producer import message_accumulator
    from aiokafka.record import default_records

    fast = message_accumulator.DefaultRecordBatchBuilder
    message_accumulator.DefaultRecordBatchBuilder = default_records._DefaultRecordBatchBuilderPy
    try:
        yield
    finally:
        message_accumulator.DefaultRecordBatchBuilder = fast


async def _write(bootstrap: str, topic: str, records: list[Raw]) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        placed = []
        for r in records:  # one record a batch: each lands alone, in this order
            batch = producer.create_batch()
            if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                raise ValueError("record too large for one batch")
            batch.close()
            meta = await (await producer.send_batch(batch, topic, partition=r.partition))
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


def write_raw(bootstrap: str, topic: str, records: list[Raw]) -> list[tuple[int, int]]:
    """Write the records in order; their (partition, offset)s."""
    with _python_builder():
        return asyncio.run(_write(bootstrap, topic, records))


def hostile(p: int, event: bytes) -> list[tuple[Raw, str]]:
    """Bad records for partition `p` (`event`: a good event's bytes, where a value is wanted),
    each with words its rejection's reason holds. None of them may count, nor stop counting."""
    return [
        (Raw(p, None), "tombstone"),
        (Raw(p, None, key=b"acme/alice"), "tombstone"),
        (Raw(p, event, [(RawKey(b"\xff\xfe-trace"), b"1")]), "header key is not UTF-8"),
        (Raw(p, event, [(RawKey(b"ok"), b"1"), (RawKey(b"\xc3\x28"), None)]), "header key is not UTF-8"),
        (Raw(p, event, [(REFUSED_HEADER, None)]), "meterstream-refused has no value"),
        (Raw(p, event, [("content-type", None)]), "content-type has no value"),
        (Raw(p, event, [BATCH_HEADER, BATCH_HEADER]), "content-type is given twice"),
        (Raw(p, None, [CATALOG_HEADER]), "catalog record refused"),
        (Raw(p, None, [BATCH_HEADER]), "batch record holds no events"),
        (Raw(p, b""), ""),
        (Raw(p, b"\xff" * 1_000_000, [("x", None)]), ""),
        (Raw(p, b"x", [(REFUSED_HEADER, b"\x1b[31mred\r\nforged line")]), "\\x1b[31mred\\x0d\\x0aforged line"),
    ]
