"""Sending adjustment records (schemas/adjustment.py) and waiting until the pipeline applied them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from schemas import adjustment
from schemas.errors import ConfigurationError, Unavailable
from streams.settings import Settings


class Sender:
    """Seals and sends adjustment records to the events topic, a partition at a time, each with
    a sequence above the last (the time in microseconds, or one more)."""

    def __init__(self, settings: Settings) -> None:
        from streams.kafka_security import kafka_security
        from streams.producer import make_producer
        from streams.web_token import ADJUST_KEY, TokenMissing, read_token

        self.settings = settings
        self.topic = settings.events_topic
        try:
            self.key = read_token(settings, ADJUST_KEY).get_secret_value().encode()
        except TokenMissing as exc:
            raise ConfigurationError(str(exc)) from None
        self.producer = make_producer(settings.bootstrap, kafka_security(settings), client_id="meterstream-adjust")
        self.last_seq = 0
        self.partitions = sorted(self.producer.partitions_for(self.topic) or ())
        if not self.partitions:
            raise Unavailable(f"no topic {self.topic} (run `meterstream up`)")

    def _seq(self) -> int:
        self.last_seq = max(time.time_ns() // 1000, self.last_seq + 1)
        return self.last_seq

    def send(
        self,
        by_partition: dict[int, list[dict[str, Any]]],
        audit: dict[str, Any] | None,
        timeout: float = 30,
        progress: Callable[[str], None] | None = None,
    ) -> dict[int, int]:
        """Send each partition's entries (records of at most MAX_ENTRIES, in order); the last
        offset written per partition."""
        futures = []
        for n, (p, entries) in enumerate(sorted(by_partition.items()), 1):
            if progress and len(entries) > 1000:
                progress(f"sending {len(entries)} entries to partition {p} ({n} of {len(by_partition)})")
            if p not in self.partitions:
                raise ConfigurationError(f"partition {p} is not one of {self.topic}'s")
            for value in adjustment.records(entries, audit):
                seq = self._seq()
                headers = adjustment.headers(self.key, value, topic=self.topic, partition=p, seq=seq)
                futures.append(self.producer.send(self.topic, value=value, partition=p, headers=headers))
        last: dict[int, int] = {}
        for f in futures:
            meta = f.get(timeout=timeout)
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
        return last

    def close(self) -> None:
        self.producer.close(timeout=10)


def wait_applied(
    settings: Settings, sent: dict[int, int], timeout: float, progress: Callable[[str], None] | None = None
) -> bool:
    """Wait until the rating group has committed past every offset in `sent` (its records are
    rated and their rows are in the sink topic), then until the sink group has committed the sink
    topic as far as it reached then (the rows are in the store). False when `timeout` passed."""
    from streams import health
    from streams.kafka_security import kafka_security

    deadline = time.monotonic() + timeout
    security = kafka_security(settings)
    rating, sink = health.rating_group(settings), health.sink_group(settings)
    target: dict[tuple[str, int], int] | None = None
    said = time.monotonic()
    while time.monotonic() < deadline:
        try:
            lags = asyncio.run(health.lag_once(settings.bootstrap, security, [rating, sink], timeout_s=5.0))
        except Exception as exc:  # noqa: BLE001 - Kafka away for a moment: ask again
            if progress:
                progress(f"waiting: Kafka did not answer ({' '.join(str(exc).split())[:120]})")
            time.sleep(1)
            continue
        if target is None:
            rated = {(p.topic, p.partition): p.committed for p in lags.get(rating.group_id, ())}
            behind = sum(max(0, o + 1 - rated.get((settings.events_topic, p), 0)) for p, o in sent.items())
            if progress and behind and time.monotonic() - said > 5:
                progress(f"waiting: the rating workers are {behind} records short of the last one sent")
                said = time.monotonic()
            if all(rated.get((settings.events_topic, p), 0) > o for p, o in sent.items()):
                target = {
                    (p.topic, p.partition): p.end for p in lags.get(sink.group_id, ()) if p.topic == settings.sink_topic
                }
        if target is not None:
            written = {(p.topic, p.partition): p.committed for p in lags.get(sink.group_id, ())}
            if all(written.get(tp, 0) >= end for tp, end in target.items()):
                return True
        time.sleep(0.5)
    return False
