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

EVENT = b'{"event_id":"e1","ts":"2024-11-01T12:00:00Z","tenant_id":"acme","user_id":"alice","provider":"openai",' \
        b'"model":"gpt-4o","usage":{"input_tokens":10,"output_tokens":5}}'


# ---------------------------------------------------------------------------- tokens

def test_add_stores_only_the_hash_in_a_private_file_and_load_names_the_producer(tmp_path):
    path = tmp_path / "sub" / "tokens"
    first, second, again = tokens.add(path, "gateway"), tokens.add(path, "batch.jobs-2"), tokens.add(path, "gateway")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first, second, again}) == 3 and all(len(t) >= 43 for t in (first, second, again))
    text = path.read_text()
    assert text == "".join(f"{name} {hashlib.sha256(t.encode()).hexdigest()}\n"
                           for name, t in (("gateway", first), ("batch.jobs-2", second), ("gateway", again)))
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


@pytest.mark.parametrize("text, message", [
    ("gateway abc\n", "line 1: expected NAME SHA256HEX"),
    ("# producers\n\ngateway " + "A" * 64 + "\n", "line 3"),           # hex is lowercase
    ("gate way " + "a" * 64 + "\n", "line 1"),
    ("-bad " + "a" * 64 + "\n", "line 1"),                            # a name starts with a letter or digit
    ("# only a comment\n\n", "no tokens in"),
])
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
    run = CliRunner().invoke(main, ["ingest", "token", "add", "gateway", "--tokens-file", str(path)],
                             env={"MS_DATA_DIR": str(tmp_path / "data")})
    assert run.exit_code == 0, run.output
    token = run.stdout.strip()
    assert run.stdout == token + "\n" and token not in run.stderr and str(path) in run.stderr
    assert path.read_text() == f"gateway {hashlib.sha256(token.encode()).hexdigest()}\n"
    assert token not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    default = CliRunner().invoke(main, ["ingest", "token", "add", "jobs"], env={"MS_DATA_DIR": str(tmp_path / "data")})
    assert default.exit_code == 0 and (tmp_path / "data" / "ingest-tokens").read_text().startswith("jobs ")
    env_file = CliRunner().invoke(main, ["ingest", "token", "add", "jobs"],
                                  env={"MS_INGEST_TOKENS_FILE": str(tmp_path / "env-tokens")})
    assert env_file.exit_code == 0 and (tmp_path / "env-tokens").exists()


def test_the_server_refuses_to_start_on_a_file_others_can_read(tmp_path):
    path = tmp_path / "tokens"
    tokens.add(path, "gateway")
    os.chmod(path, 0o604)
    run = CliRunner().invoke(main, ["ingest", "--tokens-file", str(path)], env={"MS_DATA_DIR": str(tmp_path)})
    assert run.exit_code == 1 and "chmod 600" in run.output and "Traceback" not in run.output
    run = CliRunner().invoke(main, ["ingest", "--tokens-file", str(tmp_path / "none")], env={"MS_DATA_DIR": str(tmp_path)})
    assert run.exit_code == 1 and "token add NAME" in run.output


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


@pytest.mark.parametrize("raw, message", [
    (b"", "nothing"), (b" \r\n", "nothing"), (b"[]", "nothing"), (b"[ ]", "nothing"),
    (b"[" + EVENT + b", {not json}]", "element 1 of the array is not JSON"),
    (b"[" + EVENT, "not closed after element 0"),
    (b"[" + EVENT + b",]", "element 1"),
    (b"[" + EVENT + b"] []", "goes on after"),
    (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", "nested too deeply"),
])
def test_a_body_that_cannot_be_framed_is_refused(raw, message):
    with pytest.raises(body.BadBody, match=message):
        body.items(raw, "application/json")


def test_json_lines_with_no_line_is_refused():
    with pytest.raises(body.BadBody, match="nothing"):
        body.items(b"\n \r\n", "application/jsonl")


# ---------------------------------------------------------------------------- ids

def test_ids_come_from_query_parameters_and_headers_named_as_produces_options():
    query = MultiDict([("tenant", "acme"), ("user", "alice"), ("label", "app=search"), ("label", "env=a=b")])
    headers = CIMultiDict([("meterstream-model", "gpt-4o"), ("Meterstream-Event-Id", "req-1"),
                           ("Meterstream-Ts", "2026-12-01T12:00:00Z"), ("Meterstream-Region", "us-east-1"),
                           ("Meterstream-Label", "team=x"), ("Meterstream-Tenant", "acme")])  # the same value: fine
    assert ids.request_ids(query, headers) == Ids(
        tenant_id="acme", user_id="alice", event_id="req-1", ts="2026-12-01T12:00:00Z", model="gpt-4o",
        region="us-east-1", labels={"app": "search", "env": "a=b", "team": "x"})
    assert ids.given(MultiDict(), headers) and not ids.given(MultiDict(), CIMultiDict([("X-Other", "1")]))


@pytest.mark.parametrize("query, headers, message", [
    ([("tenant_id", "acme")], [], "unknown query parameter 'tenant_id'"),
    ([("tenant", "acme"), ("tenant", "globex")], [], "tenant is given more than once"),
    ([("user", "a")], [("Meterstream-User", "b")], "user is given more than once"),
    ([("label", "app")], [], "give KEY=VALUE"),
    ([("label", "=x")], [], "give KEY=VALUE"),
    ([("label", "a=1")], [("Meterstream-Label", "a=2")], "label 'a' is given more than once"),
])
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
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1764590400, "model": "gpt-4o",
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 40}}}
    intake = Intake("meterstream ingest POST /v1/usage/openai by gateway")
    intake.payload(0, "openai", orjson.dumps(chat), Ids(tenant_id="acme", user_id="alice"))
    intake.payload(1, "openai", orjson.dumps(chat), Ids(tenant_id="acme"))                    # no user
    intake.payload(2, "openai", orjson.dumps(chat), Ids(tenant_id="acme", user_id="bad user"))  # converts, not valid
    (event,) = intake.events
    assert orjson.loads(event)["usage"] == {"input_tokens": 60, "cached_input_tokens": 40, "output_tokens": 20}
    assert [r["index"] for r in intake.rejected] == [1, 2]
    assert intake.rejected[0]["reason"] == "not converted (openai): the payload does not carry user_id: give them as options"
    assert "user_id" in intake.rejected[1]["reason"] and not intake.rejected[1]["reason"].startswith("not converted")
    assert intake.refusals[0][1].endswith("index 1: " + intake.rejected[0]["reason"])
