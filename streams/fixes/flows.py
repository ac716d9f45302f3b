"""What redrive, backfill and correct send: each builds a Change (the entries per partition, the
audit row, and what it leaves out and why) from the ledger as it is, without writing anything;
the CLI (streams/cli/past.py) shows it, sends it (streams/fixes/send.py) and waits for it.

Exactly once, whatever is run twice or at once: an event already in the ledger is not sent
again (and the rating agent's dedup drops one counted meanwhile); a correction already applied
(its correction_id is on a row of the event) is not sent again; two changes of one event prepared
against the same rows get the same adjustment number, and the second is refused by the rater."""

from __future__ import annotations

import datetime as dt
import getpass
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.batch import split
from schemas.billing_correction import BillingCorrection
from schemas.record import read_kind
from streams.fixes.ledger import EventState, states
from streams.fixes.periods import Closed
from streams.placement import Canonical

Read = Callable[..., list[dict[str, Any]]]
UTC = dt.UTC
_MARKS = ("<string: ", "<key: ", "<removed>", "<nested")


def default_actor() -> str:
    """Who runs the command, when no --author is given: user@host."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def audit_row(
    action: str, actor: str, reason: str, details: dict[str, Any], audit_id: str | None = None
) -> dict[str, Any]:
    return {
        "audit_id": audit_id or uuid.uuid4().hex,
        "at": int(dt.datetime.now(UTC).timestamp() * 1000),
        "actor": actor,
        "action": action,
        "reason": reason,
        "details": orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode(),
    }


@dataclass
class Change:
    """A change about to be sent: its entries per partition, its audit row, what it leaves out."""

    action: str
    audit: dict[str, Any]
    by_partition: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    booked_later: int = 0  # entries booked in an open period because their month is closed

    def add(self, partition: int, entry: dict[str, Any]) -> None:
        self.by_partition.setdefault(partition, []).append(entry)

    @property
    def entries(self) -> int:
        return sum(len(e) for e in self.by_partition.values())


def _existing(read: Read, ids: Iterable[tuple[str, str]]) -> dict[tuple[str, str], EventState]:
    """The ledger's rows of these (tenant, event_id), a thousand ids per read."""
    by_tenant: dict[str, list[str]] = {}
    for t, e in ids:
        by_tenant.setdefault(t, []).append(e)
    out: dict[tuple[str, str], EventState] = {}
    for tenant, events in by_tenant.items():
        unique = sorted(set(events))
        for i in range(0, len(unique), 1000):
            out.update(states(read("event_rows", tenant=tenant, event_ids=unique[i : i + 1000])))
    return out


def _ms(ts: Any) -> int | None:
    if not isinstance(ts, str):
        return None
    try:
        t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return int(t.timestamp() * 1000) if t.tzinfo else None


def _identity(event: Any) -> tuple[str, str, str] | None:
    if not isinstance(event, dict):
        return None
    t, u, e = event.get("tenant_id"), event.get("user_id"), event.get("event_id")
    if isinstance(t, str) and isinstance(u, str) and isinstance(e, str) and t and u and e:
        return t, u, e
    return None


def add_events(
    change: Change,
    read: Read,
    events: list[tuple[str, Any, list[Any] | None]],
    closed: Closed,
    canonical: Canonical,
) -> None:
    """Events to count through no lateness rule (redrive, backfill): `events` holds (what names
    it in messages, the event, the dead letter it redrives). Events already in the ledger are
    left out; the others go to their canonical partition, booked in the first open period when
    their month is closed."""
    named = [(what, ev, of, _identity(ev)) for what, ev, of in events]
    known = _existing(read, [(i[0], i[2]) for *_, i in named if i is not None])
    sending: set[tuple[str, str]] = set()
    for what, event, redrive_of, ident in named:
        if ident is None:
            change.skipped.append((what, "not an event: no tenant_id, user_id and event_id"))
            continue
        tenant, user, event_id = ident
        if (tenant, event_id) in known:
            change.skipped.append((what, "already counted: the ledger holds this event"))
            continue
        if (tenant, event_id) in sending:
            change.skipped.append((what, "the same event is sent once in this run (from its first occurrence)"))
            continue
        sending.add((tenant, event_id))
        at = _ms(event.get("ts"))
        book = closed.book_ms(tenant, at) if at is not None else None
        change.booked_later += book is not None
        change.add(
            canonical(tenant, user),
            {"op": "event", "entry": change.action, "event": event, "book_ms": book, "redrive_of": redrive_of},
        )


def whole(payload: str) -> tuple[dict[str, Any] | None, str]:
    """A stored dead-letter payload as an event, when it was kept whole; else (None, why not)."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, "its stored payload is not JSON"
    if not isinstance(doc, dict):
        return None, "its stored payload is not an object"
    if "not_stored" in doc:
        return None, "its payload was not stored (not JSON, or too large)"
    marked: list[str] = []

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k.startswith(_MARKS):
                    marked.append(f"{path}<key>")
                walk(x, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for x in v:
                walk(x, path)
        elif isinstance(v, str) and v.startswith(_MARKS):
            marked.append(path)

    walk(doc, "")
    if marked:
        return (
            None,
            f"its stored payload is redacted ({', '.join(sorted(set(marked))[:3])}) and Kafka no longer holds it",
        )
    return doc, ""


def kafka_originals(
    settings: Any, positions: Iterable[tuple[str, int, int, int]]
) -> dict[tuple[str, int, int, int], Any]:
    """The events at these source positions as Kafka still holds them (the events topic's
    retention): a position's event (a dict), or why it is none (a str). Positions gone are absent."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka_security import kafka_security

    wanted: dict[tuple[str, int], dict[int, list[int]]] = {}
    for topic, p, o, i in positions:
        wanted.setdefault((topic, p), {}).setdefault(o, []).append(i)
    out: dict[tuple[str, int, int, int], Any] = {}
    if not wanted:
        return out
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=2 * 1024 * 1024,
        **kafka_security(settings).kafka_python(bootstrap_timeout_ms=5000),
    )
    try:
        for (topic, p), offsets in wanted.items():
            tp = TopicPartition(topic, p)
            consumer.assign([tp])
            begin = consumer.beginning_offsets([tp])[tp]
            todo = sorted(o for o in offsets if o >= begin)
            while todo:
                consumer.seek(tp, todo[0])
                got = False
                for batch in consumer.poll(timeout_ms=5000, max_records=500).values():
                    for msg in batch:
                        if msg.offset in offsets:
                            _originals(out, topic, p, msg, offsets[msg.offset])
                        got = True
                    last = batch[-1].offset if batch else -1
                    todo = [o for o in todo if o > last]
                if not got:
                    break
    finally:
        consumer.close()
    return out


def _originals(out: dict[tuple[str, int, int, int], Any], topic: str, p: int, msg: Any, indexes: list[int]) -> None:
    kind = read_kind(msg.headers)
    value = msg.value or b""
    for i in indexes:
        key = (topic, p, msg.offset, i)
        if kind.refused or kind.unreadable or kind.catalog or kind.adjust:
            out[key] = "its record is not an event (refused by its producer, unreadable, or a control record)"
            continue
        line = value
        if kind.batch:
            try:
                lines = dict(split(value))
            except Exception:  # noqa: BLE001 - a batch that cannot be split is not redrivable
                out[key] = "its batch record cannot be split"
                continue
            line = lines.get(i, b"")
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            out[key] = "it is not JSON"
            continue
        out[key] = doc if isinstance(doc, dict) else "it is not a JSON object"


def redrive(
    settings: Any,
    read: Read,
    *,
    reason: str | None,
    tenant: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    actor: str,
    why: str,
    closed: Closed,
    canonical: Canonical,
    progress: Callable[[str], None] = lambda _: None,
) -> Change:
    """The dead letters matching the filters, sent again: each from the events topic while Kafka
    holds its record, else from its stored payload when that was kept whole. A dead letter whose
    redrive counted it (or found it counted) is not sent again."""
    asked = {
        "reason": reason,
        "tenant": tenant,
        "since": since and since.isoformat(),
        "until": until and until.isoformat(),
    }
    change = Change("redrive", audit_row("redrive", actor, why, {"filters": asked}))
    letters: list[dict[str, Any]] = []
    after = None
    while True:
        page = read("dead_letters", reason=reason, tenant=tenant, since=since, until=until, after=after, limit=5000)
        letters += page
        if len(page) < 5000:
            break
        last = page[-1]
        after = [last["src_topic"], int(last["src_partition"]), int(last["src_offset"]), int(last["src_index"])]
    progress(f"{len(letters)} dead letters match")
    todo = []
    for d in letters:
        pos = (str(d["src_topic"]), int(d["src_partition"]), int(d["src_offset"]), int(d["src_index"]))
        if d.get("redrive_outcome") in ("counted", "duplicate"):
            change.skipped.append((_where(pos, d), f"redriven before: {d['redrive_outcome']}"))
            continue
        todo.append((pos, d))
    kept = kafka_originals(settings, [pos for pos, d in todo if pos[0] == settings.events_topic])
    events: list[tuple[str, Any, list[Any] | None]] = []
    for pos, d in todo:
        original = kept.get(pos)
        if isinstance(original, dict):
            event: dict[str, Any] | None = original
        else:
            event, why_not = whole(str(d.get("payload") or ""))
            if event is None:
                change.skipped.append((_where(pos, d), str(original) if isinstance(original, str) else why_not))
                continue
        events.append((_where(pos, d), event, list(pos)))
    add_events(change, read, events, closed, canonical)
    change.audit["details"] = orjson.dumps(
        {"filters": asked, "matched": len(letters), "sent": change.entries, "left_out": len(change.skipped)},
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    return change


def _where(pos: tuple[str, int, int, int], d: dict[str, Any]) -> str:
    ident = f"{d.get('tenant_id')}/{d.get('event_id')}" if d.get("event_id") else "no valid id"
    return f"{pos[0]} p{pos[1]}@{pos[2]}.{pos[3]} ({ident})"


def backfill(
    read: Read,
    lines: Iterable[tuple[int, bytes]],
    *,
    source: str,
    actor: str,
    why: str,
    closed: Closed,
    canonical: Canonical,
) -> Change:
    """History from a JSON Lines file of billing events: the events the ledger does not hold,
    each to its canonical partition (priced and checked there: a bad one is dead-lettered)."""
    change = Change("backfill", audit_row("backfill", actor, why, {"file": source}))
    events: list[tuple[str, Any, list[Any] | None]] = []
    for n, line in lines:
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            change.skipped.append((f"line {n}", f"not JSON ({exc})"))
            continue
        events.append((f"line {n}", doc, None))
    add_events(change, read, events, closed, canonical)
    change.audit["details"] = orjson.dumps(
        {
            "file": source,
            "lines": len(events) + len(change.skipped),
            "sent": change.entries,
            "left_out": len(change.skipped),
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    return change


def corrections(
    read: Read, items: list[BillingCorrection], *, closed: Closed, canonical: Canonical, partitions: int
) -> list[Change]:
    """One Change per correction (its audit row names its author and reason). A correction
    already applied is left out; one of an unknown or void event is sent to be dead-lettered
    with the reason (on the partition of the event, or of its id when unknown)."""
    known = _existing(read, [(c.tenant_id, c.event_id) for c in items])
    out: list[Change] = []
    seen: set[tuple[str, str]] = set()
    for c in items:
        what = f"{c.tenant_id}/{c.event_id} ({c.correction_id})"
        details = {"correction": c.model_dump(mode="json", exclude_none=True)}
        change = Change("correct", audit_row("correct", c.author, c.reason, details, audit_id=c.correction_id))
        out.append(change)
        state = known.get((c.tenant_id, c.event_id))
        entry: dict[str, Any] = {
            "op": "adjust",
            "entry": c.action,
            "tenant_id": c.tenant_id,
            "event_id": c.event_id,
        }
        if state is None:
            entry.update(adjustment=1, book_ms=0, base=None, current=None)
            entry["refused"] = f"no event {c.tenant_id}/{c.event_id} in the ledger to {c.action}"
            change.add(canonical(c.tenant_id, c.event_id) % partitions, entry)
            continue
        if state.applied(c.correction_id):
            change.skipped.append((what, "applied before: a row of the event carries this correction_id"))
            continue
        if (c.tenant_id, c.event_id) in seen:
            change.skipped.append(
                (what, "a second correction of this event in one run: give it again after the first is applied")
            )
            continue
        seen.add((c.tenant_id, c.event_id))
        own_ts = int(state.own["ts_ms"])
        book = closed.book_ms(c.tenant_id, own_ts)
        change.booked_later += book is not None
        entry.update(
            adjustment=state.next_adjustment,
            book_ms=own_ts if book is None else book,
            base=state.base(),
            current=state.current(),
        )
        if state.voided:
            entry["refused"] = f"the event {c.tenant_id}/{c.event_id} is void already"
        elif c.action == "replace":
            assert c.usage is not None
            entry["event"] = state.event(c.usage.model_dump(mode="json", exclude_none=True))
        change.add(state.partition, entry)
    return out
