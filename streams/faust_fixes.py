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
