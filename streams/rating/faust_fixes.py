"""A fix to Faust's producer buffer that exact counting depends on (applied on import).

Faust commits input offsets after ``producer.flush()``, which first drains the buffer of table
changelog messages. That drain gives up after 0.1 s without a message sent, with messages still
pending, and a message taken off the queue but not yet handed to aiokafka is not counted at all.
A worker killed right after such a commit loses table updates of committed inputs (seen here as
events missing from rollups after a SIGKILL). This fix counts a message from `put` until aiokafka
has it, and makes `flush` wait until none is outstanding."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import producer as _producer

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
    _Buffer.put = _put
    _Buffer._send_pending = _send_pending
    _Buffer.flush = _flush
    _Buffer._ms_fixed = True


# Fix 2: Faust's commit could step over a message it never delivered. `_committed_offset` holds the
# NEXT offset to read, but `_new_offset` only refuses when the first acked offset is more than one
# past it: a single message dropped at the head (Faust drops messages that arrive while it
# suspends the flow for a rebalance, and a partition kept across the rebalance is not re-read)
# was then committed unprocessed and lost (seen as single missing offsets after SIGKILLs in
# ops/chaos R1). Here a hole at the head blocks the commit; the rating agent re-reads the hole.
from faust.transport import consumer as _consumer  # noqa: E402
from faust.utils.functional import consecutive_numbers  # noqa: E402

_Consumer = _consumer.Consumer
_original_new_offset = _Consumer._new_offset


def _new_offset(self: Any, tp: Any) -> int | None:
    acked = self._acked[tp]
    committed = self._committed_offset[tp]
    if acked and committed is not None and not self._gap[tp]:
        acked.sort()
        if acked[0] > committed:
            return None  # the message at `committed` was never acked: never commit past it
        batch = next(consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        return batch[-1] + 1
    return _original_new_offset(self, tp)


if not getattr(_Consumer, "_ms_fixed", False):
    _Consumer._new_offset = _new_offset
    _Consumer._ms_fixed = True
