"""The ``meterstream`` command."""

from __future__ import annotations

import errno
import logging
import sys

import click
from rich.console import Console

from schemas.errors import ConfigurationError, MeterstreamError
from streams.cli.stream import one_line
from streams.settings import Settings

err = Console(stderr=True)


class Main(click.Group):
    """An expected failure (a MeterstreamError: bad input, a wrong setting, a dependency away;
    schemas/errors.py) ends a command with its message on one line; anything else with one line
    too, and how to see more. With --debug (or MS_DEBUG=1): the traceback instead."""

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
            raise click.ClickException(said(exc, ctx.obj)) from None


def said(exc: Exception, settings: Settings | None) -> str:
    """The one line an error ends a command with."""
    from kafka.errors import KafkaError

    text = one_line(exc)
    if isinstance(exc, MeterstreamError):
        return text
    if isinstance(exc, KafkaError):  # kafka-python's own: the broker is away or refuses (Unavailable)
        where = f" at {settings.bootstrap}" if settings is not None else ""
        hint = ""
        if "bootstrap" in text.lower() or type(exc).__name__ == "NoBrokersAvailable":
            local = settings is None or settings.local_kafka
            hint = "; start it with `meterstream up`" if local else "; check MS_KAFKA_BOOTSTRAP and that it runs"
        return f"Kafka{where}: {text}{hint}"
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
    driver = logging.getLogger("clickhouse_connect")
    if not debug and not driver.handlers:  # its warnings, when nothing else logs them, not said beside an error
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
    err.print(f"kafka: {where} at {settings.bootstrap}; topics created: {created or 'none new'}", markup=False)
    err.print(f"clickhouse: migrations applied: {[m.path.name for m in applied] or 'none new'}", markup=False)
    for note in notes:
        err.print(f"clickhouse: {note}", markup=False)


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


@main.command()
@click.pass_obj
def status(settings: Settings) -> None:
    """Say what is running and where the state lives."""
    from streams import services

    click.echo(f"data dir:   {settings.data_dir}")
    if settings.local_kafka:
        state = "running" if services.kafka_running(settings) else "stopped"
        click.echo(f"kafka:      local broker {settings.bootstrap} ({state})")
    else:
        click.echo(f"kafka:      external {settings.bootstrap}")
    store = "server (MS_CLICKHOUSE_URL)" if settings.clickhouse_url else f"chDB at {settings.chdb_path}"
    click.echo(f"clickhouse: {store}")


from streams.cli.pricing import catalog_group, price_command  # noqa: E402
from streams.cli.stream import (  # noqa: E402
    produce_command,
    rejects_command,
    report_command,
    rerate_command,
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
from streams.cli.ingest import ingest_group  # noqa: E402

for _cmd in (
    price_command,
    catalog_group,
    worker_command,
    produce_command,
    report_command,
    rejects_command,
    rerate_command,
    sql_command,
    budgets_group,
    alerts_command,
    ingest_group,
):
    main.add_command(_cmd)
