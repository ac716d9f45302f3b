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
drops by event_id)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from kafka.errors import KafkaError

from schemas.refusal import refusal_header
from streams.kafka_security import kafka_security
from streams.producer import Delivery, ProduceError, Producer, make_producer
from streams.settings import Settings

log = logging.getLogger("meterstream.ingest")
PRODUCER_HEADER = "ms-producer"


class Unavailable(Exception):
    """Kafka did not acknowledge a request's records; the message says how."""


class Writer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.ingest_ack_timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._events: Producer | None = None

    def _producer(self) -> Producer:
        """The events topic's Producer on the one client, made on first use (in a thread: it
        waits up to the timeout for the broker)."""
        with self._lock:
            if self._events is None:
                ms = int(self.timeout * 1000)
                client = make_producer(self.settings.bootstrap, kafka_security(self.settings), linger_ms=5,
                                       client_id="meterstream-ingest", bootstrap_timeout_ms=ms, max_block_ms=ms)
                self._events = Producer(None, self.settings.events_topic, client=client)
                self._client = client
            return self._events

    def _send(self, events: list[bytes], refusals: list[tuple[bytes, str]],
              headers: list[tuple[str, bytes]]) -> list[Delivery]:
        producer = self._producer()
        deliveries = [producer.send_batch(events, headers)] if events else []
        if refusals:
            topic = self.settings.events_topic
            refused = Delivery(topic)
            for value, reason in refusals:
                refused.add(self._client.send(topic, value=value, headers=[refusal_header(reason), *headers]), [value])
            deliveries.append(refused)
        return deliveries

    async def write(self, events: list[bytes], refusals: list[tuple[bytes, str]], producer: str) -> None:
        """Write the events and refused records of one request from `producer`; return once the
        broker acknowledged all of their records, else raise Unavailable."""
        headers = [(PRODUCER_HEADER, producer.encode())]
        try:
            async with asyncio.timeout(self.timeout):
                deliveries = await asyncio.to_thread(self._send, events, refusals, headers)
                for delivery in deliveries:
                    await _resolved(delivery)
            for delivery in deliveries:
                delivery.check()
        except TimeoutError:
            raise Unavailable(f"Kafka did not acknowledge within {self.timeout:g} s") from None
        except ProduceError as exc:  # a record failed (all were resolved: none is pending)
            raise Unavailable(f"a Kafka write failed ({type(exc.cause).__name__})") from None
        except (KafkaError, RuntimeError, OSError) as exc:  # no broker, no metadata, closing
            raise Unavailable(f"Kafka is unavailable ({type(exc).__name__})") from None

    def close(self) -> None:
        """Close the client, after it sent what it holds (up to the timeout)."""
        with self._lock:
            if self._events is not None:
                self._events.close(timeout=self.timeout)


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
