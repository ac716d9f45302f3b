"""Publishing billing events with kafka-python: idempotent producer, keyed by tenant and user
so that one user's events stay in order on one partition (and duplicates meet their original)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from schemas.validate import strip_line
from streams.kafka_security import PLAINTEXT, KafkaSecurity


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


def make_producer(bootstrap: str, security: KafkaSecurity = PLAINTEXT):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                         linger_ms=20, batch_size=256 * 1024, compression_type=None,
                         max_request_size=2 * 1024 * 1024, client_id="meterstream-produce",
                         **security.kafka_python())


def publish(bootstrap: str, topic: str, lines: Iterable[bytes], progress=None,
            security: KafkaSecurity = PLAINTEXT) -> int:
    """Send every line as is (bad lines too: they must reach the dead-letter path)."""
    producer = make_producer(bootstrap, security)
    n = 0
    futures = []
    try:
        for line in lines:
            line = strip_line(line)  # what `meterstream price` measures and rates, too
            if not line.strip():
                continue
            futures.append(producer.send(topic, key=event_key(line), value=line))
            n += 1
            if progress is not None:
                progress(1)
            if len(futures) >= 10_000:
                producer.flush()
                for f in futures:
                    f.get(timeout=60)  # surface any send error
                futures.clear()
        producer.flush()
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close()
    return n
