"""The dashboard's page builder (streams/analyst/dashboard.py), rows in, HTML out: hostile names
stay text (in the page's bytes and, drawn by headless Chromium, in its DOM), the page loads
nothing, the top-N/other folding and the sums are exact, windows without usage are drawn as 0."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.analyst import dashboard
from streams.analyst.dashboard import DashboardRows, assemble, build, script_json, to_html
from tests.chromium import PNG, rendered, screenshot

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
HOSTILE_USER = "</script><script>alert(1)</script>"
HOSTILE_TENANT = "t\"'&<b>]]><!--"
HOSTILE_MODEL = "m<img/src=x/onerror=alert(2)>"
HOSTILE_LABEL = "</script><script>document.title='pwned'</script>"


def usage(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": "acme",
        "currency": "USD",
        "cost": Decimal(0),
        "events": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
    }
    row.update(kw)
    return row


def rows(**kw: Any) -> DashboardRows:
    base: dict[str, Any] = {
        "window": "hour",
        "spend_by_model": [],
        "spend_by_user": [],
        "tokens_by_day": [],
        "top_users_by_cost": [],
        "top_users_by_tokens": [],
        "average_by_model": [],
        "label_keys": (),
        "by_label": {},
        "rejects": [],
        "budgets": [],
        "generated_at": T0,
    }
    base.update(kw)
    return DashboardRows(**base)


def hostile_rows() -> DashboardRows:
    hour = T0 + dt.timedelta(hours=1)
    return rows(
        spend_by_model=[
            usage(window_start=T0, model=HOSTILE_MODEL, cost=Decimal("1.000000000001")),
            usage(window_start=hour, model="gpt-4o", cost=Decimal("0.5"), currency="CNY"),
        ],
        spend_by_user=[
            usage(window_start=T0, user_id=HOSTILE_USER, tenant_id=HOSTILE_TENANT, cost=Decimal("2.25")),
            usage(window_start=T0, user_id="bob", cost=Decimal("0.75")),
        ],
        tokens_by_day=[usage(window_start=T0, input_tokens=10, output_tokens=5, cached_input_tokens=1)],
        top_users_by_cost=[
            usage(user_id=HOSTILE_USER, tenant_id=HOSTILE_TENANT, cost=Decimal("2.25")),
            usage(user_id="bob", cost=Decimal("12345678.123456789012")),  # no float holds it
        ],
        top_users_by_tokens=[usage(user_id=HOSTILE_USER, tenant_id=HOSTILE_TENANT, input_tokens=7)],
        average_by_model=[usage(model=HOSTILE_MODEL, input_tokens=30, output_tokens=7, token_events=3)],
        label_keys=("app",),
        by_label={"app": [usage(**{"label:app": HOSTILE_LABEL, "cost": Decimal("1.5")})]},
        rejects=[{"reason": "unknown model \u2028<script>x</script>\u2029", "n": 3}],
        budgets=[
            {
                "id": 'b"<x>',
                "tenant_id": HOSTILE_TENANT,
                "user_id": HOSTILE_USER,
                "model": None,
                "period": "2026-03-01",
                "currency": "USD",
                "amount": "10",
                "spend": "2.25",
                "percent": "22.50",
                "crossed": "",
            }
        ],
        tenant=HOSTILE_TENANT,
    )


def data_block(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


def panel(doc: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in doc["panels"] if p["id"] == pid)


def test_hostile_names_stay_text_in_the_page():
    page = build(hostile_rows())
    # nothing a name holds can close the data block, open an element or a comment
    for raw in (HOSTILE_USER, HOSTILE_TENANT, HOSTILE_MODEL, HOSTILE_LABEL, "<img", "<b>", "]]>", "<!--"):
        assert raw not in page, raw
    assert "\u2028" not in page and "\u2029" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data block and the page's script
    # ... and the data block gives every name back as it was
    doc = data_block(page)
    assert doc == json.loads(json.dumps(assemble(hostile_rows()), default=dashboard._plain))
    assert [b["name"] for b in panel(doc, "top-users-cost")["charts"][0]["bars"]] == [
        f"{HOSTILE_TENANT}: {HOSTILE_USER}",
        "acme: bob",
    ]
    assert panel(doc, "rejects")["charts"][0]["bars"][0]["name"] == "unknown model <U+2028><script>x</script><U+2029>"
    assert doc["filters"]["tenant"] == HOSTILE_TENANT
    # the one name in the static markup, the title, is escaped
    assert "<title>meterstream dashboard - t&quot;&#x27;&amp;&lt;b&gt;]]&gt;&lt;!--</title>" in page
    # the script writes text with textContent, never as markup
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", page)


def test_script_json_escapes_what_could_end_a_script():
    text = script_json({"a": "</script><!--]]>&\u2028\u2029"})
    assert re.fullmatch(r"[^<>&\u2028\u2029]+", text)
    assert json.loads(text) == {"a": "</script><!--]]>&\u2028\u2029"}


def test_the_page_loads_nothing():
    page = build(hostile_rows())
    # the markup, style and script (a name in the data block is text, whatever it says)
    markup = re.sub(r'(id="dashboard-data">).*?(</script>)', r"\1\2", page, flags=re.S)
    assert "dashboard-data" in markup and len(markup) < len(page)
    assert "http://" not in page and "https://" not in page and "file:" not in page
    assert not re.search(
        r"<(link|img|iframe|object|embed|audio|video|source|base|form|meta http-equiv=.refresh)", markup
    )
    loads = r"\b(src|href|srcset|action|xlink:href|poster)\s*=|url\(|@import|fetch\(|XMLHttpRequest|import\("
    assert not re.search(loads, markup)
    assert not re.search(r"WebSocket|sendBeacon|EventSource|Worker\(|window\.open|location", markup)
    # a Content Security Policy forbids any load; the page's one script is allowed by its hash
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy


def test_top_8_and_other_exact_over_every_window():
    models = [f"model-{i:02d}" for i in range(11)]
    spend = [
        usage(window_start=T0 + dt.timedelta(hours=h), model=m, cost=Decimal(i + 1) / Decimal(1000) + Decimal("1e-12"))
        for i, m in enumerate(models)
        for h in (0, 3)  # hours 1 and 2 have no usage: drawn as 0
    ]
    spend.append(usage(window_start=T0, model="model-00", cost=Decimal("0.5"), currency="EUR"))
    doc = assemble(rows(spend_by_model=spend))
    charts = {c["currency"]: c for c in panel(doc, "spend-model")["charts"]}
    assert list(charts) == ["EUR", "USD"]  # never summed across currencies
    usd = charts["USD"]
    assert usd["x"] == [(T0 + dt.timedelta(hours=h)).isoformat() for h in range(4)]
    assert usd["xlabels"] == ["2026-03-01 00:00", "2026-03-01 01:00", "2026-03-01 02:00", "2026-03-01 03:00"]
    names = [s["name"] for s in usd["series"]]
    assert names == [f"model-{i:02d}" for i in range(10, 2, -1)] + ["other"]  # highest cost first
    other = usd["series"][-1]
    rest = [Decimal(i + 1) / Decimal(1000) + Decimal("1e-12") for i in range(3)]
    assert other["values"] == [str(sum(rest)), "0", "0", str(sum(rest))]
    assert other["total"] == str(2 * sum(rest))
    top = usd["series"][0]
    assert top["values"] == ["0.011000000001", "0", "0", "0.011000000001"] and top["total"] == "0.022000000002"
    grand = sum(Decimal(v) for s in usd["series"] for v in s["values"])
    assert grand == sum(r["cost"] for r in spend if r["currency"] == "USD")
    assert charts["EUR"]["series"] == [{"name": "model-00", "values": ["0.5", "0", "0", "0"], "total": "0.5"}]


def test_bars_fold_tokens_sum_and_averages_skip_non_token_models():
    labels = [usage(**{"label:team": f"team-{i}", "cost": Decimal(i)}) for i in range(12)]
    labels.append(usage(**{"label:team": "", "cost": Decimal("0.25")}))
    doc = assemble(
        rows(
            label_keys=("team",),
            by_label={"team": labels},
            tokens_by_day=[
                usage(window_start=T0, input_tokens=5, output_tokens=2),
                usage(window_start=T0, input_tokens=7, cached_input_tokens=4, currency="CNY", tenant_id="b"),
                usage(window_start=T0 + dt.timedelta(days=2), output_tokens=9),
            ],
            average_by_model=[
                usage(model="chat", input_tokens=10, output_tokens=5, token_events=3, tenant_id="a"),
                usage(model="chat", input_tokens=11, output_tokens=0, token_events=3, tenant_id="b"),
                usage(model="images", token_events=0, events=4),
            ],
            rejects=[{"reason": f"r{i}", "n": 100 - i} for i in range(20)],
        )
    )
    team = panel(doc, "label-team")["charts"][0]["bars"]
    assert [b["name"] for b in team] == [f"team-{i}" for i in range(11, 3, -1)] + ["other (5 values)"]
    assert team[-1]["values"] == ["6.25"]  # 0 + 1 + 2 + 3 + 0.25 ("(no team)" is among the rest)
    tokens = panel(doc, "tokens-day")["charts"][0]
    assert tokens["xlabels"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert {s["name"]: s["values"] for s in tokens["series"]} == {
        "input": ["12", "0", "0"],
        "output": ["2", "0", "9"],
        "cached input": ["4", "0", "0"],
    }
    avg = panel(doc, "avg-tokens")
    assert avg["charts"][0]["bars"] == [{"name": "chat", "values": ["3.5", "0.8", "6"]}]  # 21/6, 5/6 half-even
    assert "left out: images" in avg["note"]
    reasons = panel(doc, "rejects")["charts"][0]["bars"]
    assert len(reasons) == dashboard.TOP_REASONS + 1 and reasons[-1]["name"] == "5 other reasons"
    assert sum(int(b["values"][0]) for b in reasons) == sum(100 - i for i in range(20))


def test_labels_skipped_with_a_note_and_budgets_unreadable_said():
    doc = assemble(rows(budgets=None, budgets_problem="Kafka at 127.0.0.1:1 cannot be reached"))
    labels = panel(doc, "labels")
    assert labels["charts"] == [] and "MS_ROLLUP_LABELS" in labels["note"]
    assert "Kafka at 127.0.0.1:1 cannot be reached" in panel(doc, "budgets")["note"]


def test_spend_window_and_windows_in_a_zone():
    day = dt.timedelta(days=1)
    assert dashboard.spend_window(None, None, None, [T0, T0 + day]) == "hour"
    assert dashboard.spend_window("Asia/Shanghai", None, None, [T0]) == "day"
    assert dashboard.spend_window(None, T0, T0 + 30 * day, []) == "day"
    assert dashboard.spend_window(None, None, None, [T0, T0 + 500 * day]) == "month"
    # Berlin's days across the change to summer time: 23 hours on 2026-03-29
    berlin = [dt.datetime(2026, 3, d, tzinfo=dt.UTC) - dt.timedelta(hours=1) for d in (28,)]
    got = dashboard.windows_between([berlin[0], dt.datetime(2026, 3, 29, 22, tzinfo=dt.UTC)], "day", "Europe/Berlin")
    assert [g.isoformat() for g in got] == [
        "2026-03-27T23:00:00+00:00",
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
    ]
    assert [dashboard.window_label(g, "day", "Europe/Berlin") for g in got] == [
        "2026-03-28",
        "2026-03-29",
        "2026-03-30",
    ]


def test_drawn_in_chromium_names_stay_text_and_series_are_the_data(tmp_path: Path):
    """The page in headless Chromium: the script ran (allowed by the policy), drew every panel,
    wrote the hostile names as text (no element of theirs exists), and each panel's data-series
    is the page's data."""
    doc = assemble(hostile_rows())
    page = tmp_path / "dashboard.html"
    page.write_text(to_html(doc))
    dom = rendered(page)
    assert dom.title == f"meterstream dashboard - {HOSTILE_TENANT}"  # no script of a name's ran
    assert dom.tags.get("script") == 2 and "img" not in dom.tags and "b" not in dom.tags
    assert f"{HOSTILE_TENANT}: {HOSTILE_USER}" in dom.cells
    assert HOSTILE_MODEL in dom.cells and HOSTILE_LABEL in dom.cells
    assert set(dom.panels) == {p["id"] for p in doc["panels"]}
    for p in doc["panels"]:
        drawn = dom.panels[p["id"]]["series"]
        if p["kind"] == "lines":
            assert drawn == [
                {**c, "series": [{k: s[k] for k in ("name", "values", "total")} for s in c["series"]]}
                for c in p["charts"]
            ]
        elif p["kind"] == "bars":
            assert drawn == [{**c, "columns": p["columns"]} for c in p["charts"]]
        else:
            assert [d["spend"] for d in drawn] == ["2.25"] and drawn[0]["tenant_id"] == HOSTILE_TENANT
    png = screenshot(page, tmp_path / "dashboard.png", "1200,1600")
    assert png[:8] == PNG and len(png) > 10_000
