"""Fixing the past: `meterstream redrive`, `backfill`, `correct`, `period close|verify` and
`audit` (docs/fixing-the-past.md).

Each change is prepared from the ledger (streams/fixes/flows.py), shown, sent as sealed
adjustment records (streams/fixes/send.py) and waited for: the pipeline counts it like any
event, exactly once. Every change is written to the audit log with who, when, what and why."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from schemas.errors import InputRejected
from schemas.money import money_str
from streams.cli.stream import emit, time_option
from streams.settings import Settings

MONTH_HELP = "The UTC calendar month, YYYY-MM."


def _say(text: str) -> None:
    click.echo(text, err=True)


def _reader(settings: Settings) -> Any:
    """A Reader that waits up to 2 minutes for a worker that is restarting, as a change waits to be applied."""
    from streams.analyst.reader import Reader

    reader = Reader(settings)
    reader.attempts = 240
    return reader


def _read(settings: Settings) -> tuple[Any, Callable[..., list[dict[str, Any]]]]:
    reader = _reader(settings)
    return reader, reader.read


def _closed(read: Callable[..., list[dict[str, Any]]]) -> Any:
    from streams.fixes.periods import Closed

    return Closed.of(read("period_closes"))


def _send(settings: Settings, changes: list[Any], timeout: float) -> dict[int, int]:
    """Send the changes; wait until the pipeline applied them (exit 3 if it did not in time)."""
    from schemas.errors import Unavailable
    from streams.fixes.send import Sender, wait_applied

    sender = Sender(settings)
    sent: dict[int, int] = {}
    try:
        for change in changes:
            if change.entries:
                for p, o in sender.send(change.by_partition, change.audit, progress=_say).items():
                    sent[p] = max(sent.get(p, -1), o)
    finally:
        sender.close()
    if sent and not wait_applied(settings, sent, timeout, progress=_say):
        raise Unavailable(
            f"sent, but not applied within {timeout:.0f} s: is a worker running? It is applied once one "
            "is (see `meterstream status` and `meterstream audit`)"
        )
    return sent


def _show(change: Any, dry_run: bool, limit: int = 20) -> None:
    verb = "would send" if dry_run else "sending"
    later = (
        f", {change.booked_later} booked in the first open period (their month is closed)"
        if change.booked_later
        else ""
    )
    _say(f"{change.action}: {verb} {change.entries} entries{later}; {len(change.skipped)} left out")
    for what, why in change.skipped[:limit]:
        _say(f"  left out {what}: {why}")
    if len(change.skipped) > limit:
        _say(f"  … and {len(change.skipped) - limit} more")


def _outcome(settings: Settings, audit_id: str) -> None:
    reader, read = _read(settings)
    with reader:
        rows = read("audit_rows", audit_id=audit_id)
    if not rows:
        click.echo(f"audit {audit_id}: no ledger rows (see `meterstream rejects` for what was refused)")
    for r in rows:
        click.echo(
            f"audit {audit_id}: {r['entry']} {r['rows']} rows, {r['currency']} {money_str(r['cost'])}, events {r['events']:+d}"
        )


def _canonical(settings: Settings) -> Any:
    from streams.placement import Canonical

    return Canonical(settings.topic_partitions)


def change_options(why: str, timeout: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command that sends a change takes: --dry-run, --author, --why, --timeout."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing."),
                click.option(
                    "--author", default=None, help="Who makes the change (default: user@host), for the audit log."
                ),
                click.option("--why", "why", default=why, show_default=True, help="Why, for the audit log."),
                click.option(
                    "--timeout", type=float, default=timeout, show_default=True, help="Seconds to wait until applied."
                ),
            )
        ):
            fn = option(fn)
        return fn

    return add


@click.command("redrive")
@click.option("--reason", default=None, help="Only dead letters whose reason contains this text (any case).")
@click.option("--tenant", default=None, help="Only this tenant's dead letters.")
@click.option("--since", default=None, callback=time_option, help="Rejected at or after (RFC 3339).")
@click.option("--until", default=None, callback=time_option, help="Rejected before (RFC 3339).")
@change_options("redrive after a fix", 120.0)
@click.pass_obj
def redrive_command(
    settings: Settings,
    reason: str | None,
    tenant: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    dry_run: bool,
    author: str | None,
    why: str,
    timeout: float,
) -> None:
    """Send dead-lettered events through rating again, after a fix (a catalog published, a model
    added). Exactly once: an event the ledger holds is not sent, the rater drops one counted
    meanwhile, and a dead letter a redrive counted is not sent again. Each dead letter's
    outcome (counted, duplicate, rejected and why) is kept: the dead_letters view."""
    from streams.fixes import flows

    reader, read = _read(settings)
    with reader:
        change = flows.redrive(
            settings,
            read,
            reason=reason,
            tenant=tenant,
            since=since,
            until=until,
            actor=author or flows.default_actor(),
            why=why,
            closed=_closed(read),
            canonical=_canonical(settings),
            progress=_say,
        )
    _show(change, dry_run)
    if dry_run or not change.entries:
        return
    _send(settings, [change], timeout)
    _outcome(settings, change.audit["audit_id"])


@click.command("backfill")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@change_options("backfill of history", 300.0)
@click.pass_obj
def backfill_command(
    settings: Settings, file: Path, dry_run: bool, author: str | None, why: str, timeout: float
) -> None:
    """Import history from FILE (JSON Lines of billing events) through a path of its own: no
    lateness rule. Each event is priced and deduplicated by (tenant_id, event_id) like any
    other; events the ledger holds are left out. An event of a closed month is booked at the
    start of the first open one (its own time kept in occurred_at)."""
    from streams.fixes import flows

    with file.open("rb") as f:
        lines = [(n, line.rstrip(b"\r\n")) for n, line in enumerate(f, 1)]
    reader, read = _read(settings)
    with reader:
        change = flows.backfill(
            read,
            lines,
            source=file.name,
            actor=author or flows.default_actor(),
            why=why,
            closed=_closed(read),
            canonical=_canonical(settings),
        )
    _show(change, dry_run)
    if dry_run or not change.entries:
        return
    _say(f"backfill: sending {change.entries} events in records of up to 4,096")
    _send(settings, [change], timeout)
    _outcome(settings, change.audit["audit_id"])


@click.command("correct")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", default=None, help="The event's tenant (without FILE).")
@click.option("--event", "event_id", default=None, help="The event's id (without FILE).")
@click.option("--void", "void", is_flag=True, help="Take the event back whole.")
@click.option("--usage", default=None, help="Replace the event's usage with this JSON object.")
@click.option("--reason", default=None, help="Why (required without FILE).")
@click.option("--author", default=None, help="Who (default: user@host).")
@click.option("--id", "correction_id", default=None, help="The correction's id (default: a new one).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait until applied.")
@click.pass_obj
def correct_command(
    settings: Settings,
    file: Path | None,
    tenant: str | None,
    event_id: str | None,
    void: bool,
    usage: str | None,
    reason: str | None,
    author: str | None,
    correction_id: str | None,
    dry_run: bool,
    timeout: float,
) -> None:
    """Void a counted event or replace its usage: FILE holds billing_correction records (JSON
    Lines, schemas/billing_correction.v1.schema.json), or give one with --tenant, --event,
    --void or --usage, and --reason. The original row is kept; a row holding the difference is
    added, and the rollups, budgets and alerts move by exactly that. A correction of an unknown
    event is dead-lettered with the reason; one given again (its correction_id) changes nothing."""
    import uuid

    from pydantic import ValidationError

    from schemas.billing_correction import BillingCorrection
    from streams.fixes import flows

    docs: list[tuple[str, Any]] = []
    if file is not None:
        if tenant or event_id or void or usage:
            raise click.UsageError("give FILE or --tenant/--event/--void/--usage, not both")
        with file.open("rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        docs.append((f"line {n}", orjson.loads(line)))
                    except orjson.JSONDecodeError as exc:
                        raise InputRejected(f"{file.name} line {n}: not JSON ({exc})") from None
    else:
        if not (tenant and event_id and reason) or void == (usage is not None):
            raise click.UsageError("give --tenant, --event, --reason and one of --void or --usage")
        doc: dict[str, Any] = {
            "correction_id": correction_id or uuid.uuid4().hex,
            "tenant_id": tenant,
            "event_id": event_id,
            "action": "void" if void else "replace",
            "reason": reason,
            "author": author or flows.default_actor(),
        }
        if usage is not None:
            try:
                doc["usage"] = orjson.loads(usage)
            except orjson.JSONDecodeError as exc:
                raise click.BadParameter(f"--usage is not JSON ({exc})") from None
        docs.append(("the correction", doc))
    items = []
    for what, d in docs:
        try:
            items.append(BillingCorrection.model_validate(d))
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()[:3])
            raise InputRejected(f"{what} is not a billing_correction: {problem}") from None
    reader, read = _read(settings)
    with reader:
        changes = flows.corrections(
            read, items, closed=_closed(read), canonical=_canonical(settings), partitions=settings.topic_partitions
        )
    for c in changes:
        _show(c, dry_run, limit=1)
    if dry_run:
        return
    _send(settings, changes, timeout)
    for c in changes:
        if c.entries:
            _outcome(settings, c.audit["audit_id"])


@click.command("rerate")
@click.option(
    "--since", required=True, callback=time_option, help="RFC 3339 start of the period (booking time, inclusive)."
)
@click.option("--until", required=True, callback=time_option, help="RFC 3339 end of the period (exclusive).")
@click.option(
    "--catalog",
    default=None,
    help="A catalog name (a directory in MS_RERATE_CATALOGS_DIR, never a path) to price with; "
    "default: the worker's own (MS_CATALOG_DIR or the shipped catalogs).",
)
@click.option("--tenant", default=None, help="Only this tenant's events.")
@change_options("re-rating", 300.0)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def rerate_command(
    settings: Settings,
    since: Any,
    until: Any,
    catalog: str | None,
    tenant: str | None,
    dry_run: bool,
    author: str | None,
    why: str,
    timeout: float,
    fmt: str,
) -> None:
    """Re-price the events booked in a period with another catalog. The original rows are kept:
    where a price changes, a row holding the difference is added (in the first open month when
    the event's month is closed), and the rollups, budgets and alerts move by it. Prints the
    difference per tenant, model and currency (--dry-run: and sends nothing)."""
    from pricing import load_catalog
    from streams.fixes.flows import default_actor
    from streams.fixes.periods import Closed
    from streams.fixes.rerate import catalog_dir, plan

    priced_with = load_catalog(catalog_dir(settings, catalog))
    with _reader(settings) as reader:
        change, summary = plan(
            reader.read,
            priced_with,
            since,
            until,
            tenant=tenant,
            closed=Closed.of(reader.read("period_closes")),
            actor=author or default_actor(),
            why=why,
        )
    emit(summary, fmt, ["tenant_id", "model", "currency", "events", "before", "after", "difference"])
    _show(change, dry_run)
    if not dry_run and change.entries:
        _send(settings, [change], timeout)
        click.echo(f"re-rated {change.entries} events (audit {change.audit['audit_id']})")


@click.group("period")
def period_group() -> None:
    """Close a month (nothing is booked in it afterwards) and verify it did not change."""


@period_group.command("close")
@click.option("--month", required=True, help=MONTH_HELP)
@click.option("--tenant", default=None, help="Only this tenant (default: every tenant with rows in the month).")
@click.option("--author", default=None, help="Who closes (default: user@host).")
@click.option("--why", "why", default="month end", show_default=True, help="Why, for the audit log.")
@click.option("--timeout", type=float, default=120.0, show_default=True)
@click.pass_obj
def period_close(
    settings: Settings, month: str, tenant: str | None, author: str | None, why: str, timeout: float
) -> None:
    """Lock a month: afterwards redrive, backfill, corrections and re-ratings of it are booked in
    the first open month. Prints each tenant's digest (a hash chain over the month's ledger rows,
    with the totals), kept in period_closes for `period verify`."""
    from schemas.billing_event import MAX_FUTURE
    from streams.fixes import flows, periods

    if not periods.MONTH.fullmatch(month):
        raise click.BadParameter(f"{month!r} is not YYYY-MM", param_hint="--month")
    why_not = periods.closable(
        month, dt.datetime.now(dt.UTC), dt.timedelta(hours=settings.allowed_lateness_hours), MAX_FUTURE
    )
    if why_not:
        raise InputRejected(why_not)
    actor = author or flows.default_actor()
    with _reader(settings) as reader:
        tenants = [r["tenant_id"] for r in reader.read("month_tenants", month=month, tenant=tenant)]
        if tenant and tenant not in tenants:
            tenants.append(tenant)  # a month without rows closes too: nothing may be booked in it
        already = {r["tenant_id"] for r in reader.read("period_closes", month=month)}
        digests = [periods.digest(reader.read, t, month) for t in tenants if t not in already]
    for t in sorted(already & set(tenants)):
        _say(f"{t} {month}: closed already")
    if not digests:
        return
    audit = flows.audit_row("period close", actor, why, {"month": month, "tenants": [d.tenant for d in digests]})
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    entries = [
        {
            "op": "close",
            "row": {
                "tenant_id": d.tenant,
                "month": month,
                "closed_at": now_ms,
                "closed_by": actor,
                "rows": d.rows,
                "digest": d.head,
                "totals": d.totals_json(),
                "audit_id": audit["audit_id"],
            },
        }
        for d in digests
    ]
    change = flows.Change("period close", audit, {0: entries})
    _send(settings, [change], timeout)
    for d in digests:
        click.echo(f"{d.tenant} {month}: closed, {d.rows} rows, digest {d.head}, totals {d.totals_json()}")


@period_group.command("verify")
@click.option("--month", default=None, help=MONTH_HELP + " Default: every closed month.")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.pass_obj
def period_verify(settings: Settings, month: str | None, tenant: str | None) -> None:
    """Recompute the digest of each closed month and compare it with the one kept when it was
    closed. Exit 1 when any differs: a row was added, removed or altered behind its back."""
    from streams.fixes import periods

    with _reader(settings) as reader:
        closes = reader.read("period_closes", month=month, tenant=tenant)
        changed = 0
        for c in closes:
            d = periods.digest(reader.read, c["tenant_id"], c["month"])
            same = d.head == c["digest"] and d.rows == int(c["rows"]) and d.totals_json() == c["totals"]
            changed += not same
            state = "unchanged" if same else f"CHANGED: {d.rows} rows now (closed with {c['rows']}), digest {d.head}"
            click.echo(f"{c['tenant_id']} {c['month']}: {state}; closed {c['closed_at']} by {c['closed_by']}")
    if not closes:
        click.echo("no closed month matches")
    if changed:
        raise InputRejected(f"{changed} closed month(s) changed since they were closed")


@click.command("audit")
@click.option("--since", default=None, callback=time_option, help="At or after (RFC 3339).")
@click.option("--until", default=None, callback=time_option, help="Before (RFC 3339).")
@click.option("--action", type=click.Choice(["redrive", "backfill", "correct", "rerate", "period close"]), default=None)
@click.option("--id", "audit_id", default=None, help="One change, by its audit id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def audit_command(
    settings: Settings,
    since: dt.datetime | None,
    until: dt.datetime | None,
    action: str | None,
    audit_id: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Every change made to the past (redrive, backfill, correct, rerate, period close): who,
    when, what and why, newest first."""

    with _reader(settings) as reader:
        rows = reader.read("audit", since=since, until=until, action=action, audit_id=audit_id, limit=limit)
    if fmt == "json":
        out = [{**r, "at": r["at"].isoformat() if hasattr(r["at"], "isoformat") else r["at"]} for r in rows]
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return
    for r in rows:
        at = r["at"].isoformat() if hasattr(r["at"], "isoformat") else r["at"]
        click.echo(f"{at}  {r['action']:<12} {r['actor']}  {r['audit_id']}  {r['reason']}  {r['details']}")
    if not rows:
        click.echo("no changes recorded")
