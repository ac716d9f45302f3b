"""Where an event goes: its key and its partition, one rule for every producer and the raters.

An event's key is ``tenant_id/user_id``; its partition is the one kafka-python's default
partitioner gives that key (murmur2, positive, modulo the topic's partition count, over the
sorted ids). The project's producers send it there (streams/producer.py), and the rater counts
an event on that partition only, its canonical one (streams/rating/rater.py): an event read
elsewhere is forwarded there, so that its duplicates meet it whatever partition a producer chose."""

from __future__ import annotations

from collections.abc import Iterable

import orjson


def event_key(line: bytes) -> bytes | None:
    """``tenant_id/user_id`` when the line is a JSON object with both, else None."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict):
        t, u = doc.get("tenant_id"), doc.get("user_id")
        if isinstance(t, str) and isinstance(u, str):
            return f"{t}/{u}".encode()
    return None


class _TopicView:
    """The part of kafka-python's ClusterMetadata its DefaultPartitioner reads, for one topic."""

    def __init__(self, topic: str, partitions: Iterable[int]) -> None:
        self._topic, self._partitions = topic, set(partitions)

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self._partitions)

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(self._partitions)


def partition_for_key(key: bytes, partitions: Iterable[int], topic: str = "t") -> int:
    """The partition kafka-python's default partitioner gives a keyed record (its own code:
    murmur2 of the key, positive, modulo the number of partitions, over the sorted ids)."""
    from kafka.partitioner.default import DefaultPartitioner

    return DefaultPartitioner().partition(topic, key, key, None, None, _TopicView(topic, partitions))


class Canonical:
    """An event's canonical partition (`partition_for_key` of its key), cached per key."""

    def __init__(self, partitions: int) -> None:
        self.partitions = range(partitions)
        self.cache: dict[tuple[str, str], int] = {}

    def __call__(self, tenant: str, user: str) -> int:
        p = self.cache.get((tenant, user))
        if p is None:
            if len(self.cache) > 200_000:
                self.cache.clear()
            p = self.cache[(tenant, user)] = partition_for_key(f"{tenant}/{user}".encode(), self.partitions)
        return p
