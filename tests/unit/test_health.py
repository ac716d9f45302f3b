"""streams/health.py's judgement of readiness, on roles whose state is set by hand: Kafka's last
probe, a rater without partitions, a sink that cannot write or has stalled while records wait, a
sink standing by. (Kafka stopped under a real worker: tests/integration/test_readiness.py.)"""

from __future__ import annotations

import asyncio

from streams.health import Group, Health, PartitionLag, total
from streams.kafka_security import PLAINTEXT
from streams.sink.consumer import SinkConsumer


class Rater:
    def __init__(self, held: list[tuple[str, int]]) -> None:
        self.held = held

    def partitions(self) -> list[tuple[str, int]] | None:
        return self.held

    def problems(self, lag: int, now: float) -> list[str]:
        return [] if self.held else ["the rating role holds no partition of ev"]


def sink(stall_s: float = 120.0) -> SinkConsumer:
    return SinkConsumer(
        "127.0.0.1:1",
        "sink",
        "g-sink",
        lambda: None,  # type: ignore[arg-type,return-value]  # never opened here
        max_records=10,
        alert_log_topic=None,
        rollup_keep_ms=1,
        security=PLAINTEXT,
        one_owner=True,
        stall_s=stall_s,
    )


def health(rater: Rater, s: SinkConsumer) -> Health:
    h = Health(
        "127.0.0.1:1",
        PLAINTEXT,
        {"rating": (Group("rating", "g", ("ev",)), rater), "sink": (Group("sink", "g-sink", ("sink",)), s)},
    )
    h.error, h.checked_at = None, 1000.0
    return h


def test_ready_when_kafka_answered_and_every_role_is_well():
    assert health(Rater([("ev", 0)]), sink()).problems(now=1005.0) == []


def test_kafka_not_asked_yet_failed_or_stale_is_not_ready():
    h = health(Rater([("ev", 0)]), sink())
    h.error, h.checked_at = "Kafka not asked yet (the worker is starting)", None
    assert h.problems(now=0.0) == [
        "Kafka at 127.0.0.1:1 cannot be reached: Kafka not asked yet (the worker is starting)"
    ]
    h.error, h.checked_at = None, 1000.0
    assert h.problems(now=1021.0) == ["Kafka at 127.0.0.1:1 has not answered for 21 s"]


def test_a_rater_without_partitions_is_not_ready():
    assert health(Rater([]), sink()).problems(now=1001.0) == ["the rating role holds no partition of ev"]


def test_a_sink_standing_by_is_ready_whatever_it_failed_before():
    s = sink()
    s.store_problem = "cannot open the chDB data directory"  # a standby: the owner holds the engine
    assert health(Rater([("ev", 0)]), s).problems(now=1001.0) == []


def test_a_sink_that_cannot_write_is_not_ready_until_a_write_succeeds():
    s = sink()
    s.active_since = 900.0
    s.store_problem = "Code: 999. the server is away"
    assert health(Rater([("ev", 0)]), s).problems(now=1001.0) == [
        "the sink cannot write to the store: Code: 999. the server is away"
    ]


def test_a_sink_stalls_only_with_records_waiting_past_the_bound():
    s = sink(stall_s=120.0)
    s.active_since = 0.0
    s.last_write_at = 1000.0
    h = health(Rater([("ev", 0)]), s)
    h.lags = {"g-sink": [PartitionLag("sink", 0, committed=10, end=15)]}
    h.checked_at = 5000.0  # Kafka answered just now at every moment asked below
    assert h.problems(now=1100.0) == []  # 100 s quiet: within the bound
    assert h.problems(now=1121.0) == ["the sink has written nothing for 121 s while 5 records wait"]
    h.lags = {"g-sink": [PartitionLag("sink", 0, committed=15, end=15)]}
    assert h.problems(now=5000.0) == []  # nothing waits: a quiet sink is a well one


def test_lag_counts_only_what_is_ahead_of_the_commit():
    assert total([PartitionLag("t", 0, 7, 10), PartitionLag("t", 1, 0, 0), PartitionLag("t", 2, 12, 10)]) == 3


def test_a_probe_of_a_broker_that_is_not_there_says_so_within_its_timeout():
    h = Health("127.0.0.1:1", PLAINTEXT, {"rating": (Group("rating", "g", ("ev",)), Rater([("ev", 0)]))})
    asyncio.run(h.probe())
    assert h.error is not None and h.checked_at is None
    assert h.problems()[0].startswith("Kafka at 127.0.0.1:1 cannot be reached: ")
