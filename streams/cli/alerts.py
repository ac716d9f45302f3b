"""`meterstream budgets list|set|delete` and `meterstream alerts`."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from streams.alerts.budgets import Budget, BudgetError, BudgetTopic, parse_budget
from streams.cli.stream import emit
from streams.kafka_security import kafka_security
from streams.settings import Settings


def _topic(s: Settings) -> BudgetTopic:
    return BudgetTopic(s.bootstrap, s.budgets_topic, kafka_security(s))


@click.group("budgets")
def budgets_group() -> None:
    """Spend budgets (a compacted Kafka topic: workers pick changes up live)."""


@budgets_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def budgets_list(settings: Settings, fmt: str) -> None:
    rows = [b.model_dump(mode="json") for b in _topic(settings).read_all().values()]
    for r in rows:
        r["thresholds"] = ",".join(r["thresholds"])
    emit(rows, fmt, ["id", "tenant_id", "user_id", "model", "period", "timezone", "currency", "amount", "thresholds"])


@budgets_group.command("set")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A YAML list of budgets (every one is checked before any is written).",
)
@click.option("--id", "budget_id", default=None)
@click.option("--tenant", default=None)
@click.option("--user", default=None)
@click.option("--model", default=None)
@click.option("--period", default=None, help="day | month")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--currency", default=None)
@click.option("--amount", default=None, help="A decimal, e.g. 250.00")
@click.option("--thresholds", default="0.5,0.8,1", show_default=True, help="Fractions of the amount, in (0, 10].")
@click.pass_obj
def budgets_set(
    settings: Settings,
    file: Path | None,
    budget_id: str | None,
    tenant: str | None,
    user: str | None,
    model: str | None,
    period: str | None,
    timezone: str,
    currency: str | None,
    amount: str | None,
    thresholds: str,
) -> None:
    """Create or replace budgets."""
    if file is not None:
        docs = yaml.safe_load(file.read_text()) or []
        if not isinstance(docs, list):
            raise click.ClickException("the budgets file must hold a YAML list")
    else:
        docs = [
            {
                "id": budget_id,
                "tenant_id": tenant,
                "user_id": user,
                "model": model,
                "period": period,
                "timezone": timezone,
                "currency": currency,
                "amount": amount,
                "thresholds": [t.strip() for t in thresholds.split(",") if t.strip()],
            }
        ]
    try:
        budgets = [parse_budget({k: v for k, v in d.items() if v is not None}) for d in docs]
    except BudgetError as exc:
        raise click.ClickException(f"{exc} (nothing written)") from None
    _topic(settings).put(budgets)
    click.echo(f"set {len(budgets)} budget(s): {', '.join(b.id for b in budgets)}")
    for b in budgets:
        warning = unseen_scope(settings, b)
        if warning is not None:
            click.echo(f"warning: budget {b.id}: {warning}", err=True)


def unseen_scope(settings: Settings, b: Budget) -> str | None:
    """Why the budget may never fire (no event of its scope and currency counted yet: a misspelled
    tenant, user or model?), or None. The ledger is read as analysts read it (the store, else the
    worker that holds it); when it cannot be read, that is said instead."""
    import datetime as dt

    from schemas.errors import MeterstreamError
    from streams.analyst.reader import Reader

    scope = (
        f"tenant {b.tenant_id}"
        + (f", user {b.user_id}" if b.user_id else "")
        + (f", model {b.model}" if b.model else "")
    )
    try:
        with Reader(settings) as reader:
            reader.attempts = 1  # a check: no waiting for a worker
            rows = reader.read(
                "ledger_spend",
                tenant_id=b.tenant_id,
                user_id=b.user_id,
                model=b.model,
                currency=b.currency,
                since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
            )
    except MeterstreamError as exc:
        return f"could not check that events of {scope} were counted ({exc})"
    if rows:
        return None
    return (
        f"no event of {scope} in {b.currency} has been counted yet: if a name is misspelled, the budget "
        "never fires (it is kept as given)"
    )


@budgets_group.command("delete")
@click.argument("budget_id")
@click.pass_obj
def budgets_delete(settings: Settings, budget_id: str) -> None:
    topic = _topic(settings)
    if budget_id not in topic.read_all():
        raise click.ClickException(f"no budget {budget_id!r}")
    topic.delete(budget_id)
    click.echo(f"deleted {budget_id}")


@click.command("alerts")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def alerts_command(settings: Settings, fmt: str) -> None:
    """Spend alerts sent, with their delivery state."""
    from streams.analyst.reader import Reader

    with Reader(settings) as reader:
        rows = reader.read("alerts")
    emit(
        rows,
        fmt,
        [
            "alert_key",
            "budget_id",
            "tenant_id",
            "user_id",
            "model",
            "period",
            "threshold",
            "spend",
            "amount",
            "currency",
            "event_id",
            "created_at",
            "kafka_delivered",
            "webhook_status",
        ],
    )
