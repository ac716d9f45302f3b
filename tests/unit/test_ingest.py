"""The HTTP ingest's parts without a server: the tokens file (only hashes, private, strict) and
`meterstream ingest token add` (the token printed once, its hash stored, mode 0600); framing
bodies byte for byte; the ids a payload lacks; and judging, with the stream's validator, every
input of the bad and hostile corpora as the stream does (dead letters without prompt text)."""

from __future__ import annotations

import hashlib
import os
import stat

import orjson
import pytest
from click.testing import CliRunner
from multidict import CIMultiDict, MultiDict

from adapters import Ids
from schemas.redact import REMOVED
from streams.cli.main import main
from streams.ingest import body, ids, tokens
from streams.ingest.intake import Intake
from tests.corpus import BAD, HOSTILE, PROMPT_MARKER, load, raw_bytes

EVENT = (
    b'{"event_id":"e1","ts":"2024-11-01T12:00:00Z","tenant_id":"acme","user_id":"alice","provider":"openai",'
    b'"model":"gpt-4o","usage":{"input_tokens":10,"output_tokens":5}}'
)


# ---------------------------------------------------------------------------- tokens


def test_add_stores_only_the_hash_in_a_private_file_and_load_names_the_producer(tmp_path):
    path = tmp_path / "sub" / "tokens"
    first, second, again = tokens.add(path, "gateway"), tokens.add(path, "batch.jobs-2"), tokens.add(path, "gateway")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first, second, again}) == 3 and all(len(t) >= 43 for t in (first, second, again))
    text = path.read_text()
    assert text == "".join(
        f"{name} {hashlib.sha256(t.encode()).hexdigest()}\n"
        for name, t in (("gateway", first), ("batch.jobs-2", second), ("gateway", again))
    )
    accepted = tokens.load(path)
    assert [accepted.producer(t).name for t in (first, second, again)] == ["gateway", "batch.jobs-2", "gateway"]
    assert accepted.producer(first).tenants is None  # any tenant
    assert accepted.producer(first[:-1]) is None and accepted.producer("") is None
    assert accepted.producer(hashlib.sha256(first.encode()).hexdigest()) is None  # the hash is no token


def test_a_tokens_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "tokens"
    tokens.add(path, "gateway")
    path.chmod(0o640)
    with pytest.raises(tokens.TokenFileError, match="chmod 600"):
        tokens.load(path)
    with pytest.raises(tokens.TokenFileError, match="chmod 600"):
        tokens.add(path, "another")
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("gateway abc\n", "line 1: expected NAME SHA256HEX"),
        ("# producers\n\ngateway " + "A" * 64 + "\n", "line 3"),  # hex is lowercase
        ("gate way " + "a" * 64 + "\n", "line 1"),
        ("-bad " + "a" * 64 + "\n", "line 1"),  # a name starts with a letter or digit
        ("# only a comment\n\n", "no tokens in"),
    ],
)
def test_a_malformed_tokens_file_is_refused_without_echoing_it(tmp_path, text, message):
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(tokens.TokenFileError, match=message) as err:
        tokens.load(path)
    assert "abc" not in str(err.value) and "AAAA" not in str(err.value)


def test_comments_blank_lines_and_an_unterminated_last_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# the gateway\n\ngateway " + "a" * 64)  # edited by hand: no final newline
    path.chmod(0o600)
    token = tokens.add(path, "jobs")
    lines = path.read_text().splitlines()
    assert lines[2] == "gateway " + "a" * 64 and lines[3].startswith("jobs ")
    assert tokens.load(path).producer(token).name == "jobs"


def test_a_token_limited_to_tenants(tmp_path):
    path = tmp_path / "tokens"
    token = tokens.add(path, "acme-gw", ["globex", "acme", "acme"])
    assert path.read_text().endswith(" tenants=acme,globex\n")
    producer = tokens.load(path).producer(token)
    assert producer == tokens.Producer("acme-gw", frozenset({"acme", "globex"}))
    assert producer.may_write("acme") and not producer.may_write("initech") and not producer.may_write(None)
    for bad in ([], ["a,b"], ["has space"]):
        with pytest.raises(tokens.TokenFileError, match="tenant"):
            tokens.add(path, "x", bad)
    path.write_text(path.read_text() + "y " + "b" * 64 + " tenants=a,,b\n")
    with pytest.raises(tokens.TokenFileError, match="line 2: tenants="):
        tokens.load(path)


def test_a_running_server_reads_the_file_again_when_it_changes(tmp_path, monkeypatch):
    """tokens.TokensFile: a token added is taken, a line deleted is no longer; a file made
    unusable accepts no token (not the last good one) until it is mended."""
    path = tmp_path / "tokens"
    first = tokens.add(path, "gateway")
    live = tokens.TokensFile(path, tokens.load(path))
    monkeypatch.setattr(tokens, "RELOAD_S", 0.0)
    second = tokens.add(path, "jobs")
    assert live.current().producer(second).name == "jobs"
    path.write_text(path.read_text().splitlines()[1] + "\n")  # the gateway's line deleted
    assert live.current().producer(first) is None and live.current().producer(second).name == "jobs"
    path.chmod(0o644)
    assert live.current().producer(second) is None
    path.chmod(0o600)
    assert live.current().producer(second).name == "jobs"


def test_missing_file_and_bad_names(tmp_path):
    with pytest.raises(tokens.TokenFileError, match="token add NAME"):
        tokens.load(tmp_path / "none")
    for name in ("", "a b", "x" * 65, "ünï", "-x", "a\nb"):
        with pytest.raises(tokens.TokenFileError, match="producer name"):
            tokens.add(tmp_path / "t", name)
    assert not (tmp_path / "t").exists()


def test_token_add_prints_the_token_once_and_stores_its_hash(tmp_path):
    path = tmp_path / "tokens"
    run = CliRunner().invoke(
        main,
        ["ingest", "token", "add", "gateway", "--tokens-file", str(path)],
        env={"MS_DATA_DIR": str(tmp_path / "data")},
    )
    assert run.exit_code == 0, run.output
    token = run.stdout.strip()
    assert run.stdout == token + "\n" and token not in run.stderr and str(path) in run.stderr
    assert path.read_text() == f"gateway {hashlib.sha256(token.encode()).hexdigest()}\n"
    assert token not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    default = CliRunner().invoke(main, ["ingest", "token", "add", "jobs"], env={"MS_DATA_DIR": str(tmp_path / "data")})
    assert default.exit_code == 0 and (tmp_path / "data" / "ingest-tokens").read_text().startswith("jobs ")
    env_file = CliRunner().invoke(
        main, ["ingest", "token", "add", "jobs"], env={"MS_INGEST_TOKENS_FILE": str(tmp_path / "env-tokens")}
    )
    assert env_file.exit_code == 0 and (tmp_path / "env-tokens").exists()


def test_the_server_refuses_to_start_on_a_file_others_can_read(tmp_path):
    path = tmp_path / "tokens"
    tokens.add(path, "gateway")
    os.chmod(path, 0o604)
    run = CliRunner().invoke(main, ["ingest", "--tokens-file", str(path)], env={"MS_DATA_DIR": str(tmp_path)})
    assert run.exit_code == 2 and "chmod 600" in run.output and "Traceback" not in run.output
    run = CliRunner().invoke(
        main, ["ingest", "--tokens-file", str(tmp_path / "none")], env={"MS_DATA_DIR": str(tmp_path)}
    )
    assert run.exit_code == 2 and "token add NAME" in run.output


# ---------------------------------------------------------------------------- framing


def test_json_lines_keep_their_line_numbers_without_line_endings():
    raw = EVENT + b"\r\n\r\n  \n" + b"{not json\n" + EVENT
    for ctype in ("application/jsonl", "application/x-ndjson"):
        assert body.items(raw, ctype) == [(0, EVENT), (3, b"{not json"), (4, EVENT)]


def test_an_arrays_elements_are_cut_out_as_they_were_sent():
    odd = [b'{"a": NaN}', b'{"k":1,"k":2}', b'{\n  "pretty": [1, 2]\n}', b'"s\\"]"', b"1e400", b"[]", b'{"u":"\xff"}']
    raw = b" [\n" + b" ,\t".join([EVENT, *odd]) + b"\r\n] \n"
    assert body.items(raw, "application/json") == list(enumerate([EVENT, *odd]))


def test_one_json_value_is_one_item():
    assert body.items(b"\n " + EVENT + b"\n", "application/json") == [(0, EVENT)]
    assert body.items(b"{not json", "application/json") == [(0, b"{not json")]  # the validator says why


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "nothing"),
        (b" \r\n", "nothing"),
        (b"[]", "nothing"),
        (b"[ ]", "nothing"),
        (b"[" + EVENT + b", {not json}]", "element 1 of the array is not JSON"),
        (b"[" + EVENT, "not closed after element 0"),
        (b"[" + EVENT + b",]", "element 1"),
        (b"[" + EVENT + b"] []", "goes on after"),
        (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", "nested too deeply"),
    ],
)
def test_a_body_that_cannot_be_framed_is_refused(raw, message):
    with pytest.raises(body.BadBody, match=message):
        body.items(raw, "application/json")


def test_json_lines_with_no_line_is_refused():
    with pytest.raises(body.BadBody, match="nothing"):
        body.items(b"\n \r\n", "application/jsonl")


# ---------------------------------------------------------------------------- ids


def test_ids_come_from_query_parameters_and_headers_named_as_produces_options():
    query = MultiDict([("tenant", "acme"), ("user", "alice"), ("label", "app=search"), ("label", "env=a=b")])
    headers = CIMultiDict(
        [
            ("meterstream-model", "gpt-4o"),
            ("Meterstream-Event-Id", "req-1"),
            ("Meterstream-Ts", "2026-12-01T12:00:00Z"),
            ("Meterstream-Region", "us-east-1"),
            ("Meterstream-Label", "team=x"),
            ("Meterstream-Tenant", "acme"),
        ]
    )  # the same value: fine
    assert ids.request_ids(query, headers) == Ids(
        tenant_id="acme",
        user_id="alice",
        event_id="req-1",
        ts="2026-12-01T12:00:00Z",
        model="gpt-4o",
        region="us-east-1",
        labels={"app": "search", "env": "a=b", "team": "x"},
    )
    assert ids.given(MultiDict(), headers) and not ids.given(MultiDict(), CIMultiDict([("X-Other", "1")]))


@pytest.mark.parametrize(
    "query, headers, message",
    [
        ([("tenant_id", "acme")], [], "unknown query parameter 'tenant_id'"),
        ([("tenant", "acme"), ("tenant", "globex")], [], "tenant is given more than once"),
        ([("user", "a")], [("Meterstream-User", "b")], "user is given more than once"),
        ([("label", "app")], [], "give KEY=VALUE"),
        ([("label", "=x")], [], "give KEY=VALUE"),
        ([("label", "a=1")], [("Meterstream-Label", "a=2")], "label 'a' is given more than once"),
    ],
)
def test_ids_that_cannot_be_used_as_given_are_refused(query, headers, message):
    with pytest.raises(ids.BadIds, match=message):
        ids.request_ids(MultiDict(query), CIMultiDict(headers))


# ---------------------------------------------------------------------------- judging


@pytest.mark.parametrize("path", [BAD, HOSTILE], ids=["bad", "hostile"])
def test_every_corpus_input_is_judged_as_the_streams_validator_judges_it(path):
    cases = load(path)
    intake = Intake("test")
    for i, case in enumerate(cases):
        intake.event(i, raw_bytes(case))
    refused = {r["index"]: r["reason"] for r in intake.rejected}
    for i, case in enumerate(cases):
        if case["stage"] == "validate":
            assert case["reason_contains"] in refused[i].lower(), (case["kind"], refused[i])
        else:  # valid events the catalog cannot price: the rating workers refuse them
            assert i not in refused, (case["kind"], refused[i])
    assert len(intake.events) == sum(c["stage"] == "price" for c in cases)
    assert len(intake.refusals) == len(intake.rejected)
    for value, reason in intake.refusals:
        assert PROMPT_MARKER.encode() not in value + reason.encode() and len(value) < 64 * 1024


def test_a_producer_limited_to_tenants_may_not_write_for_another():
    """An event, or a refused item, naming another tenant is forbidden (the server answers 403 and
    writes nothing); a refused item naming no tenant is not."""
    scoped = tokens.Producer("acme-gw", frozenset({"acme"}))
    mine, theirs = (orjson.dumps({**orjson.loads(EVENT), "tenant_id": t}) for t in ("acme", "initech"))
    bad_theirs = orjson.dumps({**orjson.loads(theirs), "usage": {"input_tokens": -1}})
    intake = Intake("test", scoped)
    for i, raw in enumerate([mine, theirs, bad_theirs, b'{"usage": 1}', mine]):
        intake.event(i, raw)
    assert intake.forbidden == [1, 2] and intake.events == [mine, mine]
    assert [r["index"] for r in intake.rejected] == [3]
    anyone = Intake("test", tokens.Producer("gw"))
    anyone.event(0, theirs)
    assert anyone.events == [theirs] and not anyone.forbidden


def test_a_refusal_is_the_refused_record_meterstream_produce_writes():
    intake = Intake("meterstream ingest POST /v1/events by gateway")
    bad = orjson.dumps({**orjson.loads(EVENT), "usage": {"input_tokens": -1}, "text": {"input": "secret prompt"}})
    intake.event(0, EVENT)
    intake.event(1, bad)
    assert intake.events == [EVENT]
    (refusal,) = intake.rejected
    assert refusal["index"] == 1 and "input_tokens" in refusal["reason"]
    ((value, reason),) = intake.refusals
    assert reason == f"meterstream ingest POST /v1/events by gateway, index 1: {refusal['reason']}"
    assert orjson.loads(value)["text"] == REMOVED and orjson.loads(value)["event_id"] == "e1"


def test_payloads_are_converted_then_judged():
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764590400,
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 40}},
    }
    intake = Intake("meterstream ingest POST /v1/usage/openai by gateway")
    intake.payload(0, "openai", orjson.dumps(chat), Ids(tenant_id="acme", user_id="alice"))
    intake.payload(1, "openai", orjson.dumps(chat), Ids(tenant_id="acme"))  # no user
    intake.payload(2, "openai", orjson.dumps(chat), Ids(tenant_id="acme", user_id="bad user"))  # converts, not valid
    (event,) = intake.events
    assert orjson.loads(event)["usage"] == {"input_tokens": 60, "cached_input_tokens": 40, "output_tokens": 20}
    assert [r["index"] for r in intake.rejected] == [1, 2]
    assert (
        intake.rejected[0]["reason"]
        == "not converted (openai): the payload does not carry user_id: give them as options"
    )
    assert "user_id" in intake.rejected[1]["reason"] and not intake.rejected[1]["reason"].startswith("not converted")
    assert intake.refusals[0][1].endswith("index 1: " + intake.rejected[0]["reason"])


# ---------------------------------------------------------------------------- hostile producers


def _split_lines(raw: bytes) -> list[tuple[int, bytes]]:
    """JSON Lines framed as they were before the item limit: every line that is not blank."""
    return [(i, line.rstrip(b"\r\n")) for i, line in enumerate(raw.split(b"\n")) if line.strip()]


def test_json_lines_frame_as_every_line_that_is_not_blank():
    import random

    rng = random.Random(5)
    parts = [b"", b" ", b"\t", b"\r", b"\x0b\x0c", b"1", b" {} ", b"x\r", b"\xff", b"a b", b"\x1c"]
    for _ in range(2000):
        raw = b"\n".join(b"".join(rng.choice(parts) for _ in range(rng.randrange(4))) for _ in range(rng.randrange(8)))
        try:
            got = body.items(raw, "application/jsonl")
        except body.BadBody:
            got = []
        assert got == _split_lines(raw), raw


def test_a_body_of_more_than_4096_items_is_refused_once_item_4097_is_found():
    assert body.MAX_ITEMS == 4096
    assert len(body.items(b"1\n" * 4096, "application/jsonl")) == 4096
    assert len(body.items(b"\n \n".join([b"1"] * 4096), "application/jsonl")) == 4096  # blank lines are no items
    assert len(body.items(b"[" + b",".join([b"1"] * 4096) + b"]", "application/json")) == 4096
    for raw, ctype in (
        (b"1\n" * 4097, "application/jsonl"),
        (b"1\n" * 524_288, "application/jsonl"),
        (b"[" + b",".join([b"1"] * 4097) + b"]", "application/json"),
        (b"[" + b",".join([b"1"] * 4097) + b", {not json", "application/json"),
    ):  # found before the end
        with pytest.raises(body.TooMany, match="more than 4096 items"):
            body.items(raw, ctype)
    with pytest.raises(body.TooMany):
        body.items(b"1\n1\n1", "application/jsonl", max_items=2)


def test_a_number_of_thousands_of_digits_frames_and_is_refused_as_its_item():
    big = b"9" * 5000
    raw = b"[" + EVENT + b', {"n": ' + big + b"}, -" + big + b".5e-" + big + b", " + big + b"]"
    framed = body.items(raw, "application/json")
    assert [i for i, _ in framed] == [0, 1, 2, 3] and framed[3] == (3, big)
    intake = Intake("test")
    for index, item in framed:
        intake.event(index, item)
    assert intake.events == [EVENT]
    assert [r["index"] for r in intake.rejected] == [1, 2, 3]
    assert all(r["reason"].startswith("not JSON: ") and "number" in r["reason"] for r in intake.rejected), (
        intake.rejected
    )


def test_a_tenant_named_twice_is_checked_every_time():
    """A repeated tenant_id: the scope check sees every occurrence (and the one the rater reads
    from the stored payload), so a token for acme files nothing under initech."""
    scoped = tokens.Producer("acme-gw", frozenset({"acme"}))
    mine = orjson.dumps({**orjson.loads(EVENT), "tenant_id": "acme"})
    for raw in (
        mine[:-1] + b',"tenant_id":"initech"}',
        b'{"tenant_id":"initech",' + mine[1:],
        b'{"tenant\\u005fid":"initech",' + mine[1:],
        mine[:-1] + b',"tenant_id":"initech","x":NaN}',
    ):
        intake = Intake("test", scoped)
        intake.event(7, raw)
        assert intake.forbidden == [7] and not intake.rejected and not intake.refusals, raw
    intake = Intake("test", scoped)
    intake.event(0, mine[:-1] + b',"tenant_id":"acme"}')  # its own tenant twice: a bad event, not forbidden
    assert not intake.forbidden and "tenant_id: duplicate key" in intake.rejected[0]["reason"]
    chat = b'{"tenant_id":"acme","id":"c1","object":"chat.completion","tenant_id":"initech"}'
    intake = Intake("test", scoped)
    intake.payload(3, "openai", chat, Ids(tenant_id="acme", user_id="alice"))  # a payload refused: the same
    assert intake.forbidden == [3] and not intake.refusals
    anyone = Intake("test", tokens.Producer("gw"))
    anyone.event(0, mine[:-1] + b',"tenant_id":"initech"}')
    assert not anyone.forbidden and len(anyone.refusals) == 1


def test_limits_keep_every_record_within_the_brokers_limit():
    """The Kafka record an event or a batch would make, by kafka-python's own record builder:
    never over record_max (the broker's limit less a margin); an event whose record would be is
    the item's reason."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from schemas.batch import BATCH_HEADER, MAX_BATCH_BYTES
    from streams.ingest.writer import PRODUCER_HEADER, RECORD_MARGIN, Limits, record_size

    def built(key, value, headers) -> int:
        b = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=False,
            producer_id=1,
            producer_epoch=0,
            base_sequence=0,
            batch_size=1 << 24,
        )
        b.append(0, timestamp=None, key=key, value=value, headers=headers)
        return len(b.build())

    for limit in (1_048_588, 20_000, 2_000):
        limits = Limits(limit, "test")
        assert limits.record_max == limit - RECORD_MARGIN and limits.batch_bytes <= MAX_BATCH_BYTES
        name = "n" * 64
        batch = b"\n".join([EVENT] * (limits.batch_bytes // (len(EVENT) + 1)))
        batch += b"x" * (limits.batch_bytes - len(batch))
        headers = [BATCH_HEADER, (PRODUCER_HEADER, name.encode())]
        assert built(None, batch, headers) <= record_size(None, batch, headers) <= limits.record_max
        fits = b"{" + b" " * (limit - 250) + EVENT[1:]
        while limits.too_large(fits, name) is not None:
            fits = fits[:1] + fits[2:]
        over = fits[:1] + b" " + fits[1:]
        single = [(PRODUCER_HEADER, name.encode())]
        assert built(b"acme/alice", fits, single) <= limits.record_max < built(b"acme/alice", over, single) + 21
        assert limits.too_large(over, name) == (
            f"event is {len(over)} bytes: its Kafka record ({record_size(b'acme/alice', over, single)} bytes) is over "
            f"the {limit}-byte limit of the events topic (test)"
        )
    assert Limits(1_048_588, "t").batch_bytes == MAX_BATCH_BYTES  # the contract's budget fits Kafka's default


def test_an_event_too_large_for_a_record_is_refused_as_its_item_in_index_order():
    from streams.ingest.writer import Limits

    limits = Limits(20_000, "max.message.bytes of topic t")
    small = EVENT
    big = orjson.dumps({**orjson.loads(EVENT), "text": {"input": "x" * 30_000}})
    intake = Intake("meterstream ingest POST /v1/events by gw")
    for i, raw in enumerate([small, b'{"usage": 1}', big, small, b"[]"]):
        intake.event(i, raw)
    assert len(intake.events) == 3
    intake.fit(lambda e: limits.too_large(e, "gw"), lambda v, r: limits.refusal_fits(v, r, "gw"))
    assert intake.events == [small, small]
    assert [r["index"] for r in intake.rejected] == [1, 2, 4]
    assert intake.rejected[1]["reason"].startswith(f"event is {len(big)} bytes: its Kafka record (")
    assert intake.rejected[1]["reason"].endswith(
        "over the 20000-byte limit of the events topic (max.message.bytes of topic t)"
    )
    assert [r.split(", index ")[1].split(":")[0] for _, r in intake.refusals] == ["1", "2", "4"]
    assert orjson.loads(intake.refusals[1][0])["text"] == REMOVED  # the stored payload: no text, small
    tiny = Limits(150, "t")  # a refused record that would not fit either is reported only
    intake.fit(lambda e: tiny.too_large(e, "gw"), lambda v, r: tiny.refusal_fits(v, r, "gw"))
    assert not intake.events and [r["index"] for r in intake.rejected] == [0, 1, 2, 3, 4] and not intake.refusals


def test_an_answer_lists_at_most_100_refusals():
    from streams.ingest.server import MAX_LISTED, listed

    assert MAX_LISTED == 100
    few = {"accepted": 1, "rejected": [{"index": i, "reason": "r"} for i in range(100)]}
    assert listed(few, "rejected") is few
    many = {"accepted": 0, "rejected": [{"index": i, "reason": "r"} for i in range(4096)]}
    assert listed(many, "rejected") == {
        "accepted": 0,
        "rejected": many["rejected"][:100],
        "rejected_count": 4096,
        "rejected_truncated": True,
    }


class _Raw:
    def __init__(self, raw_path: str) -> None:
        self.raw_path = raw_path


def test_the_log_shows_a_path_as_sent_escaped_and_cut():
    from streams.ingest.server import shown

    assert shown(_Raw("/v1/events?x=%0a%1b")) == "/v1/events?x=%0a%1b"  # never decoded
    assert shown(_Raw("/a\nb\x1b[31m\\x\u202e\xe9\udcff")) == "/a\\nb\\x1b[31m\\\\x\\u202e\\xe9\\udcff"
    long = shown(_Raw("/" + "y" * 10_000))
    assert long == "/" + "y" * 199 + "...(10001 characters)"
    assert all(c.isprintable() and c.isascii() for c in shown(_Raw("".join(map(chr, range(0, 0x3000))))))


def test_a_request_aiohttp_cannot_parse_is_one_log_line():
    import logging

    from aiohttp.http_exceptions import InvalidURLError

    from streams.ingest.server import OneLine

    try:
        raise InvalidURLError("Invalid char in url path:\n\n    b'GET /\\x1b HTTP/1.1'\n      ^")
    except InvalidURLError:
        import sys

        record = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            sys.exc_info(),
        )
    assert OneLine().filter(record)
    assert (
        logging.Formatter().format(record)
        == "Error handling request from 127.0.0.1: 400 InvalidURLError: Invalid char in url path:"
    )


def test_the_ingests_timeouts_are_settings(monkeypatch):
    from streams.settings import Settings

    assert (Settings().ingest_body_timeout_s, Settings().ingest_header_timeout_s) == (30.0, 15.0)
    monkeypatch.setenv("MS_INGEST_BODY_TIMEOUT_S", "2.5")
    monkeypatch.setenv("MS_INGEST_HEADER_TIMEOUT_S", "4")
    assert (Settings().ingest_body_timeout_s, Settings().ingest_header_timeout_s) == (2.5, 4.0)


def test_token_list_shows_names_and_hash_prefixes_and_revoke_removes_them(tmp_path):
    path = tmp_path / "tokens"
    env = {"MS_DATA_DIR": str(tmp_path / "data")}

    def cli(*args: str):
        return CliRunner().invoke(main, ["ingest", "token", *args, "--tokens-file", str(path)], env=env)

    gateway = [cli("add", "gateway").stdout.strip() for _ in range(2)]
    acme = cli("add", "batchjob", "--tenant", "acme").stdout.strip()
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in (*gateway, acme)]
    assert listed.stdout.splitlines() == [
        f"gateway\tany tenant\t{hashes[0][:8]}",
        f"gateway\tany tenant\t{hashes[1][:8]}",
        f"batchjob\tacme\t{hashes[2][:8]}",
    ]
    assert not any(t in listed.output for t in (*gateway, acme))  # never a token
    one = cli("revoke", "gateway", "--hash", hashes[0][:8])
    assert one.exit_code == 0 and "revoked 1 token of gateway" in one.stderr
    accepted = tokens.load(path)
    assert accepted.producer(gateway[0]) is None and accepted.producer(gateway[1]).name == "gateway"
    assert cli("revoke", "batchjob").exit_code == 0
    assert [e.name for e in tokens.entries(path)] == ["gateway"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    missing = cli("revoke", "nobody")
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "no token of nobody" in missing.output


def test_a_wrong_token_and_a_missing_one_are_told_apart_without_naming_any():
    from streams.http_guard import Bearer

    bearer = Bearer(realm="r", required="a token is required", check=lambda t: None, invalid="not a token of ours")
    assert bearer.refusal("") == "a token is required"
    assert bearer.refusal("Bearer xyz") == "not a token of ours"
    plain = Bearer(realm="r", required="a token is required", check=lambda t: None)
    assert plain.refusal("Bearer xyz") == "a token is required"
