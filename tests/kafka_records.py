"""Reading a topic back as the tests check it: records per partition, and the events in them as
the project's producer writes them (tests/integration/test_producer.py, test_ingest.py)."""

from __future__ import annotations

from schemas.batch import BATCH_HEADER, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, is_batch, split
from schemas.refusal import refusal_of
from streams.producer import event_key


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The topic's end offsets, per partition."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
        return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, start: dict[int, int] | None = None) -> dict[int, list]:
    """The topic's records per partition, in offset order: all of them, or those from `start`
    (offsets per partition, e.g. end offsets taken earlier) on."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=2 << 20)
    parts = sorted(start) if start is not None else sorted(c.partitions_for_topic(topic))
    tps = [TopicPartition(topic, p) for p in parts]
    c.assign(tps)
    for tp in tps:
        if start is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, start[tp.partition])
    end = c.end_offsets(tps)
    out: dict[int, list] = {tp.partition: [] for tp in tps}
    while any(c.position(tp) < end[tp] for tp in tps):
        for tp, msgs in c.poll(timeout_ms=1000).items():
            out[tp.partition].extend(msgs)
    c.close()
    return out


def events_of(records: dict[int, list], header: tuple[str, bytes] | None = None) -> dict[int, list[bytes]]:
    """The events per partition, batches opened; every record as the project's producer writes it
    (a batch: the batch header, no key, within the batch limits; a single event: its key), with
    `header` after those. Refused records (schemas/refusal.py) are not events and are skipped."""
    extra = [header] if header else []
    out: dict[int, list[bytes]] = {}
    for part, recs in records.items():
        out[part] = []
        for r in recs:
            if refusal_of(r.headers) is not None:
                continue
            if is_batch(r.headers):
                assert r.headers == [BATCH_HEADER, *extra] and r.key is None
                assert len(r.value) <= MAX_BATCH_BYTES
                lines = split(r.value)
                assert 2 <= len(lines) <= MAX_BATCH_EVENTS and [i for i, _ in lines] == list(range(len(lines)))
                out[part].extend(line for _, line in lines)
            else:
                assert r.headers == extra and r.key == event_key(r.value)
                out[part].append(r.value)
    return out
