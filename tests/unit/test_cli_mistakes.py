"""A newcomer's mistakes with `produce` and `price` end in one line that says what to do, before
anything is sent: a file that is not there, and options that do not go together."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.cli.main import main


def run(tmp_path, *args: str):
    (tmp_path / "events.jsonl").write_text('{"event_id": "e"}\n')
    env = {"MS_DATA_DIR": str(tmp_path / "data"), "MS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # nothing may reach Kafka
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and "Traceback" not in result.output
    return lines[-1]


@pytest.mark.parametrize("command", ["produce", "price"])
def test_a_missing_file_is_one_line(tmp_path, command):
    result = run(tmp_path, command, str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert one_line(result) == f"Error: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"


@pytest.mark.parametrize(
    "args, says",
    [
        (["produce", "EVENTS", "--generate", "5"], "give a FILE (or - for stdin) or --generate N, not both"),
        (
            ["produce", "EVENTS", "--duplicates", "0.1"],
            "--duplicates shape generated traffic: give them with --generate N",
        ),
        (["produce", "EVENTS", "--bad", "3", "--seed", "9"], "--bad, --seed shape generated traffic"),
        (["produce", "EVENTS", "--tenant", "acme"], "--tenant fill what a provider's payload lacks"),
        (["price", "EVENTS", "--user", "u", "--label", "a=b"], "--user, --label fill what a provider's payload lacks"),
    ],
)
def test_options_that_do_not_go_together_are_refused(tmp_path, args, says):
    result = run(tmp_path, *[str(tmp_path / "events.jsonl") if a == "EVENTS" else a for a in args])
    assert result.exit_code == 2, result.output
    assert says in one_line(result)


def test_the_same_options_where_they_belong_still_work(tmp_path):
    # --tenant with --format: converted (a payload without usage is refused as its line, exit 1)
    result = run(
        tmp_path, "price", str(tmp_path / "events.jsonl"), "--format", "openai", "--tenant", "acme", "--user", "u"
    )
    assert result.exit_code == 1 and "not converted" in result.output and "Traceback" not in result.output


def test_kafka_away_says_what_to_do():
    from kafka.errors import KafkaTimeoutError

    from streams.cli.main import said
    from streams.settings import Settings

    away = KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")
    local = Settings(data_dir="/tmp/ms-unused", kafka_port=1)
    assert said(away, local) == (
        "Kafka at 127.0.0.1:1 cannot be reached; start it with `meterstream up` or set MS_KAFKA_BOOTSTRAP"
    )
    external = Settings(data_dir="/tmp/ms-unused", kafka_bootstrap="kafka1:9092")
    assert said(away, external).startswith("Kafka at kafka1:9092 cannot be reached;")


def test_a_busy_port_names_the_setting_that_moves_it(tmp_path):
    import socket

    from streams.ingest import tokens

    tokens.add(tmp_path / "tokens", "gateway")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run(tmp_path, "ingest", "--port", str(port), "--tokens-file", str(tmp_path / "tokens"))
    assert result.exit_code == 3
    assert one_line(result) == (
        f"Error: 127.0.0.1:{port} is in use: stop what listens there, or give the ingest another port "
        "(--port or MS_INGEST_PORT)"
    )


def test_a_worker_on_a_busy_web_port_says_so_before_starting(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run(tmp_path, "worker", "--web-port", str(port))
    assert result.exit_code == 3
    assert (
        one_line(result)
        == f"Error: 127.0.0.1:{port} is in use: stop what listens there, or move this with --web-port or MS_WEB_PORT"
    )


# -- what `meterstream produce` says of the events the rater will dead-letter ----------------------

EVENT = {
    "event_id": "e-1",
    "ts": "2025-03-01T12:00:00Z",
    "tenant_id": "acme",
    "user_id": "alice",
    "provider": "openai",
    "model": "gpt-4o",
    "usage": {"input_tokens": 100, "output_tokens": 20},
}


def event(**changes) -> bytes:
    import orjson

    return orjson.dumps({**EVENT, **changes})


@pytest.fixture(scope="module")
def catalog():
    from pricing import load_catalog

    return load_catalog()


def reason_of(line: bytes, catalog) -> str:
    from pricing.rating import Rejection, rate

    result = rate(line, catalog)
    assert isinstance(result, Rejection), result
    return result.reason


def test_a_misspelled_model_gets_the_closest_one(catalog):
    assert reason_of(event(model="gpt-4o-mni"), catalog) == (
        "unknown model 'gpt-4o-mni' for provider 'openai'; did you mean 'gpt-4o-mini'?"
    )
    assert reason_of(event(model="gpt4o"), catalog).endswith("; did you mean 'gpt-4o'?")
    bedrock = event(provider="bedrock", model="anthropic.claude-3-haiku-20240307-v1:1", region="us-east-1")
    assert reason_of(bedrock, catalog).endswith("; did you mean 'anthropic.claude-3-haiku-20240307-v1:0'?")
    # nothing close: no guess; a model that is not id-like is quoted hidden, as before
    assert reason_of(event(model="zzzz"), catalog) == "unknown model 'zzzz' for provider 'openai'"
    hidden = reason_of(event(model="gpt-4o-mini!"), catalog)
    assert hidden.startswith("unknown model <string: 12 chars, sha256:") and "gpt-4o-mini!" not in hidden
    assert hidden.endswith("; did you mean 'gpt-4o-mini'?")


OPENAI_HINT = "use input_tokens/output_tokens, or --format openai for OpenAI responses"


@pytest.mark.parametrize(
    "changes, fields",
    [
        ({"usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}, "usage.prompt_tokens, "),
        ({"usage": {"input_tokens": 100, "total_tokens": 100}}, "usage.total_tokens: "),
        ({"prompt_tokens": 100}, "prompt_tokens: "),
    ],
)
def test_openai_usage_fields_say_what_to_use(catalog, changes, fields):
    reason = reason_of(event(**changes), catalog)
    assert reason.startswith(fields) and reason.endswith(
        f": Extra inputs are not permitted (OpenAI's usage fields: {OPENAI_HINT})"
    )


def test_other_unknown_fields_keep_their_reason(catalog):
    reason = reason_of(event(usage={"input_tokens": 1, "prompt_tokens": 1, "tokens": 2}, cost=1), catalog)
    assert reason.startswith(
        f"usage.prompt_tokens: Extra inputs are not permitted (OpenAI's usage fields: {OPENAI_HINT}); "
    )
    assert "usage.tokens: Extra inputs are not permitted" in reason and "cost: Extra inputs are not permitted" in reason


def test_the_check_passes_every_line_and_counts_what_will_be_dead_lettered(catalog):
    from streams.cli.formats import DeadLetterCheck

    lines = [
        event() + b"\n",
        b"\n",  # blank: not sent, but a line of the file
        event(event_id="e-2", model="gpt-4o-mni") + b"\r\n",
        b"{not json\n",
        event(event_id="e-3", model="gpt-4o-mni") + b"\n",
        event(event_id="e-4", usage={"prompt_tokens": 5}) + b"\n",
    ]
    check = DeadLetterCheck(catalog)
    assert list(check.passing(lines)) == lines  # sent as they are, bad ones too
    assert (check.checked, check.rejected) == (5, 4)
    said = check.summary()
    assert said[0].startswith("4 of 5 lines will be dead-lettered")
    assert said[1] == (
        "  2 x unknown model 'gpt-4o-mni' for provider 'openai'; did you mean 'gpt-4o-mini'? (first: line 3)"
    )
    assert said[2].startswith("  1 x not JSON: ") and said[2].endswith("(first: line 4)")
    assert said[3].startswith("  1 x usage.prompt_tokens: ") and said[3].endswith("(first: line 6)")
    assert len(said) == 4


def test_the_check_says_nothing_when_all_will_be_priced(catalog):
    from streams.cli.formats import DeadLetterCheck

    check = DeadLetterCheck(catalog, "event")
    assert list(check.passing([event(), event(event_id="e-2")])) == [event(), event(event_id="e-2")]
    assert (check.checked, check.rejected, check.summary()) == (2, 0, [])


def test_the_check_shows_ten_reasons_and_keeps_a_bounded_count(catalog):
    from streams.cli.formats import DeadLetterCheck

    check = DeadLetterCheck(catalog, "event", keep=15)
    lines = [event(event_id=f"e-{i}", model=f"no-such-model-{i}") for i in range(20)]
    lines += [event(event_id="e-x", model="no-such-model-0")]  # the most frequent reason comes first
    assert list(check.passing(lines)) == lines
    said = check.summary()
    assert said[0].startswith("21 of 21 events will be dead-lettered")
    assert said[1] == "  2 x unknown model 'no-such-model-0' for provider 'openai' (first: event 1)"
    assert len(said) == 1 + 10 + 1
    assert said[-1] == "  10 more, for more than 5 other reasons"  # 15 reasons kept, 5 not told apart


def test_produce_loads_the_catalog_before_sending_anything(tmp_path):
    (tmp_path / "empty-catalog").mkdir()
    (tmp_path / "events.jsonl").write_bytes(event() + b"\n")
    env = {
        "MS_DATA_DIR": str(tmp_path / "data"),
        "MS_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # nothing may reach Kafka
        "MS_CATALOG_DIR": str(tmp_path / "empty-catalog"),
    }
    result = CliRunner().invoke(main, ["produce", str(tmp_path / "events.jsonl")], env=env, catch_exceptions=False)
    assert result.exit_code == 2  # a setting (MS_CATALOG_DIR) is wrong
    assert one_line(result).startswith("Error: catalog: no *.yaml catalog files in ")
    assert one_line(result).endswith("(or give --no-check)")
