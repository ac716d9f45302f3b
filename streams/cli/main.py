"""The ``meterstream`` command."""

from __future__ import annotations

import errno
import logging
import sys

import click

from schemas.errors import ConfigurationError, MeterstreamError, Unavailable
from streams.cli.stream import one_line
from streams.settings import Settings

# How a command ends (docs/operations.md, "Exit codes"); click's own usage errors exit 2 too.
EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class Failed(click.ClickException):
    """A command's one-line end, with the exit code of its kind of failure."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def kafka_errors() -> tuple[type[Exception], ...]:
    """The base errors of the Kafka client libraries (kafka-python's, aiokafka's)."""
    import aiokafka.errors
    import kafka.errors

    return (kafka.errors.KafkaError, aiokafka.errors.KafkaError)


def exit_code(exc: BaseException) -> int:
    """3: a dependency is away (Kafka, ClickHouse, a worker, a port); 2: a setting or a file it
    names is wrong; 1: input refused, or anything else."""
    if isinstance(exc, (Unavailable, *kafka_errors())):
        return EXIT_UNAVAILABLE
    if isinstance(exc, ConfigurationError):
        return EXIT_USAGE
    return EXIT_REJECTED


class Main(click.Group):
    """An expected failure (a MeterstreamError: bad input, a wrong setting, a dependency away;
    schemas/errors.py) ends a command with its message on one line and its exit code (above);
    anything else with one line too, and how to see more. With --debug (or MS_DEBUG=1): the
    traceback instead."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise  # click's own: said its way
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                raise  # a broken pipe (… | head): click's main ends quietly
            raise Failed(said(exc, ctx.obj), exit_code(exc)) from None


def said(exc: Exception, settings: Settings | None) -> str:
    """The one line an error ends a command with."""
    text = one_line(exc)
    if isinstance(exc, MeterstreamError):
        if "UNKNOWN_TABLE" in text:  # a store never migrated
            return f"{text} (the tables are not there: run `meterstream up` or `meterstream migrate`)"
        return text
    if isinstance(exc, kafka_errors()):  # the client libraries' own: the broker is away or refuses (Unavailable)
        where = f" at {settings.bootstrap}" if settings is not None else ""
        if "bootstrap" in text.lower() or type(exc).__name__ == "NoBrokersAvailable":
            return f"Kafka{where} cannot be reached; start it with `meterstream up` or set MS_KAFKA_BOOTSTRAP"
        return f"Kafka{where}: {text}"
    named = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
    return f"{named} (run with --debug for the traceback)"


def load_settings() -> Settings:
    """The settings from the environment; refused ones as a ConfigurationError naming the
    variables, never their values."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(
            ("MS_" + "_".join(map(str, e["loc"])).upper() + ": " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid settings: {reasons}") from exc


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug",
    is_flag=True,
    envvar="MS_DEBUG",
    help="On an error, show its traceback instead of one line (also MS_DEBUG=1).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """meterstream: exact, real-time LLM usage billing (Kafka -> Faust -> ClickHouse).

    Settings come from MS_* environment variables (see docs/operations.md)."""
    for name in ("clickhouse_connect", "aiokafka", "kafka"):  # their warnings, when nothing else logs them,
        driver = logging.getLogger(name)  # are not said beside a command's own line
        if not debug and not driver.handlers:
            driver.addHandler(logging.NullHandler())
    ctx.obj = load_settings()  # once: every command takes them from here (click.pass_obj)


@main.command()
@click.pass_obj
def up(settings: Settings) -> None:
    """Start the local Kafka broker (unless MS_KAFKA_BOOTSTRAP names one), create topics,
    apply ClickHouse migrations."""
    from streams import services

    local = services.kafka_up(settings)
    where = "local broker" if local else "external broker"
    created = services.ensure_topics(settings)
    notes: list[str] = []
    applied = services.apply_migrations(settings, notes)
    click.echo(f"kafka: {where} at {settings.bootstrap}; topics created: {created or 'none new'}", err=True)
    click.echo(f"clickhouse: migrations applied: {[m.path.name for m in applied] or 'none new'}", err=True)
    for note in notes:
        click.echo(f"clickhouse: {note}", err=True)


@main.command()
@click.pass_obj
def down(settings: Settings) -> None:
    """Stop the local Kafka broker started by `up` (an external one is left alone)."""
    from streams import services

    services.kafka_down(settings)


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply the ClickHouse migrations not applied yet (idempotent)."""
    from streams import services

    notes: list[str] = []
    applied = services.apply_migrations(settings, notes)
    for m in applied:
        click.echo(f"applied {m.path.name}")
    if not applied:
        click.echo("up to date")
    for note in notes:
        click.echo(note)


from streams.cli.pricing import catalog_group, price_command  # noqa: E402
from streams.cli.stream import (  # noqa: E402
    produce_command,
    rejects_command,
    report_command,
    sql_command,
    worker_command,
)


@main.command()
@click.option("--events", type=int, default=3000, show_default=True)
def demo(events: int) -> None:
    """Run the pipeline end to end on this machine and check it against the pricing engine."""
    from streams.harness.demo import run_demo

    sys.exit(0 if run_demo(events) else 1)


from streams.cli.alerts import alerts_command, budgets_group  # noqa: E402
from streams.cli.api import api_group  # noqa: E402
from streams.cli.dashboard import dashboard_command  # noqa: E402
from streams.cli.finance import explain_command, statement_command  # noqa: E402
from streams.cli.ingest import ingest_group  # noqa: E402
from streams.cli.past import (  # noqa: E402
    audit_command,
    backfill_command,
    correct_command,
    period_group,
    redrive_command,
    rerate_command,
)
from streams.cli.status import status_command  # noqa: E402
from streams.cli.tables import tables_command  # noqa: E402

for _cmd in (
    price_command,
    catalog_group,
    worker_command,
    produce_command,
    report_command,
    rejects_command,
    rerate_command,
    sql_command,
    tables_command,
    budgets_group,
    alerts_command,
    ingest_group,
    api_group,
    status_command,
    explain_command,
    statement_command,
    dashboard_command,
    redrive_command,
    backfill_command,
    correct_command,
    period_group,
    audit_command,
):
    main.add_command(_cmd)
