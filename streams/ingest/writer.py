"""The ingest's Kafka side: a request's events and refused records written, and the broker's
acknowledgement of every one of their records awaited.

One KafkaProducer (streams/producer.py's make_producer: acks=all, idempotent), made at the first
request, so the server starts while Kafka is away and answers 503 until it is back. Events go
through `Producer.send_batch`: the records `meterstream produce` writes (a JSON Lines record per
partition group, the batch header), each with the header ``ms-producer: NAME``. Refused items go
to the events topic too, one refused record each (schemas/refusal.py), as `meterstream produce
--format` writes them, with the same header: the rater rejects them into the dead-letter topic
and rejected_events. `write` returns once the broker acknowledged every record of the request, and raises
Unavailable when one failed or the acknowledgement took longer than MS_INGEST_ACK_TIMEOUT_S (the
records may still arrive later: a resent request's events are then duplicates, which the stream
drops by event_id).

No record is built larger than the broker takes. Before the client is made, the events topic's
``max.message.bytes`` is read with the admin client (the broker's ``message.max.bytes`` when the
topic has none yet; Kafka's default when neither can be read): `Limits`. The client's
``max_request_size`` and ``batch_size`` and the batches' byte budget stay within it, and the
server refuses, item by item, an event whose own record would not (Intake.fit). A broker that
refuses a record all the same would leave kafka-python's idempotent producer in its fatal state,
failing every later record: a client found unusable (that state, its I/O thread gone, closed) is
closed and replaced, with the limits read again, before the next request is written."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from kafka.errors import AuthorizationError, KafkaError, UnsupportedVersionError

from schemas import errors
from schemas.batch import BATCH_HEADER, MAX_BATCH_BYTES
from schemas.refusal import refusal_header
from streams.kafka_security import kafka_security
from streams.placement import event_key
from streams.producer import Delivery, ProduceError, Producer, make_producer
from streams.settings import Settings

log = logging.getLogger("meterstream.ingest")
PRODUCER_HEADER = "ms-producer"
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # message.max.bytes when the broker's cannot be read
RECORD_MARGIN = 64  # bytes kept below the broker's limit
CLIENT_BATCH_BYTES = 256 * 1024  # kafka-python's batch_size (make_producer), at most
_LONGEST_NAME = "x" * 64  # a producer name is at most 64 characters (tokens.py)


class Unavailable(errors.Unavailable):
    """Kafka did not acknowledge a request's records; the message says how."""


def record_size(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    """The most bytes a record batch holding this one record takes (kafka-python's bound: the
    batch header, the record's own overhead, key, value, headers): what the broker compares."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


@dataclass(frozen=True)
class Limits:
    """The events topic's record limit, and what of it a record of the ingest may use."""

    max_message_bytes: int  # the broker's limit for one record batch on the events topic
    source: str  # where it was read: "max.message.bytes of topic T", ...

    @property
    def record_max(self) -> int:
        """The largest record batch the ingest builds (and kafka-python's max_request_size)."""
        return max(1, self.max_message_bytes - RECORD_MARGIN)

    @property
    def batch_bytes(self) -> int:
        """The byte budget of a batch record's value: with its headers (the batch header, the
        longest producer name) and overhead, within record_max."""
        headers = [BATCH_HEADER, (PRODUCER_HEADER, _LONGEST_NAME.encode())]
        overhead = record_size(None, b"", headers) + 4  # + the value's length takes up to 4 bytes more
        return max(1, min(MAX_BATCH_BYTES, self.record_max - overhead))

    def too_large(self, event: bytes, producer: str) -> str | None:
        """Why the event cannot be written (its record alone is over the limit), else None."""
        size = record_size(event_key(event), event, [(PRODUCER_HEADER, producer.encode())])
        if size <= self.record_max:
            return None
        return (
            f"event is {len(event)} bytes: its Kafka record ({size} bytes) is over the "
            f"{self.max_message_bytes}-byte limit of the events topic ({self.source})"
        )

    def refusal_fits(self, value: bytes, reason: str, producer: str) -> bool:
        headers = [refusal_header(reason), (PRODUCER_HEADER, producer.encode())]
        return record_size(None, value, headers) <= self.record_max


def read_limits(settings: Settings, timeout_ms: int) -> Limits:
    """The events topic's max.message.bytes, else the broker's message.max.bytes (a topic not
    created yet takes it), else Kafka's default (nothing could be read: said in the log)."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topic = settings.events_topic
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id="meterstream-ingest-admin",
        request_timeout_ms=timeout_ms,
        **kafka_security(settings).kafka_python(bootstrap_timeout_ms=timeout_ms),
    )
    try:
        try:
            found = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, ["max.message.bytes"])], config_filter="all"
            )
            value = found.get("topic", {}).get(topic, {}).get("max.message.bytes", {}).get("value")
            if value is not None:
                return Limits(int(value), f"max.message.bytes of topic {topic}")
            brokers = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
            resources = [ConfigResource(ConfigResourceType.BROKER, str(b), ["message.max.bytes"]) for b in brokers]
            found = admin.describe_configs(resources, config_filter="all")
            values = [
                int(c["message.max.bytes"]["value"])
                for c in found.get("broker", {}).values()
                if c.get("message.max.bytes", {}).get("value") is not None
            ]
            if values:
                return Limits(min(values), "message.max.bytes of the brokers")
        except (AuthorizationError, UnsupportedVersionError) as exc:  # not allowed to; a broker before 0.11
            why = type(exc).__name__
        else:
            why = "no DESCRIBE_CONFIGS permission"  # a denied resource answers no config
        log.warning(
            "the events topic's record limit could not be read (%s): Kafka's default %d is assumed",
            why,
            KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        )
        return Limits(KAFKA_DEFAULT_MAX_MESSAGE_BYTES, "Kafka's default message.max.bytes")
    finally:
        admin.close()


def usable(client: Any) -> bool:
    """Whether a kafka-python KafkaProducer can still deliver: not closed, its I/O thread alive,
    its idempotent (or transactional) state not failed. A failed one fails every record sent
    to it from then on, whatever the record."""
    if getattr(client, "_closed", False):
        return False
    sender = getattr(client, "_sender", None)
    if sender is not None and not sender.is_alive():
        return False
    manager = getattr(client, "_transaction_manager", None)
    return not (manager is not None and manager.has_error())


class Writer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.ingest_ack_timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._events: Producer | None = None
        self._limits: Limits | None = None
        self.replaced = 0  # clients closed as unusable and replaced

    def _producer(self) -> tuple[Producer, Any, Limits]:
        """The events topic's Producer on the one client, its client and the limits it was made
        for: made on first use, and again when the client became unusable (in a thread: it waits
        up to the timeout for the broker)."""
        with self._lock:
            if self._events is not None and not usable(self._client):
                self._retire_locked("found unusable")
            if self._events is None:
                ms = int(self.timeout * 1000)
                limits = read_limits(self.settings, ms)
                client = make_producer(
                    self.settings.bootstrap,
                    kafka_security(self.settings),
                    linger_ms=5,
                    client_id="meterstream-ingest",
                    bootstrap_timeout_ms=ms,
                    max_block_ms=ms,
                    max_request_size=limits.record_max,
                    batch_size=min(CLIENT_BATCH_BYTES, limits.record_max),
                )
                self._events = Producer(None, self.settings.events_topic, client=client, batch_bytes=limits.batch_bytes)
                self._client, self._limits = client, limits
                log.info(
                    "writing to %s: records of at most %d bytes (%s: %d)",
                    self.settings.events_topic,
                    limits.record_max,
                    limits.source,
                    limits.max_message_bytes,
                )
            assert self._limits is not None
            return self._events, self._client, self._limits

    async def limits(self) -> Limits:
        """The limits of the client the next write uses (connecting first, if need be); raises
        Unavailable when Kafka cannot be reached."""
        try:
            async with asyncio.timeout(self.timeout):
                return (await asyncio.to_thread(self._producer))[2]
        except TimeoutError:
            raise Unavailable(f"Kafka did not answer within {self.timeout:g} s") from None
        except (KafkaError, RuntimeError, OSError) as exc:  # no broker, no metadata
            raise Unavailable(f"Kafka is unavailable ({type(exc).__name__})") from None

    def _retire_locked(self, why: str) -> None:
        """Forget the client (the next request makes a new one) and close it in the background."""
        events, client = self._events, self._client
        self._events = self._client = self._limits = None
        if events is None:
            return
        self.replaced += 1
        error = getattr(getattr(client, "_transaction_manager", None), "last_error", None)
        log.warning(
            "the Kafka client is %s (%s): closed, a new one is made for the next request",
            why,
            type(error).__name__ if error is not None else "closed",
        )
        threading.Thread(
            target=_close, args=(events, client, self.timeout), name="meterstream-ingest-retire", daemon=True
        ).start()

    def _retire_if_unusable(self, client: Any) -> None:
        with self._lock:
            if client is not None and client is self._client and not usable(client):
                self._retire_locked("unusable")

    def _send(
        self, events: list[bytes], refusals: list[tuple[bytes, str]], headers: list[tuple[str, bytes]], state: list[Any]
    ) -> list[Delivery]:
        producer, client, _ = self._producer()
        state.append(client)
        deliveries = [producer.send_batch(events, headers)] if events else []
        if refusals:
            topic = self.settings.events_topic
            refused = Delivery(topic)
            for value, reason in refusals:
                refused.add(client.send(topic, value=value, headers=[refusal_header(reason), *headers]), [value])
            deliveries.append(refused)
        return deliveries

    async def write(self, events: list[bytes], refusals: list[tuple[bytes, str]], producer: str) -> None:
        """Write the events and refused records of one request from `producer`; return once the
        broker acknowledged all of their records, else raise Unavailable (and replace the client
        if the failure left it unusable)."""
        headers = [(PRODUCER_HEADER, producer.encode())]
        state: list[Any] = []  # the client the records went to
        try:
            async with asyncio.timeout(self.timeout):
                deliveries = await asyncio.to_thread(self._send, events, refusals, headers, state)
                for delivery in deliveries:
                    await _resolved(delivery)
            for delivery in deliveries:
                delivery.check()
        except TimeoutError:
            raise Unavailable(f"Kafka did not acknowledge within {self.timeout:g} s") from None
        except ProduceError as exc:  # a record failed (all were resolved: none is pending)
            self._retire_if_unusable(state[0] if state else None)
            raise Unavailable(f"a Kafka write failed ({type(exc.cause).__name__})") from None
        except (KafkaError, RuntimeError, OSError) as exc:  # no broker, no metadata, closing
            self._retire_if_unusable(state[0] if state else None)
            raise Unavailable(f"Kafka is unavailable ({type(exc).__name__})") from None

    def close(self) -> None:
        """Close the client, after it sent what it holds (up to the timeout)."""
        with self._lock:
            if self._events is not None:
                self._events.close(timeout=self.timeout)


def _close(events: Producer, client: Any, timeout: float) -> None:
    """Close a retired client: what it still holds has failed or is given up (its requests were
    answered 503, or are being)."""
    try:
        events.close(timeout=timeout)
    except Exception as exc:  # its undelivered records: their requests are not confirmed
        log.info("the retired Kafka client closed with: %s", exc)
    sender = getattr(client, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()


async def _resolved(delivery: Delivery) -> None:
    """Wait, without holding a thread, until every record of the delivery is resolved."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def resolve() -> None:
        if not done.done():
            done.set_result(None)

    def from_io_thread() -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    delivery.when_done(from_io_thread)
    await done
