"""Kafka partition assignment for consumers that must not split their topic: the alerts role
(spend per budget spans every partition) and the sink on the embedded engine (one process per
data directory). Every partition goes to one member; the others stand by and take over when it
leaves the group."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def one_owner_assignor() -> Any:
    """A partition assignor that gives every partition to one member (the lowest member id)."""
    from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

    class OneOwner(AbstractPartitionAssignor):
        name = "meterstream-one-owner"
        version = 0

        @classmethod
        def assign(cls, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
            owner = min(members)
            topics = sorted({t for m in members.values() for t in m.subscription})
            owned = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
            return {m: ConsumerProtocolMemberAssignment(cls.version, owned if m == owner else [], b"") for m in members}

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> Any:
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            pass

    return OneOwner
