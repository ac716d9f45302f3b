"""A tenant's monthly statement and one event's explanation, assembled from the ledger's rows
(the named reads `statement_lines`, `statement_totals`, `statement_rejected`, `explain`;
streams/analyst/reads.py) and rendered as JSON, CSV or one self-contained HTML page.

Pure: rows in, a document out, a document in, text out. No I/O; the catalogs that name each
price's source are given loaded (streams/cli/finance.py finds them).

Money stays Decimal until it is written, as exact decimal text (schemas/money.py money_str); no
amount is rounded. A statement's total per currency is the sum of the ledger's `cost` over the
tenant's events of the month, the figure the rollups add up; its lines are the events' line
items summed per currency, model, dimension, unit, unit price, overlay rule and catalog
version. The engine makes an event's cost the exact sum of its line items (pricing/engine.py),
so the lines add up to the total; if they did not (a row written otherwise), the difference is
shown as an adjustment line and the total is still the ledger's. Totals are per currency, never
summed across currencies."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from pricing.catalog import Catalog
from pricing.errors import PricingError
from schemas.money import money_str
from streams.analyst.reads import month_bounds

ZERO = Decimal(0)
# The one rounding the engine applies (docs/pricing-and-catalogs.md, Money); every other
# quantity is billed as reported, every amount exactly.
ROUNDING = {
    "guardrail_text_units": "text units = ceil(characters / 1000), for input and output text separately",
}
DEAD_LETTER_MONTH = (
    "a dead-lettered input counts in the month of its own ts when its stored payload holds one in "
    "RFC 3339 with an offset, else in the month it was dead-lettered (rejected_at)"
)
SOURCES_NOTE = (
    "a price's source is read from a catalog on this machine whose content version equals the "
    "row's catalog_hash (MS_CATALOG_DIR or the shipped catalogs, MS_RERATE_CATALOGS_DIR); "
    "none when no such catalog is here"
)


# -- sources -------------------------------------------------------------------------------------


def price_source(catalog: Catalog, provider: str, model: str, dimension: str, ts: dt.datetime) -> str | None:
    """The `source` of the catalog entry that priced `dimension` of (provider, model) at ts: the
    product's, or for guardrail units the provider's guardrails product when the model has no
    such price of its own (as the engine prices them). None when the catalog has no entry."""
    try:
        product = catalog.lookup(provider, model, ts)
        if dimension == "guardrail_text_units" and dimension not in product.prices:
            product = catalog.lookup(provider, "guardrails", ts)
    except PricingError:
        return None
    return product.spec.source


def overlay_source(catalog: Catalog, tenant: str, rule_id: str) -> str | None:
    """The `source` (the contract, with its date) of the tenant's overlay rule `rule_id`."""
    overlays = catalog.overlays
    for rule in overlays.by_tenant.get(tenant, ()) if overlays is not None else ():
        if rule.id == rule_id:
            return str(rule.source)
    return None


def annotate_sources(rows: Iterable[dict[str, Any]], catalogs: Mapping[str, Catalog], tenant: str) -> None:
    """Add `source` and `overlay_source` to statement lines (at their first and last event's ts;
    two entries in force then: both, "; "-joined) or to explain items. `catalogs`: by content
    version (catalog_hash)."""
    for row in rows:
        catalog = catalogs.get(row.get("catalog_hash") or "")
        row.setdefault("source", None)
        row.setdefault("overlay_source", None)
        if catalog is None:
            continue
        times = [t for t in (row.get("first_ts"), row.get("last_ts"), row.get("ts")) if t is not None]
        found = [price_source(catalog, row["provider"], row["model"], row["dimension"], t) for t in times]
        sources = list(dict.fromkeys(s for s in found if s))
        row["source"] = "; ".join(sources) or None
        if row.get("price_overlay"):
            row["overlay_source"] = overlay_source(catalog, tenant, row["price_overlay"])


# -- explain -------------------------------------------------------------------------------------


def explain_items(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ledger row's line items, amounts as Decimal, with the context a source lookup needs."""
    items = []
    for it in orjson.loads(row["line_items"] or "[]"):
        amount = Decimal(it["cost"])
        items.append(
            {
                "dimension": it["dimension"],
                "quantity": Decimal(it["quantity"]),
                "unit": it.get("unit", ""),
                "unit_price": Decimal(it["unit_price"]),
                "amount": amount,
                "list_unit_price": Decimal(it.get("list_unit_price", it["unit_price"])),
                "list_amount": Decimal(it.get("list_cost", it["cost"])),
                "rounding": ROUNDING.get(it["dimension"]),
                # for annotate_sources
                "provider": row["provider"],
                "model": row["model"],
                "ts": row["ts"],
                "catalog_hash": row["catalog_hash"],
                "price_overlay": row["price_overlay"],
            }
        )
    return items


def explain(row: Mapping[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """One counted event, "why did this request cost that?": the ledger row and its line items
    (explain_items, sources annotated or not). `line_items_total` is the items' sum; when it is
    not the ledger's cost, `difference` says by how much (the cost shown is the ledger's)."""
    total = sum((i["amount"] for i in items), ZERO)
    list_total = sum((i["list_amount"] for i in items), ZERO)
    keep = ("dimension", "quantity", "unit", "unit_price", "amount", "list_unit_price", "list_amount")
    doc: dict[str, Any] = {
        k: row[k]
        for k in (
            "tenant_id",
            "event_id",
            "user_id",
            "provider",
            "model",
            "region",
            "mode",
            "ts",
            "currency",
            "cost",
            "list_cost",
            "price_overlay",
            "catalog_version",
            "catalog_hash",
            "estimated",
        )
    }
    doc["usage"] = orjson.loads(row["usage"]) if row.get("usage") else None
    doc["source_position"] = {
        "partition": row["src_partition"],
        "offset": row["src_offset"],
        "index": row["src_index"],
    }
    doc["line_items"] = [
        {
            **{k: i[k] for k in keep},
            "rounding": i["rounding"],
            "source": i.get("source"),
            "overlay_source": i.get("overlay_source"),
        }
        for i in items
    ]
    doc["line_items_total"] = total
    doc["difference"] = row["cost"] - total
    doc["list_difference"] = row["list_cost"] - list_total
    return doc


# -- statement -----------------------------------------------------------------------------------


def assemble(
    tenant: str,
    month: str,
    lines: list[dict[str, Any]],
    totals: list[dict[str, Any]],
    rollups: list[dict[str, Any]] | None,
    rejected: int,
    *,
    generated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The statement of `tenant` for `month` (YYYY-MM, UTC).

    lines: statement_lines rows (optionally with `source`, `overlay_source`: annotate_sources);
    totals: statement_totals rows (per currency: cost, list_cost, events, overlaid);
    rollups: rows with currency and cost whose sum per currency is the rollups' total for the
    tenant and month (the `spend` read by user over that month), or None when not read;
    rejected: the tenant's dead-lettered inputs of the month (statement_rejected)."""
    start, end = month_bounds(month)
    ledger = {t["currency"]: t for t in totals}
    rolled: dict[str, Decimal] | None = None
    if rollups is not None:
        rolled = {}
        for r in rollups:
            rolled[r["currency"]] = rolled.get(r["currency"], ZERO) + Decimal(r["cost"])
    currencies = sorted({*ledger, *(ln["currency"] for ln in lines), *(rolled or {})})
    sections = []
    versions: dict[tuple[str, str], None] = {}
    overlays: dict[str, str | None] = {}
    for cur in currencies:
        models: dict[tuple[str, str], dict[str, Any]] = {}
        for ln in (x for x in lines if x["currency"] == cur):
            versions[(ln["catalog_version"], ln["catalog_hash"])] = None
            if ln["price_overlay"]:
                overlays[ln["price_overlay"]] = overlays.get(ln["price_overlay"]) or ln.get("overlay_source")
            m = models.setdefault(
                (ln["provider"], ln["model"]),
                {"provider": ln["provider"], "model": ln["model"], "amount": ZERO, "list_amount": ZERO, "lines": []},
            )
            m["amount"] += ln["amount"]
            m["list_amount"] += ln["list_amount"]
            m["lines"].append(
                {
                    "dimension": ln["dimension"],
                    "unit": ln["unit"],
                    "quantity": ln["quantity"],
                    "unit_price": Decimal(ln["unit_price"]),
                    "amount": ln["amount"],
                    "list_unit_price": Decimal(ln["list_unit_price"] or ln["unit_price"]),
                    "list_amount": ln["list_amount"],
                    "items": ln["items"],
                    "price_overlay": ln["price_overlay"],
                    "catalog_version": ln["catalog_version"],
                    "catalog_hash": ln["catalog_hash"],
                    "rounding": ROUNDING.get(ln["dimension"]),
                    "source": ln.get("source"),
                    "overlay_source": ln.get("overlay_source"),
                }
            )
        items_total = sum((m["amount"] for m in models.values()), ZERO)
        items_list_total = sum((m["list_amount"] for m in models.values()), ZERO)
        t = ledger.get(cur, {"cost": ZERO, "list_cost": ZERO, "events": 0, "overlaid": 0})
        total, list_total = Decimal(t["cost"]), Decimal(t["list_cost"])
        rollup_total = None if rolled is None else rolled.get(cur, ZERO)
        sections.append(
            {
                "currency": cur,
                "models": sorted(models.values(), key=lambda m: (m["provider"], m["model"])),
                "line_items_total": items_total,
                "list_line_items_total": items_list_total,
                # the ledger's cost minus its line items' sum: 0 unless a row's items do not add up
                "adjustment": total - items_total,
                "list_adjustment": list_total - items_list_total,
                "events": int(t["events"]),
                "overlaid_events": int(t["overlaid"]),
                "list_total": list_total,
                "overlay_difference": total - list_total,  # what the overlays changed (< 0: saved)
                "total": total,
                "rollup_total": rollup_total,
                "matches_rollups": None if rollup_total is None else rollup_total == total,
            }
        )
    return {
        "tenant_id": tenant,
        "month": month,
        "period": {"from": start, "until": end},
        "generated_at": generated_at or dt.datetime.now(dt.UTC).replace(microsecond=0),
        "currencies": sections,
        "catalog_versions": [{"catalog_version": v, "catalog_hash": h} for v, h in sorted(versions)],
        "price_overlays": [{"rule": r, "source": s} for r, s in sorted(overlays.items())],
        "dead_lettered": {"count": int(rejected), "rule": DEAD_LETTER_MONTH},
        "notes": [
            "amounts are exact (no rounding); totals are per currency, never summed across currencies",
            "total = the sum of the ledger's cost over the tenant's events of the month (ledger FINAL), "
            "which the rollups (spend_by_user_month) add up",
            SOURCES_NOTE,
        ],
    }


# -- rendering -----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A document's values as JSON takes them: Decimal as exact text, times in ISO 8601."""
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_json(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(plain(dict(doc)), option=orjson.OPT_INDENT_2) + b"\n"


CSV_COLUMNS = [
    "record",
    "currency",
    "provider",
    "model",
    "dimension",
    "unit",
    "quantity",
    "unit_price",
    "amount",
    "list_unit_price",
    "list_amount",
    "items",
    "events",
    "price_overlay",
    "catalog_version",
    "catalog_hash",
    "source",
    "overlay_source",
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: Any) -> str:
    """Text a spreadsheet must not read as a formula (an id may start with = + - @): quoted
    with a leading apostrophe, as OWASP advises for CSV."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(doc: Mapping[str, Any]) -> str:
    """One row per statement line (`line`), then per currency an `adjustment` row when the lines
    do not add up to the ledger's cost, and a `total` row; last, `dead_lettered` (its count in
    `events`). Amounts are exact decimal text; text cells never start a formula."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)

    def row(record: str, cur: str, **cells: Any) -> None:
        money = {"quantity", "unit_price", "amount", "list_unit_price", "list_amount", "items", "events"}
        values = []
        for col in CSV_COLUMNS:
            v = record if col == "record" else cur if col == "currency" else cells.get(col)
            values.append(plain(v) if col in money and v is not None else _text_cell(v))
        out.writerow(values)

    for sec in doc["currencies"]:
        cur = sec["currency"]
        for m in sec["models"]:
            for ln in m["lines"]:
                row("line", cur, provider=m["provider"], model=m["model"], **ln)
        if sec["adjustment"] or sec["list_adjustment"]:
            row("adjustment", cur, amount=sec["adjustment"], list_amount=sec["list_adjustment"])
        row("total", cur, amount=sec["total"], list_amount=sec["list_total"], events=sec["events"])
    row("dead_lettered", "", events=doc["dead_lettered"]["count"])
    return buf.getvalue()


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:2rem auto;max-width:1200px;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.meta{color:#57606a;margin:0 0 1rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.model td{background:#f6f8fa;font-weight:600}tr.total td{font-weight:700;border-top:2px solid #1b1f24}
.small{color:#57606a;font-size:.85em}.warn{color:#9a3412;font-weight:600}code{font-size:.9em}
@media print{body{margin:0}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(plain(value)), quote=True)


def to_html(doc: Mapping[str, Any]) -> str:
    """One self-contained page (inline style, no script, nothing fetched: a Content Security
    Policy forbids it); every value escaped."""
    p = doc["period"]
    sources: dict[str, int] = {}  # each source once, numbered as first cited

    def cite(source: str | None) -> str:
        if not source:
            return "not on this machine"
        n = sources.setdefault(source, len(sources) + 1)
        return f'<a title="{_e(source)}">[{n}]</a>'

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Statement {_e(doc['tenant_id'])} {_e(doc['month'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Statement for {_e(doc['tenant_id'])}: {_e(doc['month'])}</h1>",
        f'<p class="meta">Usage from {_e(p["from"])} to {_e(p["until"])} (UTC, end exclusive); '
        f"generated {_e(doc['generated_at'])}.</p>",
    ]
    if not doc["currencies"]:
        parts.append("<p>No counted events this month.</p>")
    for sec in doc["currencies"]:
        cur = _e(sec["currency"])
        parts.append(f"<h2>{cur}</h2>")
        parts.append(
            "<table><thead><tr><th>Model</th><th>Dimension</th><th>Unit</th><th>Quantity</th>"
            f"<th>Unit price ({cur})</th><th>Amount ({cur})</th><th>List unit price</th><th>List amount</th>"
            "<th>Overlay</th><th>Catalog</th><th>Source</th></tr></thead><tbody>"
        )
        for m in sec["models"]:
            parts.append(
                f'<tr class="model"><td colspan="5">{_e(m["provider"])} / {_e(m["model"])}</td>'
                f'<td class="n">{_e(m["amount"])}</td><td></td><td class="n">{_e(m["list_amount"])}</td>'
                '<td colspan="3"></td></tr>'
            )
            for ln in m["lines"]:
                rounding = f'<br><span class="small">{_e(ln["rounding"])}</span>' if ln["rounding"] else ""
                overlay = _e(ln["price_overlay"])
                if ln["overlay_source"]:
                    overlay += f'<br><span class="small">{_e(ln["overlay_source"])}</span>'
                parts.append(
                    f"<tr><td></td><td>{_e(ln['dimension'])}{rounding}</td><td>{_e(ln['unit'])}</td>"
                    f'<td class="n">{_e(ln["quantity"])}</td><td class="n">{_e(ln["unit_price"])}</td>'
                    f'<td class="n">{_e(ln["amount"])}</td><td class="n">{_e(ln["list_unit_price"])}</td>'
                    f'<td class="n">{_e(ln["list_amount"])}</td><td>{overlay}</td>'
                    f'<td>{_e(ln["catalog_version"])}<br><code class="small">{_e(ln["catalog_hash"])}</code></td>'
                    f'<td class="small">{cite(ln["source"])}</td></tr>'
                )
        if sec["adjustment"] or sec["list_adjustment"]:
            parts.append(
                '<tr><td colspan="5">Adjustment: the ledger\'s costs minus their line items</td>'
                f'<td class="n">{_e(sec["adjustment"])}</td><td></td><td class="n">{_e(sec["list_adjustment"])}</td>'
                '<td colspan="3"></td></tr>'
            )
        parts.append(
            f'<tr class="total"><td colspan="5">Total {cur} ({_e(sec["events"])} '
            f"event{'' if sec['events'] == 1 else 's'})</td>"
            f'<td class="n">{_e(sec["total"])}</td><td></td><td class="n">{_e(sec["list_total"])}</td>'
            '<td colspan="3"></td></tr></tbody></table>'
        )
        if sec["overlaid_events"]:
            parts.append(
                f"<p>{_e(sec['overlaid_events'])} events priced with the tenant's prices: list price "
                f"{_e(sec['list_total'])}, the tenant's {_e(sec['total'])} (difference "
                f"{_e(sec['overlay_difference'])} {cur}).</p>"
            )
        if sec["matches_rollups"] is False:
            parts.append(
                f'<p class="warn">The rollups hold {_e(sec["rollup_total"])} {cur} for this month, not '
                f"{_e(sec['total'])}: events may still be on their way (meterstream status).</p>"
            )
    if sources:
        parts.append("<h2>Price sources</h2><ol>")
        parts += [f"<li>{_e(s)}</li>" for s in sources]
        parts.append("</ol>")
    parts.append("<h2>Catalog versions</h2><ul>")
    parts += [
        f"<li>{_e(v['catalog_version'])} <code>{_e(v['catalog_hash'])}</code></li>" for v in doc["catalog_versions"]
    ]
    parts.append("</ul>")
    if doc["price_overlays"]:
        parts.append("<h2>Price overlays</h2><ul>")
        parts += [
            f"<li>{_e(o['rule'])}: {_e(o['source'] or 'source not on this machine')}</li>"
            for o in doc["price_overlays"]
        ]
        parts.append("</ul>")
    dl = doc["dead_lettered"]
    parts.append(
        f'<h2>Dead-lettered inputs</h2><p>{_e(dl["count"])} (not billed). <span class="small">{_e(dl["rule"])}.</span></p>'
    )
    parts.append('<h2>Notes</h2><ul class="small">' + "".join(f"<li>{_e(n)}</li>" for n in doc["notes"]) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
