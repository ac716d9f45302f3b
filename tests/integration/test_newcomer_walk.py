"""The scripted newcomer walk: the real `meterstream` command, run as a newcomer runs it, through
each mistake a newcomer makes. Each ends in one line that says what went wrong and what to do
("Error: …", or the stated warning), never a traceback (unless --debug / MS_DEBUG=1 asks for
it), with its documented exit code (streams/cli/main.py: 1 input rejected, 2 usage or
configuration, 3 a dependency unavailable), and well within the old 30 s: a Kafka that cannot be
reached is said within the bootstrap timeout (streams/kafka_security.py, 5 s)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.harness.stack import free_port
from streams.settings import REPO_ROOT
from tests.kafka_records import events_of, read_topic
from tests.unit.test_cli_mistakes import event

pytestmark = pytest.mark.integration

# The console script a newcomer types (installed with the project), else the same entry point.
_SCRIPT = Path(sys.executable).parent / "meterstream"
METERSTREAM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "streams.cli"]

STEP_TIMEOUT_S = 60  # a step that hangs fails here, not at pytest's 600 s
WITHIN_S = 15  # well under the old 30 s (kafka-python's bootstrap wait): Kafka away is said in ~5 s

EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3

KAFKA_AWAY = "cannot be reached; start it with `meterstream up` or set MS_KAFKA_BOOTSTRAP"


@dataclass
class Step:
    """One command of the walk, as it ended."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]

    @property
    def seen(self) -> str:
        """What the newcomer saw (an assertion's message)."""
        return f"meterstream {' '.join(self.args)} -> exit {self.code} in {self.elapsed:.1f} s:\n{self.output}"


def newcomer_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a newcomer's shell: none of this machine's MS_* settings (MS_DEBUG, a
    bootstrap), the data directory given, Kafka where nothing listens unless `settings` says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
    env.update(MS_DATA_DIR=str(data_dir), MS_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")  # bound, closed: refused
    env.update(settings)
    return env


def run(env: dict[str, str], *args: str) -> Step:
    started = time.monotonic()
    done = subprocess.run(
        [*METERSTREAM, *args],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    return Step(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def error_line(step: Step, code: int, *, usage: bool = False) -> str:
    """The one "Error: " line `step` ended with, once it is checked: no traceback, exit `code`,
    in time, and nothing else said (but click's "Usage: …" / "Try …" lines before a usage error)."""
    assert "Traceback" not in step.output, step.seen
    assert step.code == code, step.seen
    assert step.elapsed < WITHIN_S, step.seen
    errors = [line for line in step.lines if line.startswith("Error: ")]
    assert len(errors) == 1, step.seen
    others = [line for line in step.lines if not line.startswith("Error: ")]
    if usage:
        assert [line.split(" ", 1)[0] for line in others] == ["Usage:", "Try"], step.seen
    else:
        assert others == [], step.seen
    return errors[0]


# -- 1-4: Kafka is not running yet (no `meterstream up`) ------------------------------------------

KAFKA_STEPS = {
    "worker": ("worker",),
    "produce --generate": ("produce", "--generate", "10"),
    "budgets list": ("budgets", "list"),
    "catalog status": ("catalog", "status"),
}


@pytest.fixture(scope="module")
def kafka_away(tmp_path_factory) -> tuple[str, dict[str, Step]]:
    """Where Kafka is not, and the four steps that need it, run there: side by side, each timed
    on its own (each waits out the bootstrap timeout; one after the other they would take most of
    the walk's time)."""
    # the worker's web port: a free one, so that Kafka is what it finds missing (6066 may be taken)
    env = newcomer_env(tmp_path_factory.mktemp("kafka-away"), MS_WEB_PORT=str(free_port()))
    with ThreadPoolExecutor(len(KAFKA_STEPS)) as pool:
        steps = {name: pool.submit(run, env, *args) for name, args in KAFKA_STEPS.items()}
        return env["MS_KAFKA_BOOTSTRAP"], {name: f.result() for name, f in steps.items()}


@pytest.mark.parametrize("name", list(KAFKA_STEPS))
def test_kafka_not_running_is_said_in_one_line_within_seconds(kafka_away, name):
    bootstrap, steps = kafka_away
    step = steps[name]
    assert error_line(step, EXIT_UNAVAILABLE) == f"Error: Kafka at {bootstrap} {KAFKA_AWAY}", step.seen


# -- 5-9: no Kafka needed -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["produce", "price"])
def test_a_missing_file_is_one_line(tmp_path, command):
    missing = tmp_path / "missing.jsonl"
    step = run(newcomer_env(tmp_path / "data"), command, str(missing))
    assert error_line(step, EXIT_REJECTED) == f"Error: cannot read {missing}: No such file or directory"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--generate", "5"], "give a FILE (or - for stdin) or --generate N, not both"),
        (["--duplicates", "0.1"], "--duplicates shape generated traffic: give them with --generate N"),
        (["--tenant", "acme"], "--tenant fill what a provider's payload lacks"),
    ],
)
def test_options_that_do_not_go_together_are_a_usage_error(tmp_path, args, says):
    events = tmp_path / "events.jsonl"
    events.write_bytes(event() + b"\n")
    step = run(newcomer_env(tmp_path / "data"), "produce", str(events), *args)
    assert says in error_line(step, EXIT_USAGE, usage=True)


@pytest.fixture
def busy_port():
    """A port something listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_an_ingest_on_a_busy_port_names_what_moves_it(tmp_path, busy_port):
    from streams.ingest import tokens

    tokens.add(tmp_path / "tokens", "gateway")
    step = run(
        newcomer_env(tmp_path / "data"), "ingest", "--port", str(busy_port), "--tokens-file", f"{tmp_path}/tokens"
    )
    assert error_line(step, EXIT_UNAVAILABLE) == (
        f"Error: 127.0.0.1:{busy_port} is in use: stop what listens there, or give the ingest another port "
        "(--port or MS_INGEST_PORT)"
    )


def test_a_worker_on_a_busy_web_port_names_what_moves_it(tmp_path, busy_port):
    step = run(newcomer_env(tmp_path / "data"), "worker", "--web-port", str(busy_port))
    assert error_line(step, EXIT_UNAVAILABLE) == (
        f"Error: 127.0.0.1:{busy_port} is in use: stop what listens there, or move this with --web-port or MS_WEB_PORT"
    )


WEB_TOKEN, CLICKHOUSE_PASSWORD, SASL_PASSWORD = (f"{what}-{uuid.uuid4().hex}" for what in ("web", "ch", "sasl"))
SECRETS = {"MS_WEB_TOKEN": WEB_TOKEN, "MS_CLICKHOUSE_URL": f"http://meterstream:{CLICKHOUSE_PASSWORD}@127.0.0.1:1"}


@pytest.mark.parametrize(
    "wrong, says",
    [
        ({"MS_WEB_PORT": "notaport"}, "Error: invalid settings: MS_WEB_PORT: Input should be a valid integer"),
        (  # a secret given where it is not used: named, not shown
            {"MS_KAFKA_SASL_PASSWORD": SASL_PASSWORD},
            "Error: invalid settings: MS_KAFKA_SASL_USERNAME/PASSWORD are set but MS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
    ],
)
def test_an_invalid_setting_is_named_never_its_secret(tmp_path, wrong, says):
    env = newcomer_env(tmp_path / "data", **SECRETS, **wrong)
    step = run(env, "status")
    assert error_line(step, EXIT_USAGE).startswith(says)
    for secret in (WEB_TOKEN, CLICKHOUSE_PASSWORD, SASL_PASSWORD):
        assert secret not in step.output, step.seen


@pytest.mark.parametrize("debug, flags", [({"MS_DEBUG": "1"}, []), ({}, ["--debug"])], ids=["MS_DEBUG=1", "--debug"])
def test_debug_shows_the_traceback_of_a_missing_file(tmp_path, debug, flags):
    step = run(newcomer_env(tmp_path / "data", **debug), *flags, "produce", str(tmp_path / "missing.jsonl"))
    assert step.code == EXIT_REJECTED, step.seen
    assert "Traceback (most recent call last):" in step.output, step.seen
    assert "cannot read" in step.output and "No such file or directory" in step.output, step.seen


def test_debug_shows_the_traceback_of_an_invalid_setting(tmp_path):
    # the flag at work where the error is meterstream's own (a ConfigurationError); its exit code
    # is then Python's for an uncaught exception (1), not the one-line end's (2): not asserted here
    step = run(newcomer_env(tmp_path / "data", MS_WEB_PORT="notaport"), "--debug", "status")
    assert step.code != 0, step.seen
    assert "Traceback (most recent call last):" in step.output, step.seen
    assert "ConfigurationError: invalid settings: MS_WEB_PORT" in step.output, step.seen


# -- 10-11: with the session's Kafka --------------------------------------------------------------


def test_a_misspelled_model_is_said_before_it_is_dead_lettered(tmp_path, kafka_service, topic):
    events = tmp_path / "events.jsonl"
    events.write_bytes(event() + b"\n" + event(event_id="e-2", model="gpt-4oo") + b"\n")
    env = newcomer_env(tmp_path / "data", MS_KAFKA_BOOTSTRAP=kafka_service.bootstrap, MS_EVENTS_TOPIC=topic)
    step = run(env, "produce", str(events))
    assert "Traceback" not in step.output, step.seen
    assert step.code == EXIT_REJECTED, step.seen
    assert step.elapsed < WITHIN_S, step.seen
    assert f"produced 2 events to {topic} at {kafka_service.bootstrap}" in step.lines, step.seen
    assert any(line.startswith("1 of 2 lines will be dead-lettered") for line in step.lines), step.seen
    assert (
        "  1 x unknown model 'gpt-4oo' for provider 'openai'; did you mean 'gpt-4o'? (first: line 2)" in step.lines
    ), step.seen
    # sent as they are, the bad one too: the rater dead-letters it with that reason
    sent = [e for part in events_of(read_topic(kafka_service.bootstrap, topic)).values() for e in part]
    assert sorted(sent) == sorted([event(), event(event_id="e-2", model="gpt-4oo")])


def test_a_budget_for_a_tenant_never_seen_is_set_with_a_warning(tmp_path, kafka_service):
    env = newcomer_env(
        tmp_path / "data",
        MS_KAFKA_BOOTSTRAP=kafka_service.bootstrap,
        MS_BUDGETS_TOPIC="budgets-" + uuid.uuid4().hex[:10],
    )
    migrated = run(env, "migrate")  # the embedded engine's tables, as `meterstream up` makes them
    assert migrated.code == 0, migrated.seen
    step = run(
        env,
        "budgets",
        "set",
        "--id",
        "acme-monthly",
        "--tenant",
        "acme-typo",
        "--period",
        "month",
        "--currency",
        "USD",
        "--amount",
        "250.00",
    )
    assert "Traceback" not in step.output, step.seen
    assert step.code == 0, step.seen
    assert step.elapsed < WITHIN_S, step.seen
    assert step.stdout.splitlines() == ["set 1 budget(s): acme-monthly"], step.seen
    warnings = [line for line in step.lines if line.startswith("warning: ")]
    assert warnings == step.stderr.splitlines(), step.seen  # the warning, and nothing else on stderr
    assert warnings == [
        "warning: budget acme-monthly: no event of tenant acme-typo in USD has been counted yet: if a name is "
        "misspelled, the budget never fires (it is kept as given)"
    ], step.seen
