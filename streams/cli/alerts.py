"""`meterstream budgets list|set|delete|status` and `meterstream alerts [resend]`.

`alerts resend ID` / `alerts resend --failed` write resend requests to the alert log (the outbox,
streams/alerts/outbox.py); the active alerts role acts on each (at least once: its offset is
committed after the new outcome is logged) and posts the body already sent, with the same
Idempotency-Key, so receivers drop repeats (streams/alerts/role.py). No running role needs to be
reachable: a request waits in the log until one runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import click
import yaml

from schemas.errors import InputRejected
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
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Only events with this label (repeatable).")
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
    labels: tuple[str, ...],
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
            raise InputRejected("the budgets file must hold a YAML list")
    else:
        docs = [
            {
                "id": budget_id,
                "tenant_id": tenant,
                "user_id": user,
                "model": model,
                "labels": dict(label_pair(x) for x in labels) if labels else None,
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
        raise InputRejected(f"{exc} (nothing written)") from exc
    _topic(settings).put(budgets)
    click.echo(f"set {len(budgets)} budget(s): {', '.join(b.id for b in budgets)}")
    for b in budgets:
        warning = unseen_scope(settings, b)
        if warning is not None:
            click.echo(f"warning: budget {b.id}: {warning}", err=True)


def label_pair(text: str) -> tuple[str, str]:
    """KEY=VALUE of a --label option."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"give a label as KEY=VALUE, not {text!r}", param_hint="--label")
    return key, value


def unseen_scope(settings: Settings, b: Budget) -> str | None:
    """Why the budget may never fire (no event of its scope and currency counted yet: a misspelled
    tenant, user or model?), or None. The ledger is read as analysts read it (the store, else the
    worker that holds it); when it cannot be read, that is said instead."""
    import datetime as dt

    from schemas.errors import MeterstreamError
    from streams.analyst.reader import Reader

    scope = b.scope_text()
    try:
        with Reader(settings) as reader:
            reader.attempts = 1  # a check: no waiting for a worker
            rows = reader.read(
                "ledger_spend",
                tenant_id=b.tenant_id,
                user_id=b.user_id,
                model=b.model,
                **({"labels": b.labels} if b.labels else {}),
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
        raise InputRejected(f"no budget {budget_id!r}")
    topic.delete(budget_id)
    click.echo(f"deleted {budget_id}")


@budgets_group.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def budgets_status(settings: Settings, fmt: str) -> None:
    """Per budget, its current period: spend so far, percent of the amount, thresholds crossed."""
    emit(
        budget_status(settings, list(_topic(settings).read_all().values())),
        fmt,
        ["id", "tenant_id", "user_id", "model", "period", "currency", "amount", "spend", "percent", "crossed"],
    )


def budget_status(settings: Settings, budgets: list[Budget], now: dt.datetime | None = None) -> list[dict]:
    """The rows of `budgets status`, read as analysts read (the ledger_spend and alerts reads)."""
    from pricing import money_str
    from streams.alerts.spend import params
    from streams.analyst.reader import Reader

    now = now or dt.datetime.now(dt.UTC)
    out = []
    with Reader(settings) as reader:
        alerts = reader.read("alerts") if budgets else []
        for b in budgets:
            period = b.period_of(now)
            spend = sum(
                (Decimal(str(r["cost"])) for r in reader.read("ledger_spend", **params(b, *b.period_range(period)))),
                Decimal(0),
            )
            crossed = sorted(
                Decimal(str(a["threshold"])).normalize()
                for a in alerts
                if a["budget_id"] == b.id and a["period"] == period
            )
            out.append(
                {
                    "id": b.id,
                    "tenant_id": b.tenant_id,
                    "user_id": b.user_id,
                    "model": b.model,
                    "period": period,
                    "currency": b.currency,
                    "amount": money_str(b.amount),
                    "spend": money_str(spend),
                    "percent": money_str((spend * 100 / b.amount).quantize(Decimal("0.01"))),
                    "crossed": ",".join(money_str(t) for t in crossed),
                }
            )
    return out


@click.group("alerts", invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def alerts_command(ctx: click.Context, fmt: str) -> None:
    """Spend alerts sent, with their delivery state (`alerts resend` delivers again)."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
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


@alerts_command.command("resend")
@click.argument("alert_id", required=False)
@click.option("--failed", is_flag=True, help="Every alert whose delivery to a webhook failed.")
@click.pass_obj
def alerts_resend(settings: Settings, alert_id: str | None, failed: bool) -> None:
    """Deliver an alert (by its key, budget|period|threshold) to every webhook again, or (--failed)
    every alert whose webhook delivery failed to the webhooks that failed. The running alerts role
    does it (or the next one to start), with the same body and Idempotency-Key."""
    import asyncio

    if bool(alert_id) == failed:
        raise click.UsageError("give one alert key, or --failed")
    count = asyncio.run(request_resend(settings, alert_id))
    if alert_id is not None:
        click.echo(f"resend of alert {alert_id} requested: the alerts role delivers it again")
    else:
        click.echo(f"resend of {count} alert(s) with a failed webhook requested: the alerts role delivers them again")


async def request_resend(settings: Settings, alert_id: str | None) -> int:
    """Write resend requests to the alert log: for one alert (every webhook) or, with no id, for
    each alert with a failed webhook (those webhooks). Returns how many were written."""
    from streams.alerts.outbox import AlertLog, failed_labels

    log = AlertLog(settings.bootstrap, settings.alert_log_topic, kafka_security(settings))
    rows = await log.latest()
    if alert_id is not None:
        if alert_id not in rows:
            raise InputRejected(f"no alert {alert_id!r} in the alert log (see meterstream alerts)")
        todo = [rows[alert_id]]
    else:
        todo = [r for r in rows.values() if failed_labels(r)]
    if not todo:
        return 0
    await log.start()
    try:
        for row in todo:
            await log.request_resend(row, only_failed=alert_id is None)
    finally:
        await log.stop()
    return len(todo)
