"""Fixes to Faust that exact counting depends on (applied on import).

Fix 1, the producer buffer. Faust commits input offsets after ``producer.flush()``, which first
drains the buffer of table changelog messages. That drain gives up after 0.1 s without a message
sent, with messages still pending, and a message taken off the queue but not yet handed to
aiokafka is not counted at all. A worker killed right after such a commit loses table updates of
committed inputs (seen here as events missing from rollups after a SIGKILL). This fix counts a
message from `put` until aiokafka has it, and makes `flush` wait until none is outstanding.

Fixes 2 to 4 (below) keep Faust from committing past, or silently losing, a message of the
events topic around a rebalance; the rating agent restarts its worker at any hole left."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import producer as _producer

import streams.aiokafka_records  # noqa: F401 - Faust's fetcher reads any header key (see there)

_Buffer = _producer.ProducerBuffer
_original_put = _Buffer.put


def _put(self: Any, fut: Any) -> None:
    self._ms_outstanding = getattr(self, "_ms_outstanding", 0) + 1
    _original_put(self, fut)


async def _send_pending(self: Any, fut: Any) -> None:
    try:
        await fut.message.channel.publish_message(fut, wait=False)
    finally:
        self._ms_outstanding -= 1


async def _flush(self: Any) -> None:
    while getattr(self, "_ms_outstanding", 0):
        if self.state != "running":
            raise RuntimeError("Cannot flush: producer not running")
        await asyncio.sleep(0.002)


if not getattr(_Buffer, "_ms_fixed", False):
    _fixes: tuple[tuple[str, Any], ...] = (
        ("put", _put),
        ("_send_pending", _send_pending),
        ("flush", _flush),
        ("_ms_fixed", True),
    )
    for _name, _fix in _fixes:
        setattr(_Buffer, _name, _fix)


# Fix 2: Faust's commit could step over a message it never delivered. `_committed_offset` holds the
# NEXT offset to read, but `_new_offset` only refuses when the first acked offset is more than one
# past it, and not at all when Faust holds no committed offset (none yet, or 0). Faust drops a
# message that arrives while it suspends the flow for a rebalance (seen as single missing offsets
# after SIGKILLs in ops/chaos R1 and in tests/integration/test_pipeline.py). Here a hole at the head
# blocks the commit, measured from the committed offset or else from where the partition resumed
# (fix 3); before either is known nothing is committed. It guards the topics in STRICT_TOPICS.
#
# Fix 3: where a partition resumes after a rebalance. aiokafka's `seek_to_committed` seeks only the
# partitions with a committed offset above 0: the others kept their fetch position, and a message
# dropped at the rebalance was never read again. Here they seek to the log's start. The offset
# each input partition resumes at is kept in `consumer.resume_at` (for fix 2 and for the rating
# agent's hole check).
#
# Fix 4: Faust's fetch loop drops a message below the last offset it read: meant for stale
# records, it dropped the records read again after a seek, when the loop, still delivering
# records fetched before the seek, set its read offset past them (seen as hundreds of missing
# offsets right after a restart: Faust resumes a worker's partitions before it seeks them). On the
# guarded topics every record is delivered; the rating agent skips one it was given before.
import bisect  # noqa: E402

from faust.transport import consumer as _consumer  # noqa: E402
from faust.utils.functional import consecutive_numbers  # noqa: E402

_Consumer = _consumer.Consumer
_original_new_offset = _Consumer._new_offset
STRICT_TOPICS: set[str] = set()  # the guarded input topics (no compaction or transactions: no real gaps)


def _new_offset(self: Any, tp: Any) -> int | None:
    if tp.topic not in STRICT_TOPICS:
        return _original_new_offset(self, tp)
    acked = self._acked[tp]
    if not acked:
        return None
    committed = self._committed_offset[tp]
    if committed is None:
        committed = resume_at(self).get(tp)
    if committed is None:
        return None  # where this partition resumed is not known yet
    acked.sort()
    below = bisect.bisect_left(acked, committed)  # offsets read again after a seek back
    if below:
        self._acked_index[tp].difference_update(acked[:below])
        acked[:below] = []
    if not acked or acked[0] > committed:
        return None  # the message at `committed` was never acked: never commit past it
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return batch[-1] + 1


def resume_at(consumer: Any) -> dict[Any, int]:
    """Input partition -> the offset the last seek put it at (fix 3)."""
    return consumer.__dict__.setdefault("resume_at", {})


async def resumed_at(consumer: Any, tp: Any) -> int:
    """Where an input partition resumed: as the last seek put it (fix 3), or, on a worker's first
    assignment before Faust's first seek, where aiokafka started it: the committed offset, else
    the log's start (nothing is committed in between: fix 2 waits for this)."""
    known = resume_at(consumer).get(tp)
    if known is not None:
        return known
    from aiokafka.structs import TopicPartition

    thread = consumer._thread
    offset = await thread.call_thread(thread._ensure_consumer().committed, TopicPartition(tp.topic, tp.partition))
    if not offset:
        offset = (await consumer.earliest_offsets(tp))[tp]
    return resume_at(consumer).setdefault(tp, offset)


async def _perform_seek(self: Any) -> None:
    committed = {_consumer.ensure_TP(tp): offset for tp, offset in (await self.seek_to_committed()).items()}
    changelogs = self.app.tables.changelog_topics
    unseeked = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
    if unseeked:  # None or 0: aiokafka left the fetch position where it was
        starts = await self.earliest_offsets(*unseeked)
        for tp in unseeked:
            committed[tp] = starts[tp]
            await self._seek(tp, starts[tp])
    self._read_offset.update(
        {tp: offset if offset is not None and offset >= 0 else None for tp, offset in committed.items()}
    )
    self._committed_offset.update({tp: offset for tp, offset in committed.items() if offset})
    resume_at(self).update(
        {tp: offset for tp, offset in committed.items() if offset is not None and tp.topic not in changelogs}
    )


_original_reset_state = _Consumer._reset_state


class _ReadOffsets(dict):
    """The fetch loop's read offsets: none on the guarded topics (fix 4)."""

    def __missing__(self, tp: Any) -> None:
        return None

    def __getitem__(self, tp: Any) -> int | None:
        return None if tp.topic in STRICT_TOPICS else super().__getitem__(tp)


def _reset_state(self: Any) -> None:
    _original_reset_state(self)
    if not isinstance(self._read_offset, _ReadOffsets):
        self._read_offset = _ReadOffsets(self._read_offset)


if not getattr(_Consumer, "_ms_fixed", False):
    _fixes = (
        ("_new_offset", _new_offset),
        ("perform_seek", _perform_seek),
        ("_reset_state", _reset_state),
        ("_ms_fixed", True),
    )
    for _name, _fix in _fixes:
        setattr(_Consumer, _name, _fix)
