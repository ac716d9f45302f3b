"""streams.producer.Producer on the real broker: batched records put every event on the partition
and in the order single records do; SIGTERM and a plain interpreter exit flush what is buffered;
a broker that is gone at flush time is an error with every undelivered event, never a silent loss;
a flush sends every pending batch (LiteLLM's flush took the first 100)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from schemas.batch import MAX_BATCH_BYTES, is_batch
from streams.harness.generate import generate
from streams.harness.stack import Broker
from streams.producer import ProduceError, Producer, event_key, partition_for_key, publish
from tests.kafka_records import events_of, read_topic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # the child's too: the same events in both


def new_topic(bootstrap: str, partitions: int = 4) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = "p-" + uuid.uuid4().hex[:10]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()
    return name


def test_batched_and_single_records_carry_every_event_to_the_same_partition_in_the_same_order(kafka_service):
    lines = [line for _, line in generate(20_000, seed=11, duplicate_rate=0.1, bad=20)]
    big = orjson.loads(lines[100])
    big["labels"] = {"pad": "x" * 950_000}  # over the batch budget: a single record, in its place
    lines.insert(5000, orjson.dumps(big))
    batched, single = new_topic(kafka_service.bootstrap), new_topic(kafka_service.bootstrap)
    assert publish(kafka_service.bootstrap, batched, lines) == len(lines)  # batch=True is the default
    assert publish(kafka_service.bootstrap, single, lines, batch=False) == len(lines)

    b_recs, s_recs = read_topic(kafka_service.bootstrap, batched), read_topic(kafka_service.bootstrap, single)
    assert sum(map(len, s_recs.values())) == len(lines)
    assert sum(map(len, b_recs.values())) < len(lines) / 100
    assert all(not is_batch(r.headers) for recs in s_recs.values() for r in recs)
    b_events, s_events = events_of(b_recs), events_of(s_recs)
    every = Counter(lines)
    assert Counter(e for evs in b_events.values() for e in evs) == every  # each exactly as often as sent
    assert Counter(e for evs in s_events.values() for e in evs) == every
    assert sum(1 for line in lines if event_key(line) is None) == 4  # not JSON, no tenant: anywhere
    assert len({line for line, n in every.items() if n > 1}) > 1000  # duplicates
    for part in range(4):
        keyed_b = [e for e in b_events[part] if event_key(e) is not None]
        keyed_s = [e for e in s_events[part] if event_key(e) is not None]
        assert keyed_b == keyed_s  # same partition, same order
        assert all(partition_for_key(event_key(e), range(4)) == part for e in keyed_b)
    (big_rec,) = [r for recs in b_recs.values() for r in recs if len(r.value) > MAX_BATCH_BYTES]
    assert big_rec.headers == [] and big_rec.value == lines[5000]


CHILD = textwrap.dedent("""
    import datetime as dt, sys, time
    sys.path.insert(0, {repo!r})
    from streams.harness.generate import generate
    from streams.producer import Producer

    bootstrap, topic, mode = sys.argv[1:4]
    p = Producer(bootstrap, topic, linger_ms=600_000)  # nothing leaves before the end
    for _, line in generate(3000, seed=3, duplicate_rate=0.1, now=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
        p.send(line)
    assert p.buffered()[0] == 3000
    print("ready", flush=True)
    if mode == "sigterm":
        time.sleep(120)
    # mode "exit": the interpreter exits without close()
""")


@pytest.mark.parametrize("mode", ["sigterm", "exit"])
def test_buffered_events_are_flushed_on_sigterm_and_at_exit(kafka_service, mode):
    topic = new_topic(kafka_service.bootstrap)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=str(REPO)), kafka_service.bootstrap, topic, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
    if mode == "sigterm":
        child.send_signal(signal.SIGTERM)
    rc = child.wait(60)
    assert rc == (-signal.SIGTERM if mode == "sigterm" else 0), child.stderr.read().decode()[-2000:]
    want = Counter(line for _, line in generate(3000, seed=3, duplicate_rate=0.1, now=NOW))
    got = events_of(read_topic(kafka_service.bootstrap, topic))
    assert Counter(e for evs in got.values() for e in evs) == want


def test_a_broker_gone_at_flush_time_is_an_error_holding_every_undelivered_event(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        topic = new_topic(broker.bootstrap, 2)
        lines = [line for _, line in generate(600, seed=8)]
        fast = dict(delivery_timeout_ms=4000, request_timeout_ms=1500, max_block_ms=5000)
        p = Producer(broker.bootstrap, topic, linger_ms=600_000, **fast)
        q = Producer(broker.bootstrap, topic, linger_ms=600_000, **fast)
        for line in lines[:200]:
            p.send(line)
        p.flush()  # delivered
        for line in lines[200:500]:
            p.send(line)
        for line in lines[500:]:
            q.send(line)
        broker.stop()
        with pytest.raises(ProduceError) as err:
            p.flush()
        assert err.value.count == 300 and Counter(err.value.undelivered) == Counter(lines[200:500])
        assert p.buffered() == (0, 0)  # handed to the caller with the error
        p.close()
        with pytest.raises(ProduceError) as err:
            q.close()
        assert err.value.count == 100 and Counter(err.value.undelivered) == Counter(lines[500:])
        broker.start()
        got = events_of(read_topic(broker.bootstrap, topic))
        assert Counter(e for evs in got.values() for e in evs) == Counter(lines[:200])  # nothing else
    finally:
        broker.remove()


def test_a_flush_sends_every_pending_batch(kafka_service):
    """More than 100 batches wait (one per partition, and in kafka-python's own buffer): all go."""
    topic = new_topic(kafka_service.bootstrap, 128)
    lines = [orjson.dumps({"event_id": f"e{i}", "tenant_id": "t", "user_id": f"user-{i % 2000}"}) for i in range(6000)]
    # kafka-python holds the full batches it is given until flushed, too
    p = Producer(kafka_service.bootstrap, topic, linger_ms=600_000, batch_events=20, kafka_linger_ms=60_000)
    for line in lines:
        p.send(line)
    assert p.open_batches() > 100
    assert p.records_sent > 100  # full batches (20 events) handed to kafka-python, still lingering there
    assert p.buffered()[0] == 6000
    assert sum(map(len, read_topic(kafka_service.bootstrap, topic).values())) == 0  # nothing sent yet
    p.flush()
    assert p.buffered() == (0, 0) and p.open_batches() == 0
    records = read_topic(kafka_service.bootstrap, topic)
    assert sum(map(len, records.values())) == p.records_sent > 200
    got = events_of(records)
    assert Counter(e for evs in got.values() for e in evs) == Counter(lines)
    per_user: dict[bytes, list[bytes]] = defaultdict(list)
    for evs in got.values():
        for e in evs:
            per_user[event_key(e)].append(e)
    assert all(seq == [line for line in lines if event_key(line) == k] for k, seq in per_user.items())
    p.close()


def test_meterstream_produce_batches_unless_no_batch(kafka_service, tmp_path):
    lines = [line for _, line in generate(2000, seed=4, duplicate_rate=0.1, bad=10)]
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\r\n".join(lines) + b"\r\n")  # line endings are not part of an event
    env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
    env.update(MS_KAFKA_BOOTSTRAP=kafka_service.bootstrap, MS_DATA_DIR=str(tmp_path / "data"))
    got = {}
    for flags in ([], ["--no-batch", "--no-check"]):
        topic = new_topic(kafka_service.bootstrap)
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "produce", *flags, "--topic", topic, str(src)],
            env=env,
            capture_output=True,
            timeout=120,
            cwd=REPO,
        )
        assert f"produced {len(lines)} events".encode() in proc.stderr, proc.stderr
        if flags:  # --no-check: the 10 bad lines are sent, unsaid
            assert proc.returncode == 0 and b"dead-lettered" not in proc.stderr, proc.stderr
        else:  # checked: sent all the same (below), and said, exit 1
            assert proc.returncode == 1, proc.stderr
            assert f"10 of {len(lines)} lines will be dead-lettered".encode() in proc.stderr, proc.stderr
        records = read_topic(kafka_service.bootstrap, topic)
        got[bool(flags)] = (sum(map(len, records.values())), events_of(records))
    (n_batched, batched), (n_single, single) = got[False], got[True]
    assert n_single == len(lines) and n_batched < 20
    assert (
        Counter(e for evs in batched.values() for e in evs)
        == Counter(lines)
        == Counter(e for evs in single.values() for e in evs)
    )
    for part in batched:
        assert [e for e in batched[part] if event_key(e)] == [e for e in single[part] if event_key(e)]
