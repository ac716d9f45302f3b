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
        "Kafka at 127.0.0.1:1: KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:1; start it with `meterstream up`"
    )
    external = Settings(data_dir="/tmp/ms-unused", kafka_bootstrap="kafka1:9092")
    assert said(away, external).endswith("; check MS_KAFKA_BOOTSTRAP and that it runs")


def test_a_busy_port_names_the_setting_that_moves_it(tmp_path):
    import socket

    from streams.ingest import tokens

    tokens.add(tmp_path / "tokens", "gateway")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run(tmp_path, "ingest", "--port", str(port), "--tokens-file", str(tmp_path / "tokens"))
    assert result.exit_code == 1
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
    assert result.exit_code == 1
    assert (
        one_line(result)
        == f"Error: 127.0.0.1:{port} is in use: stop what listens there, or move this with --web-port or MS_WEB_PORT"
    )
