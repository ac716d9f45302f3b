"""Statements and explain: the pure assembly (grouping, totals per currency, list price against
the tenant's, an adjustment when items do not add up, escaping in HTML and CSV), then the named
reads and the commands on the real engine (chDB) over ledger rows the pricing engine made."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from pricing.bundle import load_catalog
from pricing.catalog import SHIPPED_CATALOGS
from pricing.rating import Rejection, rate
from schemas.records import ledger_row
from streams.analyst import statement
from streams.cli.main import main
from streams.settings import Settings
from streams.storage.chdb_store import ChdbStore
from streams.storage.migrations import migrate

UTC = dt.UTC
D = Decimal
MARKUP = '<img src=x onerror="alert(1)">&'


def line(cur: str, model: str, dim: str, qty: str, price: str, amount: str, **kw: object) -> dict:
    row = {
        "currency": cur,
        "provider": kw.pop("provider", "openai"),
        "model": model,
        "price_overlay": "",
        "catalog_version": "openai-usd@1",
        "catalog_hash": "sha256:00",
        "dimension": dim,
        "unit": "1M input tokens",
        "unit_price": price,
        "list_unit_price": "",
        "quantity": D(qty),
        "amount": D(amount),
        "list_amount": D(amount),
        "items": 1,
        "first_ts": dt.datetime(2026, 3, 2, tzinfo=UTC),
        "last_ts": dt.datetime(2026, 3, 3, tzinfo=UTC),
    }
    row.update(kw)
    return row


def total(cur: str, cost: str, list_cost: str | None = None, events: int = 1, overlaid: int = 0) -> dict:
    return {"currency": cur, "cost": D(cost), "list_cost": D(list_cost or cost), "events": events, "overlaid": overlaid}


# -- the pure assembly ---------------------------------------------------------------------------


def test_lines_are_grouped_per_model_and_totals_kept_per_currency():
    lines = [
        line("USD", "gpt-4o", "input_tokens", "1000", "2.5", "0.0025", items=2),
        line("USD", "gpt-4o", "output_tokens", "10", "10", "0.0001"),
        line("USD", "gpt-4o-mini", "input_tokens", "100", "0.15", "0.000015"),
        line("CNY", "qwen-plus", "input_tokens", "7", "0.0008", "0.0000056", provider="bailian"),
    ]
    totals = [total("CNY", "0.0000056"), total("USD", "0.002615", events=3)]
    rollups = [
        {"currency": "USD", "cost": D("0.002")},
        {"currency": "USD", "cost": D("0.000615")},
        {"currency": "CNY", "cost": D("0.0000056")},
    ]
    doc = statement.assemble("acme", "2026-03", lines, totals, rollups, rejected=4)
    assert [s["currency"] for s in doc["currencies"]] == ["CNY", "USD"]  # never one sum across them
    cny, usd = doc["currencies"]
    assert [m["model"] for m in usd["models"]] == ["gpt-4o", "gpt-4o-mini"]
    gpt = usd["models"][0]
    assert gpt["amount"] == D("0.0026") and [ln["dimension"] for ln in gpt["lines"]] == [
        "input_tokens",
        "output_tokens",
    ]
    assert usd["total"] == D("0.002615") == usd["line_items_total"] and usd["adjustment"] == 0
    assert usd["matches_rollups"] is True and usd["rollup_total"] == D("0.002615")
    assert cny["total"] == D("0.0000056") and cny["matches_rollups"] is True
    assert doc["period"] == {"from": dt.datetime(2026, 3, 1, tzinfo=UTC), "until": dt.datetime(2026, 4, 1, tzinfo=UTC)}
    assert doc["dead_lettered"]["count"] == 4
    plain = json.loads(statement.to_json(doc))
    assert plain["currencies"][1]["total"] == "0.002615"  # exact decimal text, never a float
    assert plain["currencies"][1]["models"][0]["lines"][0]["quantity"] == "1000"


def test_december_ends_at_the_next_new_year():
    doc = statement.assemble("acme", "2026-12", [], [], None, 0)
    assert doc["period"]["until"] == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert doc["currencies"] == []


def test_overlay_shows_list_price_beside_the_tenants():
    lines = [
        line(
            "USD",
            "gpt-4o",
            "input_tokens",
            "1000000",
            "2",
            "2",
            list_unit_price="2.5",
            list_amount=D("2.5"),
            price_overlay="acme-gpt-4o-contract",
            overlay_source="contract 2026-01",
        ),
        line("USD", "gpt-4o", "output_tokens", "1000", "10", "0.01"),
    ]
    doc = statement.assemble("acme", "2026-03", lines, [total("USD", "2.01", "2.51", 2, 1)], None, 0)
    [usd] = doc["currencies"]
    first, second = usd["models"][0]["lines"]
    assert (first["unit_price"], first["list_unit_price"], first["amount"], first["list_amount"]) == (
        D("2"),
        D("2.5"),
        D("2"),
        D("2.5"),
    )
    assert second["list_unit_price"] == second["unit_price"] == D("10")  # no overlay: list = tenant's
    assert usd["list_total"] == D("2.51") and usd["overlay_difference"] == D("-0.5") and usd["overlaid_events"] == 1
    assert usd["matches_rollups"] is None  # rollups not given
    assert doc["price_overlays"] == [{"rule": "acme-gpt-4o-contract", "source": "contract 2026-01"}]
    page = statement.to_html(doc)
    assert "acme-gpt-4o-contract" in page and "contract 2026-01" in page and "2.51" in page


def test_items_that_do_not_add_up_show_an_adjustment_and_the_total_stays_the_ledgers():
    lines = [line("USD", "gpt-4o", "input_tokens", "3", "1", "0.000003")]
    doc = statement.assemble("acme", "2026-03", lines, [total("USD", "0.00001")], None, 0)
    [usd] = doc["currencies"]
    assert usd["total"] == D("0.00001") and usd["line_items_total"] == D("0.000003")
    assert usd["adjustment"] == D("0.000007")
    rows = list(csv.DictReader(io.StringIO(statement.to_csv(doc))))
    assert [r["record"] for r in rows] == ["line", "adjustment", "total", "dead_lettered"]
    assert rows[1]["amount"] == "0.000007" and rows[2]["amount"] == "0.00001"
    assert sum(D(r["amount"]) for r in rows if r["record"] in ("line", "adjustment")) == D(rows[2]["amount"])


def test_a_rollup_that_differs_is_flagged():
    doc = statement.assemble(
        "acme", "2026-03", [line("USD", "m", "input_tokens", "1", "1", "1")], [total("USD", "1")], [], 0
    )
    [usd] = doc["currencies"]
    assert usd["rollup_total"] == 0 and usd["matches_rollups"] is False
    assert "The rollups hold 0 USD" in statement.to_html(doc)


def test_html_is_escaped_and_self_contained():
    lines = [line("USD", MARKUP, "input_tokens", "1", "1", "1", unit="<b>1 unit</b>", source="<script>x</script>")]
    doc = statement.assemble(MARKUP, "2026-03", lines, [total("USD", "1")], None, 0)
    page = statement.to_html(doc)
    for raw in (MARKUP, "<b>1 unit</b>", "<script>"):
        assert raw not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    tags: list[tuple[str, list]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            tags.append((tag, attrs))

    Tags().feed(page)
    assert {t for t, _ in tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table"} | {
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
        "br",
        "code",
        "ul",
        "ol",
        "li",
        "a",
    }  # no script, img, link, iframe: only what the page itself writes
    assert not [a for _, attrs in tags for a, _ in attrs if a in ("src", "href") or a.startswith("on")]
    assert "default-src 'none'" in page  # nothing may be fetched, should anything try
    assert "<li>&lt;script&gt;x&lt;/script&gt;</li>" in page  # the source, listed once and cited [1]


def test_csv_has_a_row_per_line_item_and_no_formula_cells():
    lines = [
        line("USD", "=HYPERLINK(1)", "input_tokens", "5", "1", "0.000005"),
        line("USD", "gpt-4o", "output_tokens", "2", "1", "0.000002", unit="-1 unit"),
    ]
    doc = statement.assemble("@acme", "2026-03", lines, [total("USD", "0.000007", events=2)], None, 3)
    rows = list(csv.DictReader(io.StringIO(statement.to_csv(doc))))
    assert [r["record"] for r in rows] == ["line", "line", "total", "dead_lettered"]
    assert rows[0]["model"] == "'=HYPERLINK(1)" and rows[1]["unit"] == "'-1 unit"
    assert rows[0]["amount"] == "0.000005" and rows[2]["amount"] == "0.000007" and rows[2]["events"] == "2"
    assert rows[3]["events"] == "3"


# -- on the real engine --------------------------------------------------------------------------

OVERLAY = """
tenant_id: acme
rules:
  - id: acme-haiku-15off
    provider: bedrock
    models: [anthropic.claude-3-haiku-20240307-v1:0]
    effective_from: "2026-01-01T00:00:00Z"
    source: "order form 2026-01, section 4"
    discount: "0.15"
  - id: acme-gpt-4o-contract
    provider: openai
    models: [gpt-4o]
    effective_from: "2026-01-01T00:00:00Z"
    source: "contract 2026-01"
    prices:
      - {dimension: input_tokens, per: 1000000, price: "2.00"}
"""


def ev(eid: str, tenant: str, ts: str, provider: str, model: str, usage: dict, **kw: object) -> bytes:
    doc = {"event_id": eid, "ts": ts, "tenant_id": tenant, "user_id": kw.pop("user", "u1"), "provider": provider}
    return orjson.dumps({**doc, "model": model, "usage": usage, **kw})


EVENTS = [
    ev("e1", "acme", "2026-03-02T10:00:00Z", "openai", "gpt-4o", {"input_tokens": 1200, "output_tokens": 300}),
    ev("e2", "acme", "2026-03-05T10:00:00Z", "openai", "gpt-4o", {"input_tokens": 800, "output_tokens": 77}, user="u2"),
    ev(
        "e3",
        "acme",
        "2026-03-09T10:00:00Z",
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"input_tokens": 5000, "output_tokens": 900},
        region="us-east-1",
    ),
    ev("e4", "acme", "2026-03-31T23:59:59.999Z", "bailian", "qwen-plus", {"input_tokens": 999, "output_tokens": 1}),
    ev(
        "e5",
        "acme",
        "2026-03-20T10:00:00Z",
        "bedrock",
        "guardrails",
        {"guardrail": {"policies": ["content_filter", "denied_topics"], "input_chars": 1001, "output_chars": 5}},
    ),
    ev("e6", "acme", "2026-04-01T00:00:00Z", "openai", "gpt-4o", {"input_tokens": 5}),  # April
    ev("e7", "acme", "2026-02-28T23:59:59.999Z", "openai", "gpt-4o", {"input_tokens": 5}),  # February
    ev("e1", "other", "2026-03-02T10:00:00Z", "openai", "gpt-4o-mini", {"input_tokens": 10}),  # the same id
]


@pytest.fixture
def ledger_store(tmp_path):
    """A migrated chDB whose ledger holds EVENTS priced by the engine with a catalog that gives
    acme its own prices, month rollups equal to them, and three dead letters."""
    catalog_dir = tmp_path / "catalog"
    shutil.copytree(SHIPPED_CATALOGS, catalog_dir)
    (catalog_dir / "overlays").mkdir()
    (catalog_dir / "overlays" / "acme.yaml").write_text(OVERLAY)
    catalog = load_catalog(catalog_dir)
    priced, ledger = {}, []
    rollup: dict[tuple, Decimal] = defaultdict(Decimal)
    for i, raw in enumerate(EVENTS):
        p = rate(raw, catalog, now=dt.datetime(2026, 12, 1, tzinfo=UTC))
        assert not isinstance(p, Rejection), p
        ts = dt.datetime.fromisoformat(p["ts"])
        priced[(p["tenant_id"], p["event_id"])] = p
        ledger.append({**ledger_row(p, ts, 0, i, version=i + 1), "ingested_at": ts})
        month = dt.datetime(ts.year, ts.month, 1, tzinfo=UTC)
        rollup[(month, p["tenant_id"], p["user_id"], p["currency"])] += Decimal(p["cost"])
    dead = [
        # in March by the event's own ts, though dead-lettered in May
        ("acme", "d1", '{"ts":"2026-03-04T00:00:00+00:00"}', dt.datetime(2026, 5, 1, tzinfo=UTC)),
        # no ts with an offset: the month it was dead-lettered (March)
        ("acme", "d2", '{"ts":"2026-01-01T00:00:00"}', dt.datetime(2026, 3, 15, tzinfo=UTC)),
        ("acme", "d3", '{"ts":"2026-04-02T00:00:00Z"}', dt.datetime(2026, 3, 15, tzinfo=UTC)),  # April
        ("other", "d1", '{"ts":"2026-03-04T00:00:00Z"}', dt.datetime(2026, 3, 5, tzinfo=UTC)),
    ]
    with ChdbStore(tmp_path / "data" / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        store.insert("ledger", ledger)
        store.insert(
            "rollup_user_month",
            [
                {
                    "window_start": m,
                    "tenant_id": t,
                    "user_id": u,
                    "currency": c,
                    "src_partition": 0,
                    "cost": cost,
                    "events": 1,
                    **dict.fromkeys(
                        (
                            "input_tokens",
                            "output_tokens",
                            "cached_input_tokens",
                            "cache_write_tokens",
                            "images",
                            "guardrail_units",
                        ),
                        0,
                    ),
                    "version": 1,
                }
                for (m, t, u, c), cost in rollup.items()
            ],
        )
        store.insert(
            "rejected_events",
            [
                {
                    "src_topic": "ev",
                    "src_partition": 1,
                    "src_offset": n,
                    "src_index": 0,
                    "event_id": eid,
                    "tenant_id": t,
                    "reason": f"unknown model 'gpt-17-ultra' for provider 'openai' ({eid})",
                    "payload": payload,
                    "rejected_at": at,
                }
                for n, (t, eid, payload, at) in enumerate(dead)
            ],
        )
    return tmp_path, priced, catalog


def run(args: list[str], tmp_path: Path):
    env = {"MS_DATA_DIR": str(tmp_path / "data"), "MS_CATALOG_DIR": str(tmp_path / "catalog")}
    return CliRunner().invoke(main, args, env=env, terminal_width=200)


def test_statement_on_the_engine_adds_up_to_the_ledger_and_the_rollups(ledger_store):
    tmp_path, priced, catalog = ledger_store
    res = run(["statement", "--tenant", "acme", "--month", "2026-03", "--format", "json"], tmp_path)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    march = [p for (t, _), p in priced.items() if t == "acme" and p["ts"].startswith("2026-03")]
    assert len(march) == 5
    want: dict[str, list[Decimal]] = defaultdict(lambda: [D(0), D(0)])
    for p in march:
        want[p["currency"]][0] += D(p["cost"])
        want[p["currency"]][1] += D(p["list_cost"])
    got = {s["currency"]: s for s in doc["currencies"]}
    assert set(got) == {"USD", "CNY"}
    for cur, (cost, list_cost) in want.items():
        s = got[cur]
        assert D(s["total"]) == cost == D(s["rollup_total"]) and s["matches_rollups"] is True
        assert D(s["list_total"]) == list_cost and D(s["adjustment"]) == 0
        assert sum(D(ln["amount"]) for m in s["models"] for ln in m["lines"]) == cost
        assert sum(D(ln["list_amount"]) for m in s["models"] for ln in m["lines"]) == list_cost
    usd = got["USD"]
    assert usd["events"] == 4 and usd["overlaid_events"] == 3  # e1, e2 (contract), e3 (discount)
    assert D(usd["list_total"]) > D(usd["total"])
    gpt = next(m for m in usd["models"] if m["model"] == "gpt-4o")
    inp = next(ln for ln in gpt["lines"] if ln["dimension"] == "input_tokens")
    assert inp["quantity"] == "2000" and inp["items"] == 2  # e1 and e2 summed; e6, e7 are other months
    assert inp["unit_price"] == "2" and inp["list_unit_price"] == "2.5"
    assert inp["price_overlay"] == "acme-gpt-4o-contract" and inp["overlay_source"] == "contract 2026-01"
    assert inp["source"].startswith("seed 001") and inp["catalog_hash"] == catalog.content_hash
    guard = next(m for m in usd["models"] if m["model"] == "guardrails")
    assert {ln["rounding"] for ln in guard["lines"]} == {statement.ROUNDING["guardrail_text_units"]}
    assert {ln["quantity"] for ln in guard["lines"]} == {"3"}  # ceil(1001/1000) + ceil(5/1000)
    assert doc["dead_lettered"]["count"] == 2  # d1 (its ts) and d2 (dead-lettered in March)
    assert doc["price_overlays"] == [
        {"rule": "acme-gpt-4o-contract", "source": "contract 2026-01"},
        {"rule": "acme-haiku-15off", "source": "order form 2026-01, section 4"},
    ]
    for fmt in ("html", "csv"):
        out = tmp_path / f"s.{fmt}"
        res = run(["statement", "--tenant", "acme", "--month", "2026-03", "--format", fmt, "--out", str(out)], tmp_path)
        assert res.exit_code == 0 and res.stdout == "", res.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert {r["amount"] for r in rows if r["record"] == "total"} == {got["USD"]["total"], got["CNY"]["total"]}
    assert "order form 2026-01, section 4" in (tmp_path / "s.html").read_text()


def test_a_statement_says_when_the_rollups_differ(ledger_store):
    tmp_path, _, _ = ledger_store
    with ChdbStore(tmp_path / "data" / "chdb", "meterstream") as store:
        store.command("ALTER TABLE rollup_user_month DELETE WHERE user_id = 'u2' SETTINGS mutations_sync = 2")
    res = run(["statement", "--tenant", "acme", "--month", "2026-03", "--format", "json"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "warning: USD: the rollups hold" in res.stderr
    assert json.loads(res.stdout)["currencies"][1]["matches_rollups"] is False


def test_explain_gives_the_line_items_and_the_ledgers_cost(ledger_store):
    tmp_path, priced, _ = ledger_store
    p = priced[("acme", "e3")]
    res = run(["explain", "e3", "--format", "json"], tmp_path)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (
        doc["cost"] == p["cost"] and doc["list_cost"] == p["list_cost"] and doc["price_overlay"] == "acme-haiku-15off"
    )
    assert [(i["dimension"], i["quantity"], i["amount"]) for i in doc["line_items"]] == [
        (i["dimension"], i["quantity"], i["cost"]) for i in p["line_items"]
    ]
    assert sum(D(i["amount"]) for i in doc["line_items"]) == D(doc["cost"]) and doc["difference"] == "0"
    assert all(i["source"].startswith("seed 002") for i in doc["line_items"])
    assert all(i["overlay_source"] == "order form 2026-01, section 4" for i in doc["line_items"])
    table = run(["explain", "e3"], tmp_path)
    assert table.exit_code == 0 and p["cost"] in table.stdout and "acme-haiku-15off" in table.stdout


def test_explain_refuses_an_id_of_several_tenants_unless_told_which(ledger_store):
    tmp_path, priced, _ = ledger_store
    res = run(["explain", "e1"], tmp_path)
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == ["Error: event 'e1' is counted for 2 tenants: say which with --tenant"]
    res = run(["explain", "e1", "--tenant", "other", "--format", "json"], tmp_path)
    assert res.exit_code == 0 and json.loads(res.stdout)["cost"] == priced[("other", "e1")]["cost"]


def test_explain_of_an_unknown_or_dead_lettered_id_is_one_line(ledger_store):
    tmp_path, _, _ = ledger_store
    res = run(["explain", "nope"], tmp_path)
    assert res.exit_code == 1 and res.output.strip().splitlines() == ["Error: no counted event 'nope'"]
    res = run(["explain", "d3", "--tenant", "acme"], tmp_path)
    assert res.exit_code == 1
    [said] = res.output.strip().splitlines()
    assert said.startswith(
        "Error: no counted event 'd3' of tenant 'acme': it was dead-lettered (tenant 'acme', 2026-03-15"
    )
    assert said.endswith("unknown model 'gpt-17-ultra' for provider 'openai' (d3)")
    res = run(["explain", "d1"], tmp_path)
    assert res.exit_code == 1 and "dead-lettered 2 times, first" in res.output


@pytest.mark.parametrize("month", ["2026-13", "26-03", "2026-3", "garbage", "1999-12"])
def test_a_bad_month_is_a_usage_error(month, tmp_path):
    res = run(["statement", "--tenant", "acme", "--month", month], tmp_path)
    assert res.exit_code == 2 and "is not a month" in res.output
    assert not (tmp_path / "data" / "chdb").exists()  # refused before touching the store
