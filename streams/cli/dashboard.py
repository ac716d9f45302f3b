"""`meterstream dashboard --out FILE.html`: the token-billing panels as one offline HTML page.

Every figure comes from the named reads through streams/analyst/reader.py (the store, or the
worker that holds the embedded engine: reads by name, no SQL on the wire): the `usage` read for
spend, tokens, the top users, the averages and the labels, `rejects` grouped by reason, and the
rows of `budgets status` (streams/cli/alerts.py budget_status). The page is built by
streams/analyst/dashboard.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schemas.errors import InputRejected, MeterstreamError
from streams.cli.stream import one_line, printable_rejects, time_option, warn_if_waiting
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.analyst.dashboard import DashboardRows


@click.command("dashboard")
@click.option("--tenant", default=None, help="Only this tenant (default: every tenant).")
@click.option("--since", default=None, callback=time_option, help="RFC 3339 time (inclusive).")
@click.option("--until", default=None, callback=time_option, help="RFC 3339 time (exclusive).")
@click.option("--tz", default=None, help="Days in this IANA time zone (e.g. Asia/Shanghai); default UTC.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.pass_obj
def dashboard_command(
    settings: Settings, tenant: str | None, since: Any, until: Any, tz: str | None, out: Path
) -> None:
    """One self-contained HTML page (it loads nothing when opened): spend over time per model and
    per user, the daily token trend, the top 10 users by cost and by tokens, average tokens per
    request per model, cost by each rolled-up label, rejects by reason and budgets' progress."""
    from streams.analyst.dashboard import build

    if not out.parent.is_dir():  # said before the reads, not after them
        raise InputRejected(f"cannot write {out}: no directory {out.parent}")
    rows = dashboard_rows(settings, tenant, since, until, None if tz == "UTC" else tz)
    body = build(rows).encode()
    try:
        out.write_bytes(body)
    except OSError as exc:
        raise InputRejected(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}", err=True)
    warn_if_waiting(settings)


def dashboard_rows(
    settings: Settings, tenant: str | None, since: dt.datetime | None, until: dt.datetime | None, tz: str | None
) -> DashboardRows:
    """The reads the page shows (streams/analyst/dashboard.py DashboardRows)."""
    from streams.analyst.dashboard import REJECT_REASONS_READ, TOP_USERS, DashboardRows, spend_window
    from streams.analyst.reader import Reader

    scope: dict[str, Any] = {"tenant": tenant, "since": since, "until": until, "rolled_up_labels": settings.label_keys}
    with Reader(settings) as reader:

        def usage(**asked: Any) -> list[dict[str, Any]]:
            try:
                return reader.read("usage", **scope, **asked)
            except InputRejected as exc:  # a bad --tz or --tenant, said as the option's
                raise click.UsageError(str(exc).replace("bad parameters for usage: ", "")) from None

        tokens_by_day = usage(group_by=("tenant",), window="day", tz=tz)
        window = spend_window(tz, since, until, (r["window_start"] for r in tokens_by_day))
        spend_by_model = usage(group_by=("model",), window=window, tz=tz)  # hours: only when tz is UTC
        spend_by_user = usage(group_by=("user",), window=window, tz=tz)
        top_cost = usage(group_by=("user",), top=TOP_USERS, order="cost")
        top_tokens = usage(group_by=("user",), top=TOP_USERS, order="tokens")
        average = usage(group_by=("model",), average=True)
        by_label = {key: usage(group_by=(f"label:{key}",)) for key in settings.label_keys}
        asked = {"group": True, "limit": REJECT_REASONS_READ, "tenant": tenant, "since": since, "until": until}
        rejects = reader.read("rejects", **{k: v for k, v in asked.items() if v is not None})
    budgets, problem = budget_rows(settings, tenant)
    return DashboardRows(
        window=window,
        spend_by_model=spend_by_model,
        spend_by_user=spend_by_user,
        tokens_by_day=tokens_by_day,
        top_users_by_cost=top_cost,
        top_users_by_tokens=top_tokens,
        average_by_model=average,
        label_keys=settings.label_keys,
        by_label=by_label,
        rejects=printable_rejects(rejects),
        budgets=budgets,
        budgets_problem=problem,
        tenant=tenant,
        since=since,
        until=until,
        tz=tz,
    )


def budget_rows(settings: Settings, tenant: str | None) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The rows of `budgets status` (the tenant's budgets only, with --tenant), or None and why
    they could not be read (the budgets topic is Kafka's: the other panels do not need it)."""
    from kafka.errors import KafkaError

    from streams.alerts.budgets import BudgetTopic
    from streams.cli.alerts import budget_status
    from streams.kafka_security import kafka_security

    try:
        budgets = BudgetTopic(settings.bootstrap, settings.budgets_topic, kafka_security(settings)).read_all()
        mine = [b for b in budgets.values() if tenant is None or b.tenant_id == tenant]
        return budget_status(settings, mine), None
    except (MeterstreamError, KafkaError) as exc:
        click.echo(f"warning: the budgets panel is empty: {one_line(exc)}", err=True)
        return None, one_line(exc)
