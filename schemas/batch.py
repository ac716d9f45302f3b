"""Batched records: one Kafka record on the events topic carrying several billing events.

A record is ONE billing_event (a JSON object, as before), unless it has the header
``content-type: application/jsonl``; then its value is JSON Lines: up to MAX_BATCH_EVENTS
events, one per line (``\\n``-separated), at most MAX_BATCH_BYTES in all. Each line is a
billing_event on its own: validated, priced, deduplicated and dead-lettered by itself, at the
source position (partition, offset, index), where index is its line number (0-based; blank lines
are skipped but keep their number). Producers group a batch by target partition, with the same
key (``tenant_id/user_id``) and partitioner as single records.

A batch record over the limits is one rejection (nothing in it is priced)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from schemas.errors import InputRejected
from schemas.record import BATCH_TYPE, CONTENT_TYPE, read_kind

BATCH_HEADER = (CONTENT_TYPE, BATCH_TYPE)
MAX_BATCH_EVENTS = 4096
MAX_BATCH_BYTES = 900_000  # under the producer's and the broker's 1 MB default record limits
INDEX_BITS = 13  # a position is offset << INDEX_BITS | index
assert MAX_BATCH_EVENTS <= 1 << INDEX_BITS


class BatchTooLarge(InputRejected):
    """A batch record that cannot be split into events (too large, or empty)."""


def is_batch(headers: object) -> bool:
    """True when a record's headers (Kafka's list of (key, value) pairs) mark a batch (schemas/record.py)."""
    return read_kind(headers).batch


def split(value: bytes) -> list[tuple[int, bytes]]:
    """(index, line) of a batch record's events, blank lines skipped; BatchTooLarge if over the limits."""
    if len(value) > MAX_BATCH_BYTES:
        raise BatchTooLarge(f"batch record is {len(value)} bytes, over the {MAX_BATCH_BYTES}-byte limit")
    lines = value.split(b"\n")
    if len(lines) > MAX_BATCH_EVENTS + 1 or (len(lines) == MAX_BATCH_EVENTS + 1 and lines[-1].strip()):
        raise BatchTooLarge(f"batch record has more than {MAX_BATCH_EVENTS} lines")
    events = [(i, line.rstrip(b"\r")) for i, line in enumerate(lines) if line.strip()]
    if not events:
        raise BatchTooLarge("batch record holds no events")  # nothing to count is still said
    return events


def position(offset: int, index: int = 0) -> int:
    """The source position as one integer, ordered as (offset, index)."""
    return offset << INDEX_BITS | index


class Run:
    """Items (bytes) gathered for one bounded record: at most `max_items` of them, and at most
    `max_bytes` with one separator byte between each two (a ``\n`` in a batch record, a ``,`` in
    a sink record). The one packing rule of every record meterstream writes many items into:
    batch records (streams/producer.py, forwarded events) and sink records (schemas/records.py)."""

    __slots__ = ("items", "nbytes", "max_bytes", "max_items")

    def __init__(self, max_bytes: int = MAX_BATCH_BYTES, max_items: int = MAX_BATCH_EVENTS) -> None:
        self.items: list[bytes] = []
        self.nbytes = 0
        self.max_bytes, self.max_items = max_bytes, max_items

    def fits(self, item: bytes) -> bool:
        """Whether `item` goes in this run (an empty run takes any one item)."""
        return not self.items or (len(self.items) < self.max_items and self.nbytes + 1 + len(item) <= self.max_bytes)

    def add(self, item: bytes) -> None:
        self.nbytes += len(item) + 1 if self.items else len(item)
        self.items.append(item)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.max_items or self.nbytes >= self.max_bytes


def runs(
    items: Iterable[bytes], max_bytes: int = MAX_BATCH_BYTES, max_items: int = MAX_BATCH_EVENTS
) -> Iterator[list[bytes]]:
    """Consecutive items packed greedily into runs (see Run), in order."""
    run = Run(max_bytes, max_items)
    for item in items:
        if not run.fits(item):
            yield run.items
            run = Run(max_bytes, max_items)
        run.add(item)
    if run.items:
        yield run.items
