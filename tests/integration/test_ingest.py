"""The HTTP ingest (`meterstream ingest`, a real subprocess) on the real broker: closed as the
worker's web port is; valid events written exactly as `meterstream produce` writes them (batched
per partition, the batch header) plus the producer's name; bad lines answered with their index
and reason and dead-lettered, never written; provider payloads converted; a broker that does not
acknowledge is a 503, never a 202; and events posted over HTTP counted exactly by a worker."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import Ids, convert_line
from pricing import load_catalog
from schemas.batch import is_batch, split
from schemas.refusal import refusal_of
from schemas.validate import InvalidEvent, parse_event
from streams.harness.expected import as_rows, expected_totals, normalize
from streams.harness.generate import generate
from streams.harness.stack import CLI, Broker, Stack, free_port
from streams.producer import event_key, partition_for_key, publish
from tests.kafka_records import end_offsets, events_of, read_topic

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PRODUCER = ("ms-producer", b"gateway")


class Ingest:
    """`meterstream ingest` in a subprocess, with a token for the producer "gateway"."""

    def __init__(self, env: dict[str, str], tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.tokens = tmp / f"tokens-{self.port}"
        add = subprocess.run(
            [*CLI, "ingest", "token", "add", "gateway", "--tokens-file", str(self.tokens)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.token = add.stdout.strip()
        self.log = tmp / f"ingest-{self.port}.log"
        self.proc = subprocess.Popen(
            [*CLI, "ingest", "--port", str(self.port), "--tokens-file", str(self.tokens)],
            env={**env, **settings},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.request("GET", "/health", token=None)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ingest did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        ctype: str = "application/jsonl",
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, decoded JSON, headers); `token` "" is the producer's, None none."""
        h = {"Content-Type": ctype} if body is not None else {}
        if token is not None:
            h["Authorization"] = f"Bearer {token or self.token}"
        h.update(headers or {})
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read()), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), exc.headers

    def post(self, path: str, body: bytes, **kw: Any) -> tuple[int, Any]:
        status, doc, _ = self.request("POST", path, body, **kw)
        return status, doc

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def refused_of(records: dict[int, list]) -> list[tuple[str, dict]]:
    """The refused records among them (schemas/refusal.py): (reason, stored payload)."""
    out = []
    for recs in records.values():
        for r in recs:
            if refusal_of(r.headers) is not None:
                assert r.headers[1:] == [PRODUCER] and r.key is None
                out.append((refusal_of(r.headers), orjson.loads(r.value)))
    return out


def reason(raw: bytes) -> str:
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        return exc.reason
    raise AssertionError(f"valid: {raw[:80]!r}")


@pytest.fixture(scope="module")
def stack(kafka_service, clickhouse_service, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest")
    s = Stack(kafka_service.bootstrap, tmp, clickhouse_service.url)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ingest(stack):
    server = Ingest(stack.env, stack.tmp)
    yield server
    server.stop()


def test_binds_to_loopback_and_every_request_but_health_needs_a_producers_token(stack, ingest):
    out = subprocess.run(["ss", "-ltnH", f"sport = :{ingest.port}"], capture_output=True, text=True, check=True).stdout
    assert {line.split()[3] for line in out.splitlines() if line.strip()} == {f"127.0.0.1:{ingest.port}"}
    assert ingest.request("GET", "/health", token=None)[:2] == (200, {"ok": True})
    before = end_offsets(stack.bootstrap, stack.events_topic)
    event = next(line for _, line in generate(1, now=NOW))
    said = {}
    for token, challenge in (
        (None, 'Bearer realm="meterstream-ingest"'),
        ("x" * 43, 'Bearer realm="meterstream-ingest", error="invalid_token"'),
        (ingest.token[:-1], 'Bearer realm="meterstream-ingest", error="invalid_token"'),
    ):
        for path in ("/v1/events", "/v1/usage/openai", "/nowhere"):
            status, doc, headers = ingest.request("POST", path, event, token=token)
            assert status == 401 and "token" in doc["error"], (path, status, doc)
            assert headers["WWW-Authenticate"] == challenge
            said.setdefault(token is None, set()).add(doc["error"])
    assert len(said[True]) == len(said[False]) == 1 and said[True] != said[False]  # missing vs wrong, told apart
    status, doc, headers = ingest.request("GET", "/v1/events")
    assert status == 405 and headers["Allow"] == "POST" and doc["error"]
    assert ingest.request("POST", "/nowhere", event)[0] == 404
    assert ingest.post("/v1/usage/no-such-format", event)[0] == 404
    assert end_offsets(stack.bootstrap, stack.events_topic) == before  # nothing was written
    assert ingest.token not in ingest.log.read_text() and ingest.token not in ingest.tokens.read_text()


def test_a_token_added_while_running_is_taken_and_one_limited_to_a_tenant_writes_only_its_events(stack, ingest):
    """`ingest token add --tenant` on a running ingest: the new token works within a second; its
    request with another tenant's event is refused whole (403, nothing written); its own tenant's
    events are written; its line deleted, it is refused (401)."""
    scoped = subprocess.run(
        [*CLI, "ingest", "token", "add", "acme-gw", "--tenant", "acme", "--tokens-file", str(ingest.tokens)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    mine, theirs = (
        orjson.dumps({**orjson.loads(line), "tenant_id": t})
        for (_, line), t in zip(generate(2, seed=71, now=NOW), ("acme", "initech"))
    )
    deadline = time.monotonic() + 10
    while ingest.post("/v1/events", mine, token=scoped)[0] == 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post("/v1/events", b"\n".join([mine, theirs]), token=scoped)
    assert status == 403 and doc["indexes"] == [1] and "acme only" in doc["error"], doc
    assert end_offsets(stack.bootstrap, stack.events_topic) == before  # nothing of it was written
    assert (
        ingest.post(
            "/v1/usage/openai?tenant=initech&user=u", payloads(CHAT, 1)[0], ctype="application/json", token=scoped
        )[0]
        == 403
    )
    assert ingest.post("/v1/events", mine, token=scoped) == (202, {"accepted": 1, "rejected": []})
    assert ingest.post("/v1/events", theirs)[0] == 202  # the gateway's token is for any tenant
    records = [r for recs in read_topic(stack.bootstrap, stack.events_topic, before).values() for r in recs]
    assert [r.value for r in records if r.headers == [("ms-producer", b"acme-gw")]] == [mine]
    lines = ingest.tokens.read_text().splitlines()
    ingest.tokens.write_text("".join(line + "\n" for line in lines if not line.startswith("acme-gw ")))
    deadline = time.monotonic() + 10
    while ingest.post("/v1/events", mine, token=scoped)[0] != 401:
        assert time.monotonic() < deadline, "a deleted token still works"
        time.sleep(0.2)
    assert ingest.post("/v1/events", mine)[0] == 202


def test_foreign_hosts_other_content_types_and_large_bodies_are_refused(stack, ingest):
    before = end_offsets(stack.bootstrap, stack.events_topic)
    event = next(line for _, line in generate(1, now=NOW))
    status, doc = ingest.post("/v1/events", event, headers={"Host": "attacker.example:6070"})
    assert status == 421, doc  # DNS rebinding: a name that resolves here is still not ours
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert ingest.post("/v1/events", event, ctype=ctype)[0] == 415, ctype
    big = b"\n".join([event] * (1024 * 1024 // len(event) + 1))
    status, doc = ingest.post("/v1/events", big)
    assert status == 413 and "1048576 bytes" in doc["error"]
    # without a Content-Length (chunked): refused once the limit is read, not after the whole body
    conn = http.client.HTTPConnection("127.0.0.1", ingest.port, timeout=60)
    conn.putrequest("POST", "/v1/events")
    for k, v in (
        ("Authorization", f"Bearer {ingest.token}"),
        ("Content-Type", "application/jsonl"),
        ("Transfer-Encoding", "chunked"),
    ):
        conn.putheader(k, v)
    conn.endheaders()
    for _ in range(32):  # 2 MiB
        conn.send(b"10000\r\n" + b"x" * 65536 + b"\r\n")
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 413 and "1048576 bytes" in json.loads(response.read())["error"]
    conn.close()
    assert ingest.post("/v1/events", b"[1, 2", ctype="application/json")[0] == 400
    assert ingest.post("/v1/events", b"\n\n")[0] == 400
    assert ingest.post("/v1/events?tenant=acme", event)[0] == 400  # events carry their ids
    assert end_offsets(stack.bootstrap, stack.events_topic) == before


def test_valid_events_are_written_as_meterstream_produce_writes_them(stack, ingest, kafka_service):
    lines = [line for _, line in generate(3000, seed=41, now=NOW, duplicate_rate=0.1)]
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post("/v1/events", b"\r\n".join(lines) + b"\r\n")  # line endings are not events
    assert (status, doc) == (202, {"accepted": 3000, "rejected": []})
    got = events_of(read_topic(stack.bootstrap, stack.events_topic, before), PRODUCER)
    partitions = sorted(before)
    for part, events in got.items():
        assert all(partition_for_key(event_key(e), partitions) == part for e in events)
        assert events == [e for e in lines if partition_for_key(event_key(e), partitions) == part]  # in order
    assert sum(len(r) for r in read_topic(stack.bootstrap, stack.events_topic, before).values()) == len(partitions)
    # the project's producer, same events, a topic with as many partitions: the same events per partition
    from kafka.admin import KafkaAdminClient, NewTopic

    twin = f"{stack.events_topic}-twin"
    admin = KafkaAdminClient(bootstrap_servers=kafka_service.bootstrap)
    admin.create_topics([NewTopic(twin, len(partitions), 1)])
    admin.close()
    publish(stack.bootstrap, twin, lines, linger_ms=60_000)
    assert events_of(read_topic(stack.bootstrap, twin, {p: 0 for p in partitions})) == got
    # a JSON array: its elements as sent; one with a line break (pretty-printed) alone, as the producer sends it
    pretty = orjson.dumps(orjson.loads(lines[0]), option=orjson.OPT_INDENT_2)
    body = b"[" + b",".join(lines[1:200]) + b", " + pretty + b"]"
    before = end_offsets(stack.bootstrap, stack.events_topic)
    assert ingest.post("/v1/events", body, ctype="application/json") == (202, {"accepted": 200, "rejected": []})
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    assert Counter(e for evs in events_of(records, PRODUCER).values() for e in evs) == Counter([*lines[1:200], pretty])
    assert [r.value for recs in records.values() for r in recs if not is_batch(r.headers)] == [pretty]
    one = lines[200]
    before = end_offsets(stack.bootstrap, stack.events_topic)
    assert ingest.post("/v1/events", one, ctype="application/json") == (202, {"accepted": 1, "rejected": []})
    assert [
        e for evs in events_of(read_topic(stack.bootstrap, stack.events_topic, before), PRODUCER).values() for e in evs
    ] == [one]


def test_bad_lines_are_answered_with_their_reasons_dead_lettered_and_not_written(stack, ingest):
    traffic = list(generate(400, seed=43, now=NOW, bad=30))
    lines = [line for _, line in traffic]
    bad = {i for i, (kind, line) in enumerate(traffic) if kind.startswith("bad:") and _invalid(line)}
    priced_later = [i for i, (kind, _) in enumerate(traffic) if kind.startswith("bad:") and i not in bad]
    assert len(bad) >= 15 and priced_later  # unknown models, wrong regions: the stream's to refuse
    body = b"\n".join(line if i != 5 else b"" for i, line in enumerate(lines))  # a blank line keeps its number
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post("/v1/events", body)
    good = [line for i, line in enumerate(lines) if i not in bad and i != 5]
    assert status == 202 and doc["accepted"] == len(good)
    assert doc["rejected"] == [{"index": i, "reason": reason(lines[i])} for i in sorted(bad)]
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    written = events_of(records, PRODUCER)
    assert Counter(e for evs in written.values() for e in evs) == Counter(good)
    refused = sorted(refused_of(records), key=lambda rp: int(rp[0].split("index ", 1)[1].split(":", 1)[0]))
    assert [r for r, _ in refused] == [
        f"meterstream ingest POST /v1/events by gateway, index {i}: {reason(lines[i])}" for i in sorted(bad)
    ]
    # nothing valid at all: 422 with the reasons, still written as refused records, and no event
    only_bad = [lines[i] for i in sorted(bad)][:3]
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post("/v1/events", b"\n".join(only_bad))
    assert status == 422 and doc == {
        "accepted": 0,
        "rejected": [{"index": i, "reason": reason(b)} for i, b in enumerate(only_bad)],
    }
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    assert len(refused_of(records)) == 3 and not [e for evs in events_of(records, PRODUCER).values() for e in evs]


def _invalid(line: bytes) -> bool:
    try:
        parse_event(line)
    except InvalidEvent:
        return True
    return False


CHAT = {
    "id": "chatcmpl-ingest-{i}",
    "object": "chat.completion",
    "created": int(NOW.timestamp()),
    "model": "gpt-4o",
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}
CONVERSE = {
    "usage": {
        "inputTokens": 1200,
        "outputTokens": 300,
        "totalTokens": 2400,
        "cacheReadInputTokens": 800,
        "cacheWriteInputTokens": 100,
    },
    "ResponseMetadata": {"RequestId": "br-ingest-{i}", "HTTPStatusCode": 200},
}
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def payloads(template: dict, n: int) -> list[bytes]:
    return [orjson.dumps(template).replace(b"{i}", str(i).encode()) for i in range(n)]


def test_provider_payloads_are_converted_and_refusals_answered(stack, ingest):
    chats = payloads(CHAT, 20)
    audio = orjson.dumps(
        {
            **CHAT,
            "id": "chatcmpl-audio",
            # cached tokens beside audio ones: which were cached is not documented (refused; audio
            # tokens alone are priced since billing_event 1.1)
            "usage": {**CHAT["usage"], "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 9}},
        }
    )
    chats.insert(4, audio)
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post(
        "/v1/usage/openai?tenant=acme&user=alice&label=app=search",
        b"[" + b",".join(chats) + b"]",
        ctype="application/json",
    )
    ids = Ids(tenant_id="acme", user_id="alice", labels={"app": "search"})
    want = [e for c in chats if c is not audio for e in convert_line("openai", c, ids)]
    assert status == 202 and doc["accepted"] == 20 and len(doc["rejected"]) == 1
    assert doc["rejected"][0]["index"] == 4 and doc["rejected"][0]["reason"].startswith("not converted (openai): ")
    assert "which of them were cached" in doc["rejected"][0]["reason"]
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    written = events_of(records, PRODUCER)
    assert Counter(e for evs in written.values() for e in evs) == Counter(want)
    ((why, payload),) = refused_of(records)
    assert why == f"meterstream ingest POST /v1/usage/openai by gateway, index 4: {doc['rejected'][0]['reason']}"
    assert payload["id"] == "chatcmpl-audio"
    # Bedrock replies name no model, region or time: headers give them (JSON Lines, one payload a line)
    converse = payloads(CONVERSE, 5)
    headers = {"Meterstream-Model": HAIKU, "Meterstream-Region": "us-east-1", "Meterstream-Ts": NOW.isoformat()}
    before = end_offsets(stack.bootstrap, stack.events_topic)
    assert ingest.post("/v1/usage/bedrock-converse?tenant=acme&user=bob", b"\n".join(converse), headers=headers) == (
        202,
        {"accepted": 5, "rejected": []},
    )
    ids = Ids(tenant_id="acme", user_id="bob", model=HAIKU, region="us-east-1", ts=NOW.isoformat())
    written = events_of(read_topic(stack.bootstrap, stack.events_topic, before), PRODUCER)
    assert Counter(e for evs in written.values() for e in evs) == Counter(
        e for c in converse for e in convert_line("bedrock-converse", c, ids)
    )
    # ids that cannot be used as given
    for path, extra in (
        ("/v1/usage/openai?tenant_id=acme", {}),
        ("/v1/usage/openai?tenant=acme", {"Meterstream-Tenant": "globex"}),
        ("/v1/usage/openai?tenant=acme&user=a&event-id=x", {}),
        ("/v1/usage/openai?label=nokey", {}),
    ):
        status, doc = ingest.post(path, b"\n".join(chats[:2]), headers=extra)
        assert status == 400 and doc["error"], (path, doc)
    status, doc = ingest.post("/v1/usage/bedrock-converse?tenant=acme&user=bob", converse[0])
    assert status == 422 and "does not carry ts, model" in doc["rejected"][0]["reason"]


def test_a_broker_that_cannot_be_reached_is_a_503_never_a_202(stack, tmp_path):
    env = {**stack.env, "MS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}  # nothing listens there
    server = Ingest(env, tmp_path, MS_INGEST_ACK_TIMEOUT_S="3")
    try:
        event = next(line for _, line in generate(1, now=NOW))
        for _ in range(2):
            status, doc, headers = server.request("POST", "/v1/events", event)
            assert status == 503 and "nothing is confirmed" in doc["error"] and headers["Retry-After"], doc
        assert server.request("GET", "/health", token=None)[0] == 200
    finally:
        server.stop()


def test_a_broker_gone_mid_run_is_a_503_and_its_return_a_202(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    try:
        stack = Stack(broker.bootstrap, tmp_path / "stack")
        server = Ingest(stack.env, tmp_path, MS_INGEST_ACK_TIMEOUT_S="5")
        lines = [line for _, line in generate(300, seed=47, now=NOW)]
        try:
            assert server.post("/v1/events", b"\n".join(lines[:100]))[0] == 202
            broker.stop()
            status, doc = server.post("/v1/events", b"\n".join(lines[100:200]))
            assert status == 503 and "Kafka" in doc["error"], doc
            broker.start()
            deadline = time.monotonic() + 120
            while (status := server.post("/v1/events", b"\n".join(lines[200:]))[0]) != 202:
                assert status == 503 and time.monotonic() < deadline
        finally:
            server.stop()
        got = Counter(
            e
            for evs in events_of(
                read_topic(broker.bootstrap, stack.events_topic, dict.fromkeys(range(4), 0)), PRODUCER
            ).values()
            for e in evs
        )
        assert all(got[line] >= 1 for line in lines[:100] + lines[200:])  # every acknowledged event is there
    finally:
        broker.remove()


def test_events_posted_over_http_are_counted_exactly(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    server = Ingest(stack.env, tmp_path)
    try:
        traffic = list(generate(3000, seed=53, now=NOW, duplicate_rate=0.1, bad=40, late=10))
        lines = [line for _, line in traffic]
        accepted: list[bytes] = []
        refusals = 0
        for start in range(0, len(lines), 500):  # six requests, one as a JSON array
            chunk = lines[start : start + 500]
            if start == 1000:  # an array must be JSON to its end: what is not goes as JSON Lines only
                chunk = [line for line in chunk if not line.startswith(b"{this")]
                status, doc = server.post("/v1/events", b"[" + b",".join(chunk) + b"]", ctype="application/json")
            else:
                status, doc = server.post("/v1/events", b"\n".join(chunk))
            refused = {r["index"] for r in doc["rejected"]}
            assert status == 202 and doc["accepted"] + len(refused) == len(chunk)
            accepted += [line for i, line in enumerate(chunk) if i not in refused]
            refusals += len(refused)
        chats = payloads(CHAT, 10)
        status, doc = server.post("/v1/usage/openai?tenant=acme&user=carol", b"\n".join(chats))
        assert (status, doc) == (202, {"accepted": 10, "rejected": []})
        accepted += [e for c in chats for e in convert_line("openai", c, Ids(tenant_id="acme", user_id="carol"))]
        exp = expected_totals(accepted, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        assert exp.rejected > 0 and exp.duplicates > 0 and refusals > 0  # unknown models and regions: the stream's
        exp.rejected += refusals  # what the ingest refused: refused records, rejected by the rater
        stack.start_worker()
        stack.wait_until_exact(exp, timeout=240)  # rejected_events: the stream's refusals and the ingest's
        assert normalize(stack.report("model", "total"), "model", "total") == as_rows(exp, "model", "total")
    finally:
        server.stop()
        stack.stop()


# ---------------------------------------------------------------------------- hostile producers


def sized_event(size: int, seed: int = 61) -> bytes:
    """A valid event of exactly `size` bytes (up to about 1 MiB): a text payload and whitespace."""
    doc = orjson.loads(next(line for _, line in generate(1, seed=seed, now=NOW)))
    text = max(0, min(500_000, (size - len(orjson.dumps(doc)) - 40) // 2))
    raw = orjson.dumps({**doc, "text": {"input": "x" * text, "output": "y" * text}})
    assert len(raw) <= size, size
    out = b"{" + b" " * (size - len(raw)) + raw[1:]
    parse_event(out)
    return out


def add_token(ingest: Ingest, env: dict[str, str], name: str) -> str:
    """A token for producer `name`, added to the running ingest's file, once it takes it."""
    token = subprocess.run(
        [*CLI, "ingest", "token", "add", name, "--tokens-file", str(ingest.tokens)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 10
    while ingest.request("GET", "/v1/events", token=token)[0] == 401:  # 405 once the token is known
        assert time.monotonic() < deadline, "the new token is not taken"
        time.sleep(0.2)
    return token


def written(bootstrap: str, topic: str, since: dict[int, int], producer: bytes) -> list[bytes]:
    """The events on the topic since `since` that `producer` wrote (batches opened, refused records not)."""
    out: list[bytes] = []
    for recs in read_topic(bootstrap, topic, since).values():
        for r in recs:
            if ("ms-producer", producer) in r.headers and refusal_of(r.headers) is None:
                out.extend([line for _, line in split(r.value)] if is_batch(r.headers) else [r.value])
    return out


def test_an_event_too_large_for_the_broker_is_refused_alone_and_the_next_request_is_written(stack, ingest):
    """An event of 1 MiB (valid: the stream's own limit) would make a record over the broker's
    limit (max.message.bytes, 1048588): it is refused as an item, with its reason, and written as a
    refused record; nothing of it reaches the broker as an event, the producer stays usable, and
    the next request, from another producer, is written and answered 202 at once."""
    huge = sized_event(1_048_576)
    assert len(huge) == 1_048_576
    other = add_token(ingest, stack.env, "other")
    before = end_offsets(stack.bootstrap, stack.events_topic)
    status, doc = ingest.post("/v1/events", huge)
    assert status == 422 and doc["accepted"] == 0, doc
    ((refused,),) = [doc["rejected"]]
    assert refused["index"] == 0 and "over the 1048588-byte limit" in refused["reason"], refused
    assert "max.message.bytes of topic " + stack.events_topic in refused["reason"]
    small = next(line for _, line in generate(1, seed=62, now=NOW))
    started = time.monotonic()
    assert ingest.post("/v1/events", small, token=other) == (202, {"accepted": 1, "rejected": []})
    assert time.monotonic() - started < 10  # not a broker waited out
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    ((why, payload),) = refused_of(records)  # the refused record: the reason, no text
    assert why == f"meterstream ingest POST /v1/events by gateway, index 0: {refused['reason']}"
    assert payload["event_id"] == orjson.loads(huge)["event_id"] and "x" * 300 not in orjson.dumps(payload).decode()
    assert written(stack.bootstrap, stack.events_topic, before, b"other") == [small]
    assert not written(stack.bootstrap, stack.events_topic, before, b"gateway")
    assert ingest.post("/v1/events", small) == (202, {"accepted": 1, "rejected": []})


def _set_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    """Set the topic's max.message.bytes, and wait until the broker refuses a record over it."""
    from kafka import KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import MessageSizeTooLargeError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(value)})])
    admin.close()
    probe = KafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", retries=0, max_request_size=4 << 20
    )
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                probe.send(topic, b"p" * (value + 100), partition=0).get(timeout=30)
            except MessageSizeTooLargeError:
                return
            assert time.monotonic() < deadline, "the broker does not take the new limit"
            time.sleep(0.5)
    finally:
        probe.close()


def test_records_stay_within_the_topics_limit_and_a_client_the_broker_broke_is_replaced(stack, tmp_path):
    """The events topic's own max.message.bytes is read (here 20000, not the broker's 1 MB):
    batches are cut within it, an event over it is refused as its item while the request's other
    events are written. Then the limit is lowered under the ingest's feet, so the broker itself
    refuses a record: kafka-python's idempotent producer enters its fatal state and that request
    is a 503; the next request, from another producer, is a 202 (a new client, the limit read
    again), and the same event is now refused as an item."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"{stack.events_topic}-small"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1, topic_configs={"max.message.bytes": "20000"})])
    admin.close()
    server = Ingest({**stack.env, "MS_EVENTS_TOPIC": topic}, tmp_path)
    try:
        other = add_token(server, stack.env, "other")
        lines = [line for _, line in generate(600, seed=63, now=NOW)]
        big, mid = sized_event(30_000, seed=64), sized_event(15_000, seed=65)
        start = {p: 0 for p in range(4)}
        status, doc = server.post("/v1/events", b"\n".join([*lines[:300], big, *lines[300:]]))
        assert status == 202 and doc["accepted"] == 600, doc
        assert [r["index"] for r in doc["rejected"]] == [300]
        assert "over the 20000-byte limit" in doc["rejected"][0]["reason"]
        assert "max.message.bytes of topic " + topic in doc["rejected"][0]["reason"]
        records = read_topic(stack.bootstrap, topic, start)
        assert Counter(e for evs in events_of(records, PRODUCER).values() for e in evs) == Counter(lines)
        assert all(len(r.value) < 20_000 for recs in records.values() for r in recs)
        assert sum(len(recs) for recs in records.values()) > 4 + 1  # cut into more batches than partitions
        assert server.post("/v1/events", mid) == (202, {"accepted": 1, "rejected": []})  # under 20000
        _set_max_message_bytes(stack.bootstrap, topic, 10_000)
        before = end_offsets(stack.bootstrap, topic)
        status, doc = server.post("/v1/events", mid)  # the ingest still holds 20000: the broker refuses it
        assert status == 503 and "nothing is confirmed" in doc["error"], (status, doc)
        small = lines[0]
        status, doc = server.post("/v1/events", small, token=other)
        assert (status, doc) == (202, {"accepted": 1, "rejected": []}), server.log.read_text()[-3000:]
        status, doc = server.post("/v1/events", mid)
        assert status == 422 and "over the 10000-byte limit" in doc["rejected"][0]["reason"], doc
        assert written(stack.bootstrap, topic, before, b"other") == [small]
        assert not written(stack.bootstrap, topic, before, b"gateway")
        assert "closed, a new one is made for the next request" in server.log.read_text()
    finally:
        server.stop()


def test_a_request_is_at_most_4096_items_and_its_answer_is_bounded(stack, ingest):
    """More items than a batch record may hold (4096) is a 413 and nothing is written; 4096 bad
    items are 4096 refused records, and the answer lists the first 100 with the count."""
    before = end_offsets(stack.bootstrap, stack.events_topic)
    for raw, ctype in (
        (b"1\n" * 4097, "application/jsonl"),
        (b"1\n" * (1024 * 1024 // 2), "application/jsonl"),
        (b"[" + b",".join([b"1"] * 4097) + b"]", "application/json"),
    ):
        status, doc = ingest.post("/v1/events", raw, ctype=ctype)
        assert status == 413 and doc == {
            "error": "the body holds more than 4096 items: send them in several "
            "requests (at most 4096); nothing was written"
        }, doc
    assert end_offsets(stack.bootstrap, stack.events_topic) == before
    status, _, _ = ingest.request("POST", "/v1/events", b"\n" * 100_000 + b"1\n" * 4096)  # blank lines are no items
    assert status == 422
    before = end_offsets(stack.bootstrap, stack.events_topic)
    req = urllib.request.Request(
        f"http://127.0.0.1:{ingest.port}/v1/events",
        data=b"1\n" * 4096,
        method="POST",
        headers={"Content-Type": "application/jsonl", "Authorization": f"Bearer {ingest.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(req, timeout=120)
    raw = answer.value.read()
    doc = json.loads(raw)
    assert answer.value.code == 422 and len(raw) < 16 * 1024
    assert doc["accepted"] == 0 and doc["rejected_count"] == 4096 and doc["rejected_truncated"] is True
    assert [r["index"] for r in doc["rejected"]] == list(range(100))
    assert doc["rejected"][0]["reason"] == reason(b"1")
    records = read_topic(stack.bootstrap, stack.events_topic, before)
    assert len(refused_of(records)) == 4096


def test_a_tenant_named_twice_in_one_event_is_checked_every_time(stack, ingest):
    """A token for acme sends an event naming acme and then initech (a repeated key: the scope
    check and the stream could read different ones): 403, nothing written for anyone."""
    scoped = add_token_for(ingest, stack.env, "acme-only", "acme")
    event = next(line for _, line in generate(1, seed=66, now=NOW))
    doc = orjson.loads(event)
    body = orjson.dumps({**doc, "tenant_id": "acme"})
    twice = [body[:-1] + b',"tenant_id":"initech"}', b'{"tenant_id":"initech",' + body[1:]]
    before = end_offsets(stack.bootstrap, stack.events_topic)
    for i, raw in enumerate(twice):
        status, answer = ingest.post("/v1/events", b"\n".join([body, raw]), token=scoped)
        assert status == 403 and answer["indexes"] == [1], (i, answer)
    assert end_offsets(stack.bootstrap, stack.events_topic) == before
    status, answer = ingest.post("/v1/events", body[:-1] + b',"tenant_id":"acme"}', token=scoped)
    assert status == 422 and "tenant_id: duplicate key" in answer["rejected"][0]["reason"], answer  # its own tenant


def add_token_for(ingest: Ingest, env: dict[str, str], name: str, tenant: str) -> str:
    token = subprocess.run(
        [*CLI, "ingest", "token", "add", name, "--tenant", tenant, "--tokens-file", str(ingest.tokens)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 10
    while ingest.request("GET", "/v1/events", token=token)[0] == 401:
        assert time.monotonic() < deadline, "the new token is not taken"
        time.sleep(0.2)
    return token


def test_a_number_of_thousands_of_digits_is_an_items_reason_never_a_500(stack, ingest):
    event = next(line for _, line in generate(1, seed=67, now=NOW))
    for body, ctype in (
        (b"[" + event + b', {"n": ' + b"9" * 5000 + b"}]", "application/json"),
        (b"[" + event + b", " + b"7" * 5000 + b"]", "application/json"),
        (event + b'\n{"n": ' + b"9" * 5000 + b"}", "application/jsonl"),
    ):
        status, doc = ingest.post("/v1/events", body, ctype=ctype)
        assert status == 202 and doc["accepted"] == 1 and [r["index"] for r in doc["rejected"]] == [1], doc
        assert doc["rejected"][0]["reason"].startswith("not JSON: number"), doc
    assert "Traceback" not in ingest.log.read_text()


def test_the_access_log_shows_a_path_as_sent_escaped_and_cut(ingest):
    """A path's percent-escapes are never decoded into the log (%0a would start a forged line, %1b
    an ANSI escape), a backslash is written escaped, a long path is cut; a request line aiohttp
    cannot parse (a raw control byte) is one line, never a traceback."""
    import socket

    def raw_request(target: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", ingest.port), timeout=30) as s:
            s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            return got

    mark = f"m{time.monotonic_ns()}"
    forged = f"/{mark}-a%0a127.0.0.1%20gateway%20POST%20/v1/events%20202%200.001s%1b[31m"
    assert raw_request(forged.encode()).startswith(b"HTTP/1.1 401")
    assert raw_request(f"/{mark}-b\\x0a".encode() + b"x" * 5000).startswith(b"HTTP/1.1 401")
    assert raw_request(f"/{mark}-c".encode() + b"\x1b[2J").startswith(b"HTTP/1.0 400")
    deadline = time.monotonic() + 10
    while len(lines := [line for line in ingest.log.read_bytes().splitlines() if mark.encode() in line]) < 2:
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
    text = ingest.log.read_bytes()
    assert b"\x1b" not in text and b"Traceback" not in text
    assert not any(line.startswith(b"127.0.0.1 gateway") for line in text.splitlines())
    (a,) = [line for line in lines if f"{mark}-a".encode() in line]
    assert a.endswith(f" - GET {forged} 401 ".encode() + a.rsplit(b" ", 1)[1])
    (b,) = [line for line in lines if f"{mark}-b".encode() in line]
    assert f"/{mark}-b\\\\x0a".encode() in b and b"...(5" in b and len(b) < 400, b  # the backslash escaped
    assert b"400 InvalidURLError: Invalid char in url path" in text


def test_a_slow_body_is_a_408_and_slow_headers_close_the_connection(stack, tmp_path):
    """MS_INGEST_BODY_TIMEOUT_S bounds how long a body may take (408, the connection closed);
    MS_INGEST_HEADER_TIMEOUT_S how long a request's headers may (the connection is closed)."""
    import socket

    server = Ingest(stack.env, tmp_path, MS_INGEST_BODY_TIMEOUT_S="2", MS_INGEST_HEADER_TIMEOUT_S="3")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(
                b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jsonl\r\n"
                b"Authorization: Bearer " + server.token.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
            )
            started = time.monotonic()
            got = s.recv(65536)
            took = time.monotonic() - started  # then aiohttp waits up to 10 s for the rest, and closes
            while chunk := s.recv(65536):
                got += chunk
        assert got.startswith(b"HTTP/1.1 408") and b"MS_INGEST_BODY_TIMEOUT_S" in got, got
        assert b"Connection: close" in got and 1.5 < took < 8, took
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            started = time.monotonic()
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            closed = None
            for _ in range(40):  # a header byte every half second: never a whole request
                try:
                    s.sendall(b"X")
                    s.settimeout(0.5)
                    if s.recv(1) == b"":
                        closed = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = time.monotonic() - started
                    break
        assert closed is not None and 2.5 < closed < 10, closed
        event = next(line for _, line in generate(1, seed=68, now=NOW))
        assert server.post("/v1/events", event) == (202, {"accepted": 1, "rejected": []})
    finally:
        server.stop()
