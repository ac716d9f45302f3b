"""Publishing billing events with kafka-python: idempotent producer, keyed by tenant and user
so that one user's events stay in order on one partition (and duplicates meet their original).

`Producer` batches by default (schemas/batch.py is the contract): events are grouped by the
partition their key goes to (``tenant_id/user_id``, kafka-python's DefaultPartitioner: murmur2
of the key, positive, modulo the topic's partition count), and each group is sent as ONE record
whose value is the events as JSON Lines, under the header ``content-type: application/jsonl``,
with an explicit ``partition=`` and no key (a batch holds many users' events: a key would name
only one of them). So every event lands on the partition a single record of it would, and keeps
its order there. What is sent as a single record (no header, key = its key, exactly as before):

- an event larger than the batch byte budget on its own, and anything that is not one line
  (a ``\\n`` inside, a trailing ``\\r``, blank): JSON Lines could not carry it unchanged;
- a batch that holds one event when it is sent (the linger expired): a one-line batch would be
  the same event in a different envelope;
- every event with ``batch=False`` (today's one record per event; kafka-python partitions it).

A line without a key (not JSON, no ids) goes where a single unkeyed record may go: any
partition. kafka-python picks a random available one; batching picks them round-robin, and
sends an unkeyed single record (batch=True) to an explicit round-robin partition too, so that
order within each partition holds. Such lines are rejected by the stream anyway.

Nothing is dropped: an event stays in the producer's buffer (counted against
`max_buffer_bytes`) from `send` until the broker acknowledged the record that carries it. A
failed record's events are raised to the caller of `flush`/`close` (or of the next `send`) as a
`ProduceError` holding them (`.undelivered`) and their count; it is never logged and forgotten.
Buffered events are flushed by `close()`, at interpreter exit (atexit) and on SIGTERM (a handler
is installed only when the process has none of its own, from the main thread; it flushes every
open producer, then restores the previous disposition and re-sends the signal).

`send_batch(events, headers)` writes a caller's events at once, in the same records and with
extra headers, and returns a `Delivery` that says when the broker acknowledged exactly those
records (the HTTP ingest answers a request with it, streams/ingest/)."""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from schemas.batch import BATCH_HEADER, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Run, runs
from schemas.errors import Unavailable
from schemas.validate import strip_line
from streams.kafka_security import PLAINTEXT, KafkaSecurity
from streams.placement import event_key, partition_for_key

__all__ = ["Delivery", "ProduceError", "Producer", "event_key", "make_producer", "partition_for_key", "publish"]

log = logging.getLogger("meterstream.producer")

DEFAULT_LINGER_MS = 100  # the longest an event waits in a partition's batch
DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024  # events held (open batches + unacknowledged records)
_PARTITIONS_REFRESH_S = 5.0  # how often the topic's partition list is re-read
_KEY_CACHE_MAX = 65_536


class ProduceError(Unavailable):
    """Events the broker did not acknowledge. `undelivered`: the events (bytes) of records that
    failed, now the caller's (the producer no longer holds them: resend them or keep them);
    `pending`: events still unacknowledged when a flush timed out (the producer still holds them
    and a later flush/close waits for them again); `count`: both together."""

    def __init__(
        self, topic: str, undelivered: list[bytes], pending: int = 0, cause: BaseException | None = None
    ) -> None:
        self.topic, self.undelivered, self.pending, self.cause = topic, undelivered, pending, cause
        self.count = len(undelivered) + pending
        parts = []
        if undelivered:
            parts.append(f"{len(undelivered)} failed")
        if pending:
            parts.append(f"{pending} still unacknowledged")
        why = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        # events are never put into the message (they may carry prompt text)
        super().__init__(f"{self.count} events not delivered to {topic} ({', '.join(parts)}){why}")


class _Batch(Run):
    """A partition's batch being filled (schemas/batch.py Run: its events are its `items`)."""

    __slots__ = ("partition", "born")

    def __init__(self, partition: int, born: float, max_bytes: int, max_items: int) -> None:
        super().__init__(max_bytes, max_items)
        self.partition, self.born = partition, born


class _Sent:
    """A record handed to kafka-python, kept (with its events) until its future resolved."""

    __slots__ = ("future", "lines", "held")

    def __init__(self, future: Any, lines: list[bytes], held: int) -> None:
        self.future, self.lines, self.held = future, lines, held


class Delivery:
    """Records handed to kafka-python (by `Producer.send_batch`, or `add`ed), with their events:
    when the broker acknowledged them all, and which it did not."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._records: list[tuple[Any, list[bytes]]] = []  # (kafka-python future, events)

    def add(self, future: Any, events: list[bytes]) -> None:
        self._records.append((future, events))

    def when_done(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` once every record is resolved (acknowledged or failed): now if they
        are, else from kafka-python's I/O thread (keep it short; take no lock a sender waits on)."""
        left = [len(self._records)]
        lock = threading.Lock()

        def resolved(_: Any) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                callback()

        if not self._records:
            callback()
        for future, _ in self._records:
            future.add_both(resolved)

    def wait(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` seconds for every record, then `check()`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for future, _ in self._records:
            _wait(future, _remaining(deadline))
        self.check()

    def check(self) -> None:
        """Raise ProduceError unless the broker acknowledged every record: `undelivered` holds
        the events of failed records, `pending` counts those not resolved yet."""
        failed = [(f, lines) for f, lines in self._records if f.failed()]
        pending = sum(len(lines) for f, lines in self._records if not f.is_done)
        if failed or pending:
            raise ProduceError(
                self.topic,
                [line for _, lines in failed for line in lines],
                pending,
                failed[0][0].exception if failed else None,
            )


def make_producer(bootstrap: str, security: KafkaSecurity = PLAINTEXT, **overrides: Any):
    from kafka import KafkaProducer

    config: dict[str, Any] = dict(
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type=None,
        max_request_size=2 * 1024 * 1024,
        client_id="meterstream-produce",
    )
    config.update(overrides)
    return KafkaProducer(bootstrap_servers=bootstrap, **{**security.kafka_python(), **config})


class Producer:
    """Publishes billing events to `topic`, batched per target partition (see the module doc).

    ``send(event)`` takes one event: its JSON bytes (sent as given: bad input too, it must reach
    the dead-letter path) or a dict (serialized with orjson). An event is accepted once `send`
    returns; from then on it is delivered or raised, never dropped. ``flush()`` sends every
    batch and waits until the broker acknowledged everything accepted before it was called;
    ``close()`` flushes and closes; a ``with`` block closes. Thread-safe.

    Batches are bounded by `linger_ms` (a partition's batch is sent when its oldest event is
    that old, by a background thread), `batch_bytes` and `batch_events` (at most the contract's
    MAX_BATCH_BYTES and MAX_BATCH_EVENTS), and memory: `max_buffer_bytes` bounds the events held
    (open batches and records not yet acknowledged); `send` blocks, sending and waiting for
    acknowledgements, rather than hold more. `kafka_config` overrides the KafkaProducer's settings
    (e.g. ``delivery_timeout_ms``; its own linger is `kafka_linger_ms`: 5 ms batched, since the
    batching happens here, 20 ms unbatched as before); `client` replaces it (tests, or a
    KafkaProducer the caller also sends other topics' records with)."""

    def __init__(
        self,
        bootstrap: str | None,
        topic: str,
        *,
        security: KafkaSecurity = PLAINTEXT,
        linger_ms: float = DEFAULT_LINGER_MS,
        batch_bytes: int = MAX_BATCH_BYTES,
        batch_events: int = MAX_BATCH_EVENTS,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        batch: bool = True,
        kafka_linger_ms: float | None = None,
        client: Any = None,
        **kafka_config: Any,
    ) -> None:
        if not 0 < batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"batch_bytes must be in 1..{MAX_BATCH_BYTES} (schemas/batch.py)")
        if not 0 < batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_events must be in 1..{MAX_BATCH_EVENTS} (schemas/batch.py)")
        if max_buffer_bytes < batch_bytes:
            raise ValueError("max_buffer_bytes must hold at least one batch (batch_bytes)")
        if linger_ms < 0:
            raise ValueError("linger_ms must be >= 0")
        self.topic = topic
        self.batch = batch
        self.linger_s = linger_ms / 1000
        self.batch_bytes, self.batch_events, self.max_buffer_bytes = batch_bytes, batch_events, max_buffer_bytes
        if client is None:
            kafka_config["linger_ms"] = kafka_linger_ms if kafka_linger_ms is not None else 5 if batch else 20
            client = make_producer(bootstrap, security, **kafka_config)  # type: ignore[arg-type]
        self._client = client
        self._cond = threading.Condition(threading.Lock())
        self._open: dict[int, _Batch] = {}  # partition -> the batch being filled
        self._sent: collections.deque[_Sent] = collections.deque()  # handed over, not yet resolved
        self._failed: list[tuple[_Sent, BaseException]] = []  # resolved with an error, not yet raised
        self._held = 0  # bytes of events in all three
        self._closing = self._closed = False
        self._partitions: list[int] = []
        self._partitions_at = -1e9
        self._key_partition: dict[bytes, int] = {}
        self._round_robin = itertools.count()
        self.records_sent = 0  # records handed to kafka-python (batches and singles)
        self.events_sent = 0
        self._thread: threading.Thread | None = None
        if batch:
            self._thread = threading.Thread(
                target=self._linger_loop, name=f"meterstream-producer-linger-{topic}", daemon=True
            )  # daemon: interpreter exit must reach atexit
            self._thread.start()
        # registered after the KafkaProducer's own atexit hook, so it runs before it (LIFO)
        atexit.register(self._close_at_exit)
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_sigterm_handler()

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def send(self, event: bytes | bytearray | memoryview | Mapping[str, Any]) -> None:
        """Accept one event (JSON bytes, sent as is, or a dict). Raises ProduceError first if
        earlier records failed (the event is then not accepted: send it again)."""
        if isinstance(event, bytes):
            line = event
        elif isinstance(event, (bytearray, memoryview)):
            line = bytes(event)
        elif isinstance(event, Mapping):
            line = orjson.dumps(event)
        else:
            raise TypeError(f"send() takes the bytes of one JSON event or a dict, not {type(event).__name__}")
        size = len(line)
        key = event_key(line)
        if time.monotonic() - self._partitions_at > _PARTITIONS_REFRESH_S:
            self._refresh_partitions()  # outside the lock: the first call may wait for metadata
        if not self.batch:  # today's records: kafka-python partitions them
            with self._cond:
                self._check_usable()
                self._make_room(size)
                self._track(self._client.send(self.topic, key=key, value=line), [line], size)
            return
        batchable = _batchable(line, self.batch_bytes)
        with self._cond:
            self._check_usable()
            p = self._partition(key)
            self._make_room(size)  # may wait without the lock
            b = self._open.get(p)
            if not batchable:
                if b is not None:
                    self._hand_over(b)  # what came before it on this partition goes first
                self._track(self._send_record([line], p), [line], size)
                return
            if b is not None and not b.fits(line):
                self._hand_over(b)
                b = None
            if b is None:
                if not self._open:
                    self._cond.notify_all()  # the linger thread sleeps while nothing is open
                b = self._open[p] = _Batch(p, time.monotonic(), self.batch_bytes, self.batch_events)
            b.add(line)
            self._held += size
            if b.full:
                self._hand_over(b)

    def send_batch(self, events: Iterable[bytes], headers: Iterable[tuple[str, bytes]] = ()) -> Delivery:
        """Send these events (JSON bytes, as given) now, in the records `send` and a flush would
        write: grouped by partition, each group in batches within the bounds, a lone event or
        one a batch cannot carry as its single record, in order; `headers` are added to every
        record. An open batch of a partition they go to is handed over first. Returns their
        Delivery, which says when the broker acknowledged them; their failures are raised by it
        alone (not by this producer's `send`, `flush` or `close`), and they are not counted in
        `max_buffer_bytes`: the caller bounds what it sends. A batching producer only."""
        if not self.batch:
            raise RuntimeError("send_batch needs a batching producer (batch=True)")
        extra = list(headers)
        if time.monotonic() - self._partitions_at > _PARTITIONS_REFRESH_S:
            self._refresh_partitions()
        delivery = Delivery(self.topic)
        with self._cond:
            if self._closing or self._closed:
                raise RuntimeError(f"producer for {self.topic} is closed")
            groups: dict[int, list[bytes]] = {}
            for line in events:
                groups.setdefault(self._partition(event_key(line)), []).append(line)
            records: list[tuple[int, list[bytes]]] = []
            for p, lines in groups.items():
                for batchable, group in itertools.groupby(lines, lambda line: _batchable(line, self.batch_bytes)):
                    if batchable:
                        records += [(p, run) for run in runs(group, self.batch_bytes, self.batch_events)]
                    else:  # each alone, as a single record
                        records += [(p, [line]) for line in group]
                if p in self._open:
                    self._hand_over(self._open[p])  # what came before them on this partition goes first
            for i, (p, lines) in enumerate(records):
                try:
                    delivery.add(self._send_record(lines, p, extra), lines)
                except Exception as exc:  # this record and the rest are not sent: the caller's
                    delivery.add(_failed_future(exc), [line for _, rest in records[i:] for line in rest])
                    break
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        """Send every open batch and wait until the broker acknowledged every record handed over
        before this call (all, not some). Raises ProduceError for whatever failed or is still
        unacknowledged after `timeout` seconds (None: kafka-python's delivery timeout bounds it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for b in list(self._open.values()):
                self._hand_over(b)
            waiting = list(self._sent)
        if waiting:
            try:
                self._client.flush(timeout=_remaining(deadline))
            except Exception as exc:  # e.g. KafkaTimeoutError: what is not done is counted below
                log.debug("flush: %r", exc)
            for s in waiting:
                _wait(s.future, _remaining(deadline))
        with self._cond:
            self._reap(everything=True)
            pending = sum(len(s.lines) for s in waiting if not s.future.is_done)
            self._raise_failures(pending)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then close the Kafka client. Raises ProduceError for every event the broker did
        not acknowledge (after a timeout, the client is closed by force and the events it still
        had are among the undelivered). Closing twice is a no-op."""
        with self._cond:
            if self._closed:
                self._raise_failures(0)
                return
            self._closing = True  # from now on send() refuses events
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        error: ProduceError | None = None
        try:
            self.flush(timeout)
        except ProduceError as exc:
            error = exc
        try:
            self._client.close(timeout=0 if error is not None and error.pending else _remaining(deadline))
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            atexit.unregister(self._close_at_exit)
            with _LIVE_LOCK:
                _LIVE.discard(self)
                last = not _LIVE
            if last:
                _uninstall_sigterm_handler()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(5)
        with self._cond:
            self._reap(everything=True)
            # after a forced close, a record still unresolved will not be delivered by this client
            while self._sent:
                s = self._sent.popleft()
                self._failed.append((s, RuntimeError("the Kafka client closed before the record was acknowledged")))
            undelivered, cause = self._take_failures()
        if error is not None:
            undelivered[:0] = error.undelivered
            cause = error.cause or cause
        if undelivered:
            raise ProduceError(self.topic, undelivered, 0, cause) from error

    def buffered(self) -> tuple[int, int]:
        """(events, bytes) this producer holds: open batches, unacknowledged and failed records."""
        with self._cond:
            events = sum(len(b.items) for b in self._open.values()) + sum(len(s.lines) for s in self._sent)
            events += sum(len(s.lines) for s, _ in self._failed)
            return events, self._held

    def open_batches(self) -> int:
        with self._cond:
            return len(self._open)

    # ------------------------------------------------------------------ internals (lock held)

    def _check_usable(self) -> None:
        if self._closing or self._closed:
            raise RuntimeError(f"producer for {self.topic} is closed")
        if self._failed:
            self._raise_failures(0)

    def _partition(self, key: bytes | None) -> int:
        """The partition an event goes to: its key's (cached), or the next round-robin one."""
        if key is None:
            return self._partitions[next(self._round_robin) % len(self._partitions)]
        p = self._key_partition.get(key)
        if p is None:
            if len(self._key_partition) >= _KEY_CACHE_MAX:
                self._key_partition.clear()
            p = self._key_partition[key] = partition_for_key(key, self._partitions, self.topic)
        return p

    def _send_record(self, lines: list[bytes], partition: int, headers: Sequence[tuple[str, bytes]] = ()) -> Any:
        """Hand one record of these events to kafka-python: one event as the single record it
        would have been, several as a batch; `headers` are added to either."""
        if len(lines) == 1:
            line = lines[0]
            return self._client.send(
                self.topic, key=event_key(line), value=line, partition=partition, headers=list(headers) or None
            )
        return self._client.send(
            self.topic, value=b"\n".join(lines), partition=partition, headers=[BATCH_HEADER, *headers]
        )

    def _refresh_partitions(self) -> None:
        parts = sorted(self._client.partitions_for(self.topic))
        if not parts:
            raise RuntimeError(f"topic {self.topic} has no partitions")
        with self._cond:
            if parts != self._partitions:
                self._partitions = parts
                self._key_partition.clear()
            self._partitions_at = time.monotonic()

    def _hand_over(self, b: _Batch) -> None:
        """Give a batch to kafka-python (it keeps its place in `_held` until acknowledged)."""
        del self._open[b.partition]
        held = b.nbytes - (len(b.items) - 1)  # the separators were never held
        try:
            future = self._send_record(b.items, b.partition)
        except Exception as exc:  # kept, and raised to the caller like a failed delivery
            self._failed.append((_Sent(None, b.items, held), exc))
            return
        self.records_sent += 1
        self.events_sent += len(b.items)
        self._sent.append(_Sent(future, b.items, held))
        if len(self._sent) > 64:
            self._reap()

    def _track(self, future: Any, lines: list[bytes], held: int) -> None:
        self._held += held
        self.records_sent += 1
        self.events_sent += len(lines)
        self._sent.append(_Sent(future, lines, held))
        if len(self._sent) > 1024:
            self._reap()

    def _reap(self, everything: bool = False) -> None:
        """Drop acknowledged records; move failed ones to `_failed`. Oldest first, stopping at the
        first unresolved one unless `everything`."""
        keep: list[_Sent] = []
        while self._sent:
            s = self._sent[0]
            if not s.future.is_done:
                if not everything:
                    break
                keep.append(self._sent.popleft())
                continue
            self._sent.popleft()
            if s.future.failed():
                self._failed.append((s, s.future.exception))
            else:
                self._held -= s.held
        if keep:
            self._sent.extendleft(reversed(keep))

    def _make_room(self, size: int) -> None:
        """Block (sending open batches, waiting for acknowledgements) until `size` more bytes fit."""
        while self._held > 0 and self._held + size > self.max_buffer_bytes:
            for b in list(self._open.values()):
                self._hand_over(b)
            self._reap()
            self._check_usable()  # failed records are raised; a close meanwhile refuses the event
            if self._held + size <= self.max_buffer_bytes:
                return
            if not self._sent:
                break  # nothing left to wait for (cannot happen: the bytes held are in _sent)
            oldest = self._sent[0].future
            self._cond.release()  # wait without the lock: other threads may send, flush, close
            try:
                _wait(oldest, 1.0)
            finally:
                self._cond.acquire()
            self._reap()
        self._check_usable()

    def _take_failures(self) -> tuple[list[bytes], BaseException | None]:
        """The events of failed records, handed over to the caller (no longer held)."""
        failed, self._failed = self._failed, []
        undelivered: list[bytes] = []
        for s, _ in failed:
            undelivered.extend(s.lines)
            self._held -= s.held
        return undelivered, (failed[0][1] if failed else None)

    def _raise_failures(self, pending: int) -> None:
        if not self._failed and not pending:
            return
        undelivered, cause = self._take_failures()
        raise ProduceError(self.topic, undelivered, pending, cause)

    def _linger_loop(self) -> None:
        with self._cond:
            while not self._closed:
                try:
                    now = time.monotonic()
                    for b in [b for b in self._open.values() if now - b.born >= self.linger_s]:
                        self._hand_over(b)
                    self._reap()
                    wait = 1.0
                    if self._open:
                        oldest = min(b.born for b in self._open.values())
                        wait = max(0.001, oldest + self.linger_s - time.monotonic())
                except Exception:  # never let the thread die: flush/close still send everything
                    log.exception("linger thread")
                    wait = 1.0
                self._cond.wait(wait)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except ProduceError as exc:  # at exit there is no caller left: say it loudly
            log.error("at exit: %s", exc)
            sys.stderr.write(f"meterstream producer at exit: {exc}\n")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _wait(future: Any, timeout: float | None) -> None:
    """Wait for a kafka-python future to resolve (its error is read from it later)."""
    if future.is_done:
        return
    try:
        future.get(timeout=timeout)
    except Exception:
        pass


def _failed_future(exc: BaseException) -> Any:
    from kafka.future import Future

    return Future().failure(exc)


def _batchable(line: bytes, batch_bytes: int) -> bool:
    """Whether JSON Lines carry the event unchanged within the byte budget (module doc)."""
    return len(line) <= batch_bytes and b"\n" not in line and not line.endswith(b"\r") and bool(line.strip())


# ---------------------------------------------------------------------- exit and SIGTERM

_LIVE: set[Producer] = set()
_LIVE_LOCK = threading.Lock()
_sigterm_previous: Any = None
_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """On SIGTERM, flush every open producer before the process ends, but only where the
    process has no SIGTERM handler of its own (then it dies as before, after the flush), and
    only from the main thread (the only one that may set handlers)."""
    global _sigterm_previous, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_DFL:
            return  # the process's own handler (or SIG_IGN); a clean exit reaches atexit
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm_previous, _sigterm_installed = previous, True


def _uninstall_sigterm_handler() -> None:
    """When the last producer closed: the previous disposition again (if ours is still set)."""
    global _sigterm_installed
    if not _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, _sigterm_previous)
    except (ValueError, OSError):
        return
    _sigterm_installed = False


def _on_sigterm(signum: int, frame: Any) -> None:
    # Runs in the main thread between two bytecodes, possibly inside a producer's critical
    # section: take no lock here. A thread (not a daemon: a normal exit waits for it) flushes
    # every open producer, then re-sends the signal; a second SIGTERM acts as before ours.
    global _sigterm_installed
    signal.signal(signum, _sigterm_previous)
    _sigterm_installed = False
    try:
        threading.Thread(target=_flush_all_then_chain, args=(signum,), name="meterstream-producer-sigterm").start()
    except RuntimeError:  # no new threads: the interpreter is exiting, and atexit flushes
        pass


def _flush_all_then_chain(signum: int) -> None:
    with _LIVE_LOCK:
        producers = list(_LIVE)
    for p in producers:
        try:
            p.close()
        except Exception as exc:
            log.error("on SIGTERM: %s", exc)
            sys.stderr.write(f"meterstream producer on SIGTERM: {exc}\n")
    os.kill(os.getpid(), signum)  # the previous disposition: for SIG_DFL, the process ends


# ---------------------------------------------------------------------- publish


def publish(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    progress: Callable[[int], Any] | None = None,
    security: KafkaSecurity = PLAINTEXT,
    *,
    batch: bool = True,
    linger_ms: float = DEFAULT_LINGER_MS,
) -> int:
    """Send every line as is (bad lines too: they must reach the dead-letter path), batched per
    partition unless `batch=False` (one record per event). Returns the number of events; raises
    ProduceError if any was not delivered."""
    n = done = 0
    with Producer(bootstrap, topic, security=security, batch=batch, linger_ms=linger_ms) as producer:
        for line in lines:
            line = strip_line(line)  # what `meterstream price` measures and rates, too
            if not line.strip():
                continue
            producer.send(line)
            n += 1
            if progress is not None and n - done >= 1000:
                progress(n - done)
                done = n
    if progress is not None and n > done:
        progress(n - done)
    return n
