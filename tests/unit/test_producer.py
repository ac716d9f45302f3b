"""streams.producer.Producer without a broker: a fake kafka-python client records what would be
sent. Grouping by partition equals kafka-python's default partitioner, the contract's bounds hold,
memory is bounded, order per partition is kept, and nothing is ever dropped: the ways LiteLLM lost
spend (a flush that took the first 100 items only, a queue emptied before the write, batches
dropped on errors, nothing flushed at shutdown) each have a test here or in
tests/integration/test_producer.py."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from kafka.partitioner.default import DefaultPartitioner, murmur2

from schemas.batch import BATCH_HEADER, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, is_batch, split
from streams.harness.expected import partition_for
from streams.harness.generate import generate
from streams.producer import Delivery, ProduceError, Producer, event_key, partition_for_key

REPO = Path(__file__).resolve().parents[2]


class FakeFuture:
    """What Producer reads of kafka-python's FutureRecordMetadata."""

    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None
        self._event = threading.Event()
        self._callbacks: list = []

    def failed(self) -> bool:
        return self.is_done and self.exception is not None

    def resolve(self, exc: BaseException | None = None) -> None:
        if not self.is_done:
            self.exception, self.is_done = exc, True
            self._event.set()
            for fn in self._callbacks:
                fn(exc)

    def add_both(self, fn) -> FakeFuture:
        if self.is_done:
            fn(self.exception)
        else:
            self._callbacks.append(fn)
        return self

    def get(self, timeout=None):
        if not self._event.wait(timeout):
            raise TimeoutError("not yet")
        if self.exception is not None:
            raise self.exception
        return "metadata"


class FakeClient:
    """A KafkaProducer stand-in. `hold`: futures stay unresolved until release(); `fail(record)`:
    the exception a record's delivery fails with (or None); `raise_on_send(record)`: send raises."""

    def __init__(self, partitions: int = 4, hold: bool = False, fail=None, raise_on_send=None) -> None:
        self.partitions = partitions
        self.hold, self.fail, self.raise_on_send = hold, fail, raise_on_send
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic, value=None, key=None, headers=None, partition=None):
        assert not self.closed
        if partition is None:  # as kafka-python's default partitioner
            partition = (
                (murmur2(key) & 0x7FFFFFFF) % self.partitions if key is not None else random.randrange(self.partitions)
            )
        rec = {"partition": partition, "key": key, "value": value, "headers": headers or [], "future": FakeFuture()}
        if self.raise_on_send and self.raise_on_send(rec):
            raise OSError("send refused")
        with self.lock:
            self.records.append(rec)
        if not self.hold:
            self._settle(rec)
        return rec["future"]

    def _settle(self, rec: dict) -> None:
        rec["future"].resolve(self.fail(rec) if self.fail else None)

    def release(self) -> None:
        self.hold = False
        with self.lock:
            for rec in self.records:
                self._settle(rec)

    def flush(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(not r["future"].is_done for r in list(self.records)):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("flush timed out")
            time.sleep(0.005)

    def close(self, timeout=None):
        if timeout == 0:
            for r in self.records:
                r["future"].resolve(RuntimeError("closed by force"))
        else:
            self.flush(timeout)
        self.closed = True

    # what was delivered, as events
    def delivered(self) -> list[tuple[int, bytes]]:
        out = []
        for r in self.records:
            if r["future"].is_done and r["future"].exception is None:
                out += [(r["partition"], line) for line in lines_of(r)]
        return out


def lines_of(rec: dict) -> list[bytes]:
    if is_batch(rec["headers"]):
        return [line for _, line in split(rec["value"])]
    return [rec["value"]]


def reference_partition(key: bytes, n: int) -> int:
    """kafka-python's DefaultPartitioner itself, on a stub cluster with n partitions."""

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return set(range(n))

        def available_partitions_for_topic(self, topic):
            return set(range(n))

    return DefaultPartitioner().partition("t", key, key, None, None, Cluster())


def event(i: int, user: str = "u", tenant: str = "t", pad: int = 0) -> bytes:
    doc = {"event_id": f"e{i}", "tenant_id": tenant, "user_id": user}
    if pad:
        doc["labels"] = {"pad": "x" * pad}
    return orjson.dumps(doc)


def producer(client: FakeClient, **kw) -> Producer:
    kw.setdefault("linger_ms", 60_000)
    return Producer(None, "t", client=client, **kw)


# ---------------------------------------------------------------------------- partitioning


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_every_event_goes_to_the_default_partitioners_partition_in_order(partitions):
    lines = [line for _, line in generate(10_000, seed=5, duplicate_rate=0.1, bad=40, late=10)]
    client = FakeClient(partitions)
    with producer(client, linger_ms=50) as p:
        for line in lines:
            p.send(line)
    got = client.delivered()
    assert Counter(line for _, line in got) == Counter(lines)  # each exactly as often as sent
    per_partition: dict[int, list[bytes]] = defaultdict(list)
    for part, line in got:
        key = event_key(line)
        if key is not None:
            want = reference_partition(key, partitions)
            assert part == want == partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions
            per_partition[part].append(line)
    for part, seq in per_partition.items():  # the order send saw them, per partition
        assert seq == [
            line for line in lines if (k := event_key(line)) is not None and reference_partition(k, partitions) == part
        ]
    unkeyed = [line for line in lines if event_key(line) is None]  # not JSON, no tenant: anywhere, once
    assert len(unkeyed) == 8 and sum(1 for _, line in got if event_key(line) is None) == len(unkeyed)
    assert len(client.records) < len(lines) / 50  # and batched


def test_partition_for_key_is_kafka_pythons():
    for i in range(2000):
        key = f"tenant-{i % 7}/user-{i}".encode()
        for n in (1, 3, 4, 12, 100):
            assert partition_for_key(key, range(n)) == reference_partition(key, n)


def test_unkeyed_lines_are_spread_and_keep_their_order():
    client = FakeClient(4)
    bad = [b"{not json %d" % i for i in range(40)]
    with producer(client) as p:
        for line in bad:
            p.send(line)
    got = client.delivered()
    assert sorted(line for _, line in got) == sorted(bad)
    assert {part for part, _ in got} == {0, 1, 2, 3}  # round-robin
    for part in range(4):
        seq = [line for pp, line in got if pp == part]
        assert seq == [line for line in bad if line in seq]


# ---------------------------------------------------------------------------- bounds


def test_a_batch_holds_at_most_max_batch_events():
    client = FakeClient(1)
    lines = [event(i) for i in range(10_000)]
    with producer(client) as p:
        for line in lines:
            p.send(line)
    sizes = [len(split(r["value"])) for r in client.records]
    assert all(is_batch(r["headers"]) and r["headers"] == [BATCH_HEADER] and r["key"] is None for r in client.records)
    assert sizes == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 10_000 - 2 * MAX_BATCH_EVENTS]
    assert [line for _, line in client.delivered()] == lines


def test_a_batch_holds_at_most_max_batch_bytes():
    client = FakeClient(1)
    lines = [event(i, pad=random.Random(i).randrange(500, 3000)) for i in range(2000)]
    with producer(client) as p:
        for line in lines:
            p.send(line)
    values = [r["value"] for r in client.records]
    assert all(len(v) <= MAX_BATCH_BYTES for v in values)
    assert all(len(v) > MAX_BATCH_BYTES - 3100 for v in values[:-1])  # full, up to one event
    assert [line for _, line in client.delivered()] == lines


def test_an_event_over_the_batch_budget_is_a_single_record_in_its_place():
    client = FakeClient(4)
    big = event(1, pad=MAX_BATCH_BYTES)  # over the budget alone
    assert MAX_BATCH_BYTES < len(big) < 1_048_576
    lines = [event(0), event(10), big, event(2), event(3)]
    with producer(client) as p:
        for line in lines:
            p.send(line)
    recs = client.records
    assert [len(lines_of(r)) for r in recs] == [2, 1, 2]  # the batch before it went first
    single = recs[1]
    assert single["value"] == big and single["headers"] == [] and single["key"] == b"t/u"
    assert single["partition"] == reference_partition(b"t/u", 4)
    assert [line for _, line in client.delivered()] == lines


@pytest.mark.parametrize(
    "odd", [b'{"tenant_id": "t",\n "user_id": "u"}', b'{"tenant_id":"t","user_id":"u"}\r', b"   ", b""]
)
def test_what_json_lines_cannot_carry_unchanged_is_a_single_record(odd):
    client = FakeClient(4)
    with producer(client) as p:
        for line in (event(0), odd, event(1)):
            p.send(line)
    got = [line for _, line in client.delivered()]
    assert sorted(got) == sorted([event(0), odd, event(1)])
    if event_key(odd) is not None:  # on the same partition as the others: in its place
        assert got == [event(0), odd, event(1)]
    (rec,) = [r for r in client.records if r["value"] == odd]
    assert rec["headers"] == []


def test_a_batch_of_one_event_is_the_single_record_it_would_have_been():
    client = FakeClient(4)
    with producer(client, linger_ms=10) as p:
        p.send(event(0))
        deadline = time.monotonic() + 5
        while not client.records and time.monotonic() < deadline:
            time.sleep(0.01)  # the linger thread sends it
        assert client.records, "linger did not send the batch"
    (rec,) = client.records
    assert rec["headers"] == [] and rec["value"] == event(0) and rec["key"] == b"t/u"


def test_linger_sends_a_partitions_batch_without_a_flush():
    client = FakeClient(4)
    p = producer(client, linger_ms=50)
    try:
        for i in range(30):
            p.send(event(i, user=f"u{i % 3}"))
        time.sleep(0.5)
        assert sum(len(lines_of(r)) for r in client.records) == 30
        assert p.open_batches() == 0 and p.buffered() == (0, 0)
    finally:
        p.close()


def test_dicts_are_serialized_with_orjson():
    client = FakeClient(4)
    doc = {"event_id": "e", "tenant_id": "a", "user_id": "b", "usage": {"input_tokens": 3}}
    with producer(client) as p:
        p.send(doc)
        with pytest.raises(TypeError):
            p.send("a string")  # type: ignore[arg-type]
    assert client.delivered() == [(reference_partition(b"a/b", 4), orjson.dumps(doc))]


def test_batch_false_is_one_record_per_event_partitioned_by_kafka_python():
    client = FakeClient(4)
    lines = [event(i, user=f"u{i % 5}") for i in range(100)]
    with producer(client, batch=False) as p:
        for line in lines:
            p.send(line)
    assert [r["value"] for r in client.records] == lines
    assert all(r["headers"] == [] and r["key"] == event_key(r["value"]) for r in client.records)


def test_limits_are_the_contracts():
    with pytest.raises(ValueError):
        producer(FakeClient(), batch_bytes=MAX_BATCH_BYTES + 1)
    with pytest.raises(ValueError):
        producer(FakeClient(), batch_events=MAX_BATCH_EVENTS + 1)
    with pytest.raises(ValueError):
        producer(FakeClient(), batch_bytes=10_000, max_buffer_bytes=5_000)


# ---------------------------------------------------------------------------- memory


def test_memory_is_bounded_send_blocks_instead_of_growing():
    client = FakeClient(4, hold=True)  # nothing is acknowledged until release()
    p = producer(client, batch_bytes=10_000, max_buffer_bytes=30_000)
    lines = [event(i, user=f"u{i % 4}", pad=900) for i in range(200)]
    done = threading.Event()
    peak = [0]

    def sender():
        for line in lines:
            p.send(line)
            peak[0] = max(peak[0], p.buffered()[1])
        done.set()

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.5)
    assert not done.is_set()  # blocked: 200 × ~950 bytes do not fit in 30,000
    held = p.buffered()[1]
    assert 0 < held <= 30_000
    client.release()
    t.join(10)
    assert done.is_set() and peak[0] <= 30_000
    p.close()
    assert Counter(line for _, line in client.delivered()) == Counter(lines)


def test_one_event_larger_than_the_buffer_waits_for_an_empty_buffer_then_goes():
    client = FakeClient(1)
    with producer(client, batch_bytes=10_000, max_buffer_bytes=10_000) as p:
        p.send(event(0))
        p.send(event(1, pad=20_000))
    assert [line for _, line in client.delivered()] == [event(0), event(1, pad=20_000)]


# ---------------------------------------------------------------------------- never drop (LiteLLM)


def test_a_flush_sends_every_pending_batch_not_the_first_100():
    client = FakeClient(300)
    lines = [event(i, user=f"user-{i % 1000}") for i in range(5000)]
    p = producer(client)
    for line in lines:
        p.send(line)
    assert p.open_batches() > 250 and not client.records  # all waiting for the (long) linger
    p.flush()
    assert p.open_batches() == 0 and p.buffered() == (0, 0)
    assert len(client.records) > 250
    assert Counter(line for _, line in client.delivered()) == Counter(lines)
    p.close()


def test_nothing_leaves_the_buffer_before_the_broker_acknowledged_it():
    client = FakeClient(4, hold=True)
    lines = [event(i, user=f"u{i % 4}") for i in range(50)]
    p = producer(client)
    for line in lines:
        p.send(line)
    with pytest.raises(ProduceError) as err:
        p.flush(timeout=0.2)  # handed to the client, not acknowledged
    assert err.value.pending == 50 and err.value.undelivered == [] and err.value.count == 50
    assert p.buffered() == (50, sum(map(len, lines)))  # still held
    client.release()
    p.flush()
    assert p.buffered() == (0, 0)
    p.close()
    assert Counter(line for _, line in client.delivered()) == Counter(lines)


def test_a_failed_batch_is_raised_with_its_events_never_dropped():
    doomed = reference_partition(b"t/u1", 4)
    client = FakeClient(4, fail=lambda rec: OSError("broker said no") if rec["partition"] == doomed else None)
    lines = [event(i, user=f"u{i % 4}") for i in range(400)]
    p = producer(client)
    for line in lines:
        p.send(line)
    with pytest.raises(ProduceError) as err:
        p.flush()
    lost = [line for line in lines if reference_partition(event_key(line), 4) == doomed]
    assert err.value.undelivered == lost and err.value.count == len(lost) > 0
    assert isinstance(err.value.cause, OSError) and f"{len(lost)} events not delivered" in str(err.value)
    assert b"e1" not in str(err.value).encode()  # counts, never the events themselves
    delivered = [line for _, line in client.delivered()]
    assert Counter(delivered) + Counter(lost) == Counter(lines)
    p.flush()  # handed over to the caller once
    p.close()


def test_a_send_that_raises_keeps_the_batch_and_raises_it():
    client = FakeClient(4, raise_on_send=lambda rec: is_batch(rec["headers"]))
    lines = [event(i) for i in range(10)]
    p = producer(client)
    for line in lines:
        p.send(line)
    with pytest.raises(ProduceError) as err:
        p.close()
    assert err.value.undelivered == lines and isinstance(err.value.cause, OSError)


def test_a_known_failure_is_raised_by_the_next_send_before_it_accepts_its_event():
    client = FakeClient(4, fail=lambda rec: OSError("no"))
    p = producer(client)
    p.send(event(0))
    p.send(event(1))
    p._hand_over(p._open[reference_partition(b"t/u", 4)])  # as the linger would
    time.sleep(0.05)
    with p._cond:
        p._reap()
    with pytest.raises(ProduceError) as err:
        p.send(event(2))
    assert err.value.undelivered == [event(0), event(1)]
    p.close()
    assert client.delivered() == []  # event 2 was refused: the caller knows


def test_close_after_a_timeout_closes_by_force_and_raises_every_unacknowledged_event():
    client = FakeClient(4, hold=True)
    lines = [event(i, user=f"u{i % 4}") for i in range(40)]
    p = producer(client)
    for line in lines:
        p.send(line)
    with pytest.raises(ProduceError) as err:
        p.close(timeout=0.2)
    assert Counter(err.value.undelivered) == Counter(lines) and err.value.pending == 0
    with pytest.raises(RuntimeError):
        p.send(event(99))  # closed


def test_the_exit_hook_flushes_what_close_was_never_called_for(tmp_path):
    """Nothing flushed at shutdown: the atexit hook and the SIGTERM handler, in subprocesses."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tests.unit.test_producer import FakeClient, event
        from streams.producer import Producer

        class Recording(FakeClient):
            def _settle(self, rec):
                super()._settle(rec)
                with open({str(tmp_path / "out")!r}, 'ab') as f:
                    f.write(rec['value'] + b'\\n')

        mode = sys.argv[1]
        if mode == 'own-handler':
            signal.signal(signal.SIGTERM, lambda *a: None)
        if mode == 'restore':  # the last close puts the default back
            with Producer(None, 't', client=Recording(4)) as p:
                assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        p = Producer(None, 't', client=Recording(4), linger_ms=600_000)
        for i in range(25):
            p.send(event(i, user=f'u{{i % 3}}'))
        if mode == 'own-handler':
            assert signal.getsignal(signal.SIGTERM).__name__ == '<lambda>'  # not replaced
            print('kept', flush=True)
        elif mode == 'sigterm':
            print('ready', flush=True)
            time.sleep(60)
        # mode 'exit': leave without close()
    """)

    def events_out() -> Counter:  # the events of every acknowledged record (batches: their lines)
        out = tmp_path / "out"
        return Counter(line for line in out.read_bytes().split(b"\n") if line) if out.exists() else Counter()

    proc = subprocess.run([sys.executable, "-c", script, "exit"], capture_output=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sum(events_out().values()) == 25
    (tmp_path / "out").unlink()

    child = subprocess.Popen([sys.executable, "-c", script, "sigterm"], stdout=subprocess.PIPE, cwd=REPO)
    assert child.stdout.readline() == b"ready\n"
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == -signal.SIGTERM  # flushed, then ended by the signal as before
    assert sum(events_out().values()) == 25
    (tmp_path / "out").unlink()

    proc = subprocess.run([sys.executable, "-c", script, "own-handler"], capture_output=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == b"kept\n", proc.stderr.decode()
    assert sum(events_out().values()) == 25  # and atexit still flushed
    (tmp_path / "out").unlink()

    proc = subprocess.run([sys.executable, "-c", script, "restore"], capture_output=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sum(events_out().values()) == 25


# ---------------------------------------------------------------------------- threads


def test_concurrent_senders_with_a_short_linger_lose_nothing_and_keep_order():
    client = FakeClient(4)
    p = producer(client, linger_ms=1, batch_events=64)
    per_thread = {t: [event(i, user=f"thread{t}-{i % 3}") for i in range(3000)] for t in range(4)}

    def run(t):
        for line in per_thread[t]:
            p.send(line)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.close()
    got = [line for _, line in client.delivered()]
    assert Counter(got) == Counter(line for lines in per_thread.values() for line in lines)
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for line in got:
        by_key[event_key(line)].append(line)
    for lines in per_thread.values():
        for key in {event_key(line) for line in lines}:
            assert by_key[key] == [line for line in lines if event_key(line) == key]


def test_no_thread_or_hook_outlives_close():
    from streams import producer as mod

    before = threading.active_count()
    p = producer(FakeClient(4), linger_ms=5)
    p.send(event(0))
    assert p in mod._LIVE
    p.close()
    p.close()  # twice is fine
    assert p not in mod._LIVE
    assert threading.active_count() <= before


# ---------------------------------------------------------------------------- send_batch

PRODUCER = ("ms-producer", b"billing-gw")


def per_partition(client: FakeClient, extra: list) -> dict[int, list[tuple]]:
    """Each partition's records as (key, value, headers without `extra`), in order."""
    out: dict[int, list[tuple]] = defaultdict(list)
    for r in client.records:
        assert r["headers"][len(r["headers"]) - len(extra) :] == extra
        out[r["partition"]].append((r["key"], r["value"], r["headers"][: len(r["headers"]) - len(extra)]))
    return out


def test_send_batch_writes_the_records_send_and_flush_would_with_the_headers_added():
    lines = [line for _, line in generate(3000, seed=9, duplicate_rate=0.1, bad=10)]
    lines.insert(700, event(1, pad=MAX_BATCH_BYTES))  # over the budget: alone, in its place
    lines.insert(900, b'{"tenant_id": "t",\n "user_id": "u"}')  # not one line: alone
    expected, client = FakeClient(4), FakeClient(4)
    with producer(expected, batch_events=500) as p:
        for line in lines:
            p.send(line)
        p.flush()
    with producer(client, batch_events=500) as p:
        p.send_batch(lines, [PRODUCER]).wait(5)
    assert per_partition(client, [PRODUCER]) == per_partition(expected, [])
    assert Counter(line for _, line in client.delivered()) == Counter(lines)
    assert max(len(lines_of(r)) for r in client.records) == 500 and len(client.records) < 20


def test_a_delivery_waits_for_exactly_its_own_records():
    client = FakeClient(4, hold=True)
    with producer(client) as p:
        first = p.send_batch([event(i, user=f"u{i % 5}") for i in range(50)], [PRODUCER])
        n = len(client.records)
        second = p.send_batch([event(i, user=f"v{i % 5}") for i in range(50, 60)])
        done: list[str] = []
        first.when_done(lambda: done.append("first"))
        second.when_done(lambda: done.append("second"))
        with pytest.raises(ProduceError) as err:
            first.check()
        assert err.value.pending == 50 and err.value.undelivered == [] and done == []
        for rec in client.records[n:]:
            rec["future"].resolve()
        assert done == ["second"]
        second.check()
        with pytest.raises(ProduceError):
            first.wait(0.05)
        client.release()
        assert done == ["second", "first"]
        first.check()
        assert p.buffered() == (0, 0)  # the caller's records, never the producer's buffer
    empty = Delivery("t")
    empty.when_done(lambda: done.append("empty"))
    assert done[-1] == "empty"


def test_a_failed_delivery_is_raised_by_its_delivery_only():
    doomed = {event(i, user="doomed") for i in range(20)}
    client = FakeClient(4, fail=lambda rec: OSError("broker said no") if set(lines_of(rec)) & doomed else None)
    with producer(client) as p:
        ok = p.send_batch([event(i, user="fine") for i in range(20)])
        bad = p.send_batch(sorted(doomed))
        ok.wait(1)
        with pytest.raises(ProduceError) as err:
            bad.wait(1)
        assert Counter(err.value.undelivered) == Counter(doomed) and isinstance(err.value.cause, OSError)
        p.send(event(99, user="fine"))  # the producer's own path does not see them
        p.flush()


def test_a_send_that_raises_fails_that_record_and_the_rest_of_the_batch():
    calls = []
    client = FakeClient(1, raise_on_send=lambda rec: calls.append(rec) or len(calls) == 2)
    lines = [event(i, pad=250_000) for i in range(7)]  # three events a batch: 3 records
    with producer(client) as p:
        d = p.send_batch(lines)
        with pytest.raises(ProduceError) as err:
            d.check()
    assert err.value.undelivered == lines[3:] and isinstance(err.value.cause, OSError)
    assert [line for _, line in client.delivered()] == lines[:3]


def test_an_open_batch_of_the_same_partition_goes_before_a_send_batch():
    client = FakeClient(4)
    with producer(client) as p:
        p.send(event(0))
        p.send(event(1))
        p.send_batch([event(2), event(3)], [PRODUCER]).wait(1)
        assert p.open_batches() == 0
    assert [line for _, line in client.delivered()] == [event(i) for i in range(4)]
    assert [r["headers"] for r in client.records] == [[BATCH_HEADER], [BATCH_HEADER, PRODUCER]]


def test_send_batch_needs_a_batching_open_producer():
    p = producer(FakeClient(4), batch=False)
    with pytest.raises(RuntimeError, match="batching"):
        p.send_batch([event(0)])
    p.close()
    q = producer(FakeClient(4))
    q.close()
    with pytest.raises(RuntimeError, match="closed"):
        q.send_batch([event(0)])
