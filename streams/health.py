"""What a worker says of its health: `GET /ready`, the roles and lag of `GET /status` and
`meterstream status`, and the consumer-lag gauge of /metrics.

Lag is read from Kafka, the one place that knows it for every process: for each consumer group
of a role, the offset it committed and the end of each partition of its topics (`KafkaLag`).
The worker asks every PROBE_S seconds, each time within PROBE_TIMEOUT_S; a probe that fails is
how the worker knows Kafka cannot be reached (Faust and aiokafka retry quietly meanwhile).
`meterstream status` and `report` ask the same way, from outside (`lag_once`).

A worker is ready (`Health.problems()` is empty) when
- its last probe of Kafka, at most STALE_S old, succeeded;
- its rating role (if it runs one) holds partitions of the events topic;
- its sink (if it holds the sink partitions) can reach the store: its last write, or its
  opening of the store, did not fail;
- and that sink is not stalled: it wrote within MS_READY_SINK_STALL_S while records wait for it.
A sink or alerts role that holds no partitions stands by (one process of their group holds
them all with the embedded engine): that is not a fault."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from streams.kafka_security import KafkaSecurity

log = logging.getLogger("meterstream.health")

PROBE_S = 5.0  # how often a worker asks Kafka
PROBE_TIMEOUT_S = 5.0  # how long one probe may take
STALE_S = 20.0  # a probe older than this is no answer (the probing task itself is stuck)


@dataclass(frozen=True)
class Group:
    """A role's consumer group and the topics it reads."""

    role: str  # rating, sink, alerts
    group_id: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int  # the group's committed offset (0: nothing committed yet)
    end: int  # the partition's end offset

    @property
    def lag(self) -> int:
        """Records written and not yet handled by the group."""
        return max(0, self.end - self.committed)


def total(lags: Iterable[PartitionLag]) -> int:
    return sum(p.lag for p in lags)


class KafkaLag:
    """Committed offsets and partition ends of consumer groups, from Kafka: an admin client and
    a consumer in no group, kept open between probes and opened again after a failure."""

    def __init__(self, bootstrap: str, security: KafkaSecurity) -> None:
        self.bootstrap, self.security = bootstrap, security
        self.admin: Any = None
        self.consumer: Any = None

    async def _open(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self.admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security.aiokafka())
            self.admin = admin  # closed by close() if starting it fails
            await admin.start()
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, **self.security.aiokafka()
            )
            self.consumer = consumer
            await consumer.start()

    async def lag(self, groups: Sequence[Group]) -> dict[str, list[PartitionLag]]:
        """Each group's lag per partition of its topics (a topic not created yet has none)."""
        from aiokafka import TopicPartition

        await self._open()
        await self.consumer._client.force_metadata_update()  # noqa: SLF001 - partitions created since
        out: dict[str, list[PartitionLag]] = {}
        for group in groups:
            tps = [
                TopicPartition(topic, p)
                for topic in group.topics
                for p in sorted(self.consumer.partitions_for_topic(topic) or ())
            ]
            if not tps:
                out[group.group_id] = []
                continue
            committed = await self.admin.list_consumer_group_offsets(group.group_id, partitions=tps)
            ends = await self.consumer.end_offsets(tps)
            out[group.group_id] = [
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    max(0, committed[tp].offset) if tp in committed else 0,
                    ends[tp],
                )
                for tp in tps
            ]
        return out

    async def close(self) -> None:
        admin, consumer, self.admin, self.consumer = self.admin, self.consumer, None, None
        for client in (consumer, admin):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop() if client is consumer else client.close(), PROBE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - closing a client of a broker that is away
                log.debug("closing a lag client: %s", exc)


async def lag_once(
    bootstrap: str, security: KafkaSecurity, groups: Sequence[Group], timeout_s: float = PROBE_TIMEOUT_S
) -> dict[str, list[PartitionLag]]:
    """One probe from outside a worker (`meterstream status`, `report`); asyncio.TimeoutError
    or a Kafka error when it cannot be had within `timeout_s`."""
    probe = KafkaLag(bootstrap, security)
    try:
        return await asyncio.wait_for(probe.lag(groups), timeout_s)
    finally:
        await probe.close()


class Role(Protocol):
    """What a role tells Health."""

    def partitions(self) -> list[tuple[str, int]] | None:
        """The (topic, partition)s it holds now; None before it has joined its group."""

    def problems(self, lag: int, now: float) -> list[str]:
        """Why it is not ready, given its group's lag now (none: ready)."""


@dataclass(eq=False)  # a prometheus_client collector: hashable by identity
class Health:
    """A worker's probe of Kafka and its roles' readiness; /ready, /status, the lag gauge."""

    bootstrap: str
    security: KafkaSecurity
    roles: dict[str, tuple[Group, Role]]  # by role name
    probe_s: float = PROBE_S
    checked_at: float | None = None  # when Kafka last answered a probe (time.time())
    error: str | None = "Kafka not asked yet (the worker is starting)"
    lags: dict[str, list[PartitionLag]] = field(default_factory=dict)  # by group id
    _client: KafkaLag | None = None

    async def probe(self) -> None:
        """Ask Kafka once, within PROBE_TIMEOUT_S; keep what it said."""
        if self._client is None:
            self._client = KafkaLag(self.bootstrap, self.security)
        try:
            self.lags = await asyncio.wait_for(self._client.lag([g for g, _ in self.roles.values()]), PROBE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any failure is "Kafka cannot be reached", said with its cause
            text = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                text = f"no answer within {PROBE_TIMEOUT_S:.0f} s"
            if self.error is None:
                log.warning("Kafka at %s cannot be reached: %s", self.bootstrap, text)
            self.error = text
            client, self._client = self._client, None
            await client.close()
            return
        if self.error is not None and self.checked_at is not None:
            log.info("Kafka at %s answers again", self.bootstrap)
        self.error, self.checked_at = None, time.time()

    async def run(self) -> None:
        """Probe every probe_s until cancelled."""
        try:
            while True:
                await self.probe()
                await asyncio.sleep(self.probe_s)
        finally:
            if self._client is not None:
                await self._client.close()

    def problems(self, now: float | None = None) -> list[str]:
        """Why this worker is not ready; empty when it is."""
        now = time.time() if now is None else now
        out = []
        if self.error is not None:
            out.append(f"Kafka at {self.bootstrap} cannot be reached: {self.error}")
        elif self.checked_at is None or now - self.checked_at > STALE_S:
            out.append(f"Kafka at {self.bootstrap} has not answered for {now - (self.checked_at or now):.0f} s")
        for group, role in self.roles.values():
            out.extend(role.problems(total(self.lags.get(group.group_id, ())), now))
        return out

    def status(self) -> dict[str, Any]:
        """The roles part of /status: each role's partitions, its group's lag per partition."""
        roles: dict[str, Any] = {}
        for name, (group, role) in self.roles.items():
            held = role.partitions()
            lags = self.lags.get(group.group_id, [])
            roles[name] = {
                "group": group.group_id,
                "partitions": None if held is None else [f"{t}/{p}" for t, p in sorted(held)],
                "lag": {f"{p.topic}/{p.partition}": p.lag for p in lags},
                "lag_total": total(lags),
            }
        return {
            "kafka": {
                "bootstrap": self.bootstrap,
                "reachable": self.error is None,
                "error": self.error,
                "checked_at": self.checked_at,
            },
            "roles": roles,
        }

    # -- prometheus_client Collector -------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "meterstream_consumer_lag",
            "records of a topic partition not yet handled by a consumer group (from Kafka, every 5 s)",
            labels=["group", "topic", "partition"],
        )
        for group_id, lags in sorted(self.lags.items()):
            for p in lags:
                lag.add_metric([group_id, p.topic, str(p.partition)], p.lag)
        yield lag
        held = GaugeMetricFamily(
            "meterstream_partitions_held", "topic partitions a role of this worker holds", labels=["role"]
        )
        for name, (_, role) in self.roles.items():
            held.add_metric([name], len(role.partitions() or ()))
        yield held
        yield GaugeMetricFamily(
            "meterstream_kafka_reachable", "1 when the worker's last probe of Kafka succeeded", value=self.error is None
        )
        yield GaugeMetricFamily("meterstream_ready", "1 when GET /ready answers 200", value=not self.problems())


def rating_group(settings: Any) -> Group:
    return Group("rating", settings.app_id, (settings.events_topic,))


def sink_group(settings: Any) -> Group:
    return Group("sink", f"{settings.app_id}-sink", (settings.sink_topic, settings.alert_log_topic))


def alerts_group(settings: Any) -> Group:
    return Group("alerts", f"{settings.app_id}-alerts", (settings.sink_topic,))


def waiting(lags: dict[str, list[PartitionLag]], settings: Any) -> tuple[int, int]:
    """(events not yet rated, sink records not yet written): what a report does not show yet."""
    rating = total(lags.get(rating_group(settings).group_id, ()))
    sink = total(p for p in lags.get(sink_group(settings).group_id, ()) if p.topic == settings.sink_topic)
    return rating, sink


def worker_status(url: str, token: str | None, timeout: float = 5.0) -> dict[str, Any] | str:
    """A worker's /status, or why it could not be had (one line)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{url}/status", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the operator's worker URL
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        return f"answers {exc.code} (is MS_WEB_TOKEN the workers' token?)"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"not answering ({reason})"
