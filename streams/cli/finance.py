"""`meterstream explain EVENT_ID` and `meterstream statement --tenant T --month YYYY-MM`: why one
request cost what it did, and a tenant's bill for a UTC month, from the ledger.

Both read through streams/analyst/reader.py (the store, or the worker holding the embedded
engine: named reads, no SQL on the wire) and assemble with streams/analyst/statement.py. Each
price's source comes from a catalog on this machine whose content version is the row's
catalog_hash (catalogs_for)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from schemas.errors import InputRejected
from schemas.money import money_str
from schemas.validate import quoted, visible
from streams.settings import Settings

MONTH = re.compile(r"^2[0-9]{3}-(0[1-9]|1[0-2])$")


def catalogs_for(settings: Settings, hashes: Iterable[str]) -> dict[str, Any]:
    """The catalogs on this machine whose content version (pricing/bundle.py bundle_hash) is one
    of `hashes`, by version: the worker's own (MS_CATALOG_DIR), the shipped ones, and each
    directory of MS_RERATE_CATALOGS_DIR. One that does not load is passed over."""
    from pricing.bundle import bundle_hash, load_bundle, read_bundle
    from pricing.errors import CatalogError

    wanted = {h for h in hashes if h}
    found: dict[str, Any] = {}
    dirs: list[Path | None] = [settings.catalog_dir, None]  # None: the shipped catalogs
    root = settings.rerate_catalogs
    if wanted and root.is_dir():
        dirs += sorted(p for p in root.iterdir() if p.is_dir())
    for d in dirs:
        if wanted <= found.keys():
            break
        try:
            files = read_bundle(d)
            version = bundle_hash(files)
            if version in wanted and version not in found:
                found[version] = load_bundle(files)
        except (CatalogError, OSError, UnicodeDecodeError):
            continue
    return found


def _dead_letters(event_id: str, tenant: str | None, dead: list[dict[str, Any]]) -> str:
    whose = f" of tenant {quoted(tenant)}" if tenant else ""
    said = f"no counted event {quoted(event_id)}{whose}"
    if not dead:
        return said
    first = dead[0]
    where = f"tenant {quoted(first['tenant_id'])}, " if first.get("tenant_id") else ""
    at = first["rejected_at"].isoformat() if hasattr(first["rejected_at"], "isoformat") else first["rejected_at"]
    times = int(first.get("times") or len(dead))
    how = "it was dead-lettered" if times == 1 else f"it was dead-lettered {times} times, first"
    return f"{said}: {how} ({where}{at}): {visible(first['reason'])}"


@click.command("explain")
@click.argument("event_id")
@click.option("--tenant", default=None, help="The event's tenant (needed when several tenants use the id).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def explain_command(settings: Settings, event_id: str, tenant: str | None, fmt: str) -> None:
    """Why one event cost what it did: its ledger row (cost, list cost, overlay, catalog
    version) and its line items, each with its unit price, amount and the price's source."""
    from streams.analyst import statement
    from streams.analyst.reader import Reader

    with Reader(settings) as reader:
        rows = reader.read("explain", event_id=event_id, tenant=tenant)
        if not rows:
            dead = reader.read("rejected_event", event_id=event_id, tenant=tenant)
            raise InputRejected(_dead_letters(event_id, tenant, dead))
        if int(rows[0]["tenants"]) > 1:
            raise InputRejected(
                f"event {quoted(event_id)} is counted for {int(rows[0]['tenants'])} tenants: say which with --tenant"
            )
        later = reader.read("event_rows", tenant=rows[0]["tenant_id"], event_ids=[event_id])[1:]
    row = rows[0]
    items = statement.explain_items(row)
    statement.annotate_sources(items, catalogs_for(settings, [row["catalog_hash"]]), row["tenant_id"])
    doc = statement.explain(row, items)
    # its corrections, voids and re-ratings (docs/fixing-the-past.md): what each changed
    doc["adjustments"] = [
        {"adjustment": int(r["adjustment"]), "entry": r["entry"], "audit_id": r["audit_id"], "cost": r["cost"]}
        for r in later
    ]
    if fmt == "json":
        sys.stdout.buffer.write(statement.to_json(doc))
        return
    _explain_table(doc)
    for a in doc["adjustments"]:
        click.echo(
            f"adjustment {a['adjustment']} ({a['entry']}, audit {a['audit_id']}): {money_str(a['cost'])} {doc['currency']}"
        )
    if doc["adjustments"]:
        now = sum((a["cost"] for a in doc["adjustments"]), row["cost"])
        click.echo(f"the event costs {money_str(now)} {doc['currency']} now")


def _explain_table(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from streams.analyst.statement import plain

    console = Console()
    head = Table(show_header=False, box=None)
    head.add_column(Text("field"), style="bold")
    head.add_column(Text("value"))
    shown = ("tenant_id", "event_id", "user_id", "provider", "model", "region", "mode", "ts", "currency")
    for k in shown:
        head.add_row(Text(k), Text(str(plain(doc[k]) or "")))
    cost = f"{money_str(doc['cost'])} {doc['currency']}"
    head.add_row(Text("cost"), Text(cost))
    if doc["price_overlay"]:
        head.add_row(Text("list_cost"), Text(f"{money_str(doc['list_cost'])} {doc['currency']}"))
        head.add_row(Text("price_overlay"), Text(doc["price_overlay"]))
    head.add_row(Text("catalog"), Text(f"{doc['catalog_version']} {doc['catalog_hash']}"))
    if doc["estimated"]:
        head.add_row(Text("estimated"), Text("tokens counted from text, not reported"))
    console.print(head)
    items = Table()
    cols = ["dimension", "quantity", "unit", "unit_price", "amount"]
    if doc["price_overlay"]:
        cols += ["list_unit_price", "list_amount"]
    for c in cols:
        items.add_column(Text(c), justify="left" if c in ("dimension", "unit") else "right")
    for it in doc["line_items"]:
        items.add_row(*(Text("" if it[c] is None else str(plain(it[c]))) for c in cols))
    console.print(items)
    notes = {f"rounding ({it['dimension']}): {it['rounding']}" for it in doc["line_items"] if it["rounding"]}
    notes |= {f"price source: {it['source'] or 'not on this machine'}" for it in doc["line_items"]}
    notes |= {f"overlay source: {it['overlay_source']}" for it in doc["line_items"] if it["overlay_source"]}
    for note in sorted(notes):
        console.print(Text(note))
    if doc["difference"]:
        console.print(
            Text(
                f"the line items add up to {money_str(doc['line_items_total'])}; the ledger's cost "
                f"{money_str(doc['cost'])} differs by {money_str(doc['difference'])}"
            )
        )


def month_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not MONTH.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a month: give YYYY-MM, e.g. 2026-11")
    return value


@click.command("statement")
@click.option("--tenant", required=True, help="The tenant billed.")
@click.option("--month", required=True, callback=month_option, help="The UTC calendar month, YYYY-MM.")
@click.option("--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to FILE (default: stdout)."
)
@click.pass_obj
def statement_command(settings: Settings, tenant: str, month: str, fmt: str, out: Path | None) -> None:
    """A tenant's bill for a UTC month from the ledger: line items per model and dimension
    (quantity, unit price, amount, list price where the tenant has its own), catalog versions
    and each price's source, totals per currency (equal to the rollups'), and how many of the
    tenant's inputs were dead-lettered."""
    from streams.analyst import statement
    from streams.analyst.reader import Reader
    from streams.analyst.reads import month_bounds

    start, end = month_bounds(month)
    asked = {"tenant": tenant, "month": month}
    with Reader(settings) as reader:
        lines = reader.read("statement_lines", **asked)
        totals = reader.read("statement_totals", **asked)
        rollups = reader.read("spend", by="user", window="month", tenant=tenant, since=start, until=end)
        rejected = int(reader.read("statement_rejected", **asked)[0]["rejected"])
    statement.annotate_sources(lines, catalogs_for(settings, {ln["catalog_hash"] for ln in lines}), tenant)
    doc = statement.assemble(tenant, month, lines, totals, rollups, rejected)
    if fmt == "json":
        body = statement.to_json(doc)
    else:
        body = (statement.to_csv(doc) if fmt == "csv" else statement.to_html(doc)).encode()
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        try:
            out.write_bytes(body)
        except OSError as exc:
            raise InputRejected(f"cannot write {out}: {exc.strerror or exc}") from None
        click.echo(f"wrote {out}", err=True)
    if not doc["currencies"]:
        click.echo(f"no counted events for tenant {quoted(tenant)} in {month}", err=True)
    for sec in doc["currencies"]:
        if sec["matches_rollups"] is False:
            click.echo(
                f"warning: {sec['currency']}: the rollups hold {money_str(sec['rollup_total'])}, the ledger "
                f"{money_str(sec['total'])}: events may still be on their way (meterstream status)",
                err=True,
            )
