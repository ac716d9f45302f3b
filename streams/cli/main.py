"""The ``meterstream`` command."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from streams.cli.stream import one_line
from streams.settings import Settings

err = Console(stderr=True)


class Main(click.Group):
    """Settings refused at startup and store errors end a command with one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from streams.analyst.reader import AnalystError
        from streams.services import ServiceError
        from streams.storage import StoreError
        from streams.alerts.webhooks import WebhookConfigError

        try:
            return super().invoke(ctx)
        except (StoreError, WebhookConfigError, AnalystError, ServiceError) as exc:
            raise click.ClickException(one_line(exc)) from None


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """meterstream: exact, real-time LLM usage billing (Kafka -> Faust -> ClickHouse).

    Settings come from MS_* environment variables (see the README)."""
    from pydantic import ValidationError

    try:
        Settings()
    except ValidationError as exc:  # the errors name the variables, never their values
        reasons = "; ".join(("MS_" + "_".join(map(str, e["loc"])).upper() + ": " if e["loc"] else "")
                            + e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False))
        raise click.ClickException(f"invalid settings: {reasons}") from None


@main.command()
def up() -> None:
    """Start the local Kafka broker (unless MS_KAFKA_BOOTSTRAP names one), create topics,
    apply ClickHouse migrations."""
    from streams import services

    settings = Settings()
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
def down() -> None:
    """Stop the local Kafka broker started by `up` (an external one is left alone)."""
    from streams import services

    services.kafka_down(Settings())


@main.command()
def migrate() -> None:
    """Apply the ClickHouse migrations not applied yet (idempotent)."""
    from streams import services

    notes: list[str] = []
    applied = services.apply_migrations(Settings(), notes)
    for m in applied:
        click.echo(f"applied {m.path.name}")
    if not applied:
        click.echo("up to date")
    for note in notes:
        click.echo(note)


@main.command()
def status() -> None:
    """Say what is running and where the state lives."""
    from streams import services

    settings = Settings()
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

for _cmd in (price_command, catalog_group, worker_command, produce_command, report_command, rejects_command,
             rerate_command, sql_command, budgets_group, alerts_command, ingest_group):
    main.add_command(_cmd)
