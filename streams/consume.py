"""consume -> write -> commit, once, for the roles that read a topic of ours as a consumer group
(the sink, the alerts role).

A partition's batch is handed to the role's handler; its offsets are committed only after the
handler returned, so what was not written is read again after a crash or a rebalance (the
handlers are idempotent). aiokafka, no auto-commit, from the earliest offset; with `one_owner`,
every partition goes to one process of the group (streams/assignors.py: the others stand by)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.assignors import one_owner_assignor
from streams.kafka_security import PLAINTEXT, KafkaSecurity

Handler = Callable[[Any, list[Any]], Awaitable[None]]  # (topic partition, its messages, in order)


class CommitAfterWrite:
    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        *,
        max_records: int,
        one_owner: bool = True,
        security: KafkaSecurity = PLAINTEXT,
        on_revoked: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bootstrap, self.topics, self.group_id = bootstrap, list(topics), group_id
        self.max_records, self.one_owner, self.security, self.on_revoked = max_records, one_owner, security, on_revoked
        self.consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        on_revoked = self.on_revoked

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                if on_revoked is not None:
                    await on_revoked()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            **({"partition_assignment_strategy": (one_owner_assignor(),)} if self.one_owner else {}),
            **self.security.aiokafka(),
        )
        self.consumer.subscribe(self.topics, listener=Listener())
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    def assignment(self) -> set[Any]:
        return set(self.consumer.assignment())

    async def rewind(self) -> None:
        """Every assigned partition back to its committed offset (what was handled since is read again)."""
        for tp in self.consumer.assignment():
            self.consumer.seek(tp, (await self.consumer.committed(tp)) or 0)

    async def committed(self, tp: Any) -> int:
        return (await self.consumer.committed(tp)) or 0

    async def take(self, handle: Handler, timeout_ms: int = 200) -> None:
        """One poll: each partition's messages to `handle`, then its offsets committed."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        for tp, msgs in batches.items():
            await handle(tp, msgs)
            await self.consumer.commit({tp: msgs[-1].offset + 1})
