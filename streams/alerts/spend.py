"""A (budget, period)'s spend already in the ledger: the evaluator's starting point.

The read is `ledger_spend` (streams/analyst/reads.py): per source partition, the sum and the position of
the last event it includes. It runs on the sink's own store when the alerts run in the sink's
process, on a ClickHouse server directly, or through the sink's web port when the sink holds the
embedded engine (its data directory is one process's). Before a lookup, the sink must have
written everything the alerts role has already evaluated (its committed offsets on the sink
topic reach the alerts role's): otherwise an event evaluated before its budget existed would be
in neither the lookup nor the running spend."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from streams.alerts.budgets import Budget
from streams.alerts.evaluator import LedgerSpend
from streams.analyst import reads

log = logging.getLogger("meterstream.alerts")
Rows = list[dict[str, Any]]
RunRead = Callable[[str, dict[str, Any]], Awaitable[Rows]]


def params(b: Budget, start: Any, end: Any) -> dict[str, Any]:
    return {
        "tenant_id": b.tenant_id,
        "user_id": b.user_id,
        "model": b.model,
        **({"labels": b.labels} if b.labels else {}),
        "currency": b.currency,
        "since": start,
        "until": end,
    }


def from_rows(rows: Rows) -> LedgerSpend:
    return LedgerSpend(sum((Decimal(r["cost"]) for r in rows), Decimal(0)), {int(r["p"]): int(r["upto"]) for r in rows})


def on_store(store_query: Callable[[str, dict[str, Any]], Awaitable[Rows]]) -> RunRead:
    """Reads run on a store (the sink's, under its lock, or a server's)."""

    async def run(name: str, p: dict[str, Any]) -> Rows:
        read, checked = reads.parse(name, p)
        sql, bound = read.sql(checked)
        return await store_query(sql, bound)

    return run


def via_worker(reader: Any) -> RunRead:
    """Reads asked of the sink's web port (streams/analyst/reader.py Reader, remote)."""

    async def run(name: str, p: dict[str, Any]) -> Rows:
        return await asyncio.to_thread(reader.read, name, **p)

    return run


class SinkProgress:
    """Waits until the sink group's committed offsets reach given offsets of the sink topic."""

    def __init__(self, bootstrap: str, group_id: str, security: Any) -> None:
        self.bootstrap, self.group_id, self.security = bootstrap, group_id, security
        self.admin: Any = None

    async def committed(self, tps: list[Any]) -> dict[Any, int]:
        from aiokafka.admin import AIOKafkaAdminClient

        if self.admin is None:
            self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security.aiokafka())
            await self.admin.start()
        got = await self.admin.list_consumer_group_offsets(self.group_id, partitions=tps)
        return {tp: max(0, got[tp].offset) if tp in got else 0 for tp in tps}

    async def reach(self, done: dict[Any, int]) -> None:
        for step in itertools.count():
            committed = await self.committed(list(done))
            if all(committed[tp] >= off for tp, off in done.items()):
                return
            if step and step % 50 == 0:  # every 10 s
                log.info("waiting for the sink to write what the alerts have evaluated (%d s)", step // 5)
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.close()
            self.admin = None
