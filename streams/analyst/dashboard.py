"""`meterstream dashboard`: one self-contained HTML page of the token-billing panels, built from
the rows of the named reads (streams/analyst/reads.py, the `usage` read of
streams/analyst/usage.py, `rejects`, and the rows of `budgets status`).

Pure: rows in (DashboardRows), a document out (assemble), a document in, HTML out (to_html). No
I/O; streams/cli/dashboard.py makes the reads.

The page fetches nothing: no CDN, no font, no script or style from anywhere, and a Content
Security Policy (`default-src 'none'`, the page's one script allowed by its hash) forbids any
load. The charts are inline SVG that the page's own script draws. The figures travel as JSON in
a `<script type="application/json">` block with `<`, `>`, `&`, U+2028 and U+2029 escaped, so no
id, model name, label value or reason can end the block or start markup; the script writes every
text with textContent (never innerHTML).

Money stays exact: costs are decimal strings in the page's data, summed and folded here with
Decimal; the script turns them into numbers only to place a line or a bar, and shows the strings.
Money is never summed across currencies: each money panel has a chart per currency. When the
charts are drawn, the script sets `data-series` on each panel's element (what it drew: labels and
the decimal strings) and `document.body.dataset.rendered = "1"` ("error" and `data-error` when it
failed), so a test can compare the drawn page with the engine (tests/integration/test_dashboard.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from schemas.money import money_str
from schemas.validate import visible
from streams.analyst.plot import OTHER, SERIES, series

Rows = list[dict[str, Any]]
TOP_USERS = 10  # the top users by cost and by tokens, per currency
TOP_BARS = 8  # bars apiece in a cost-by-label chart; the rest are one "other" bar
TOP_REASONS = 15  # reasons apiece in the rejects chart; the rest are one bar
REJECT_REASONS_READ = 10_000  # reasons the grouped rejects read returns at most
HOUR_SPAN = dt.timedelta(days=7)  # spend over time per hour up to this span, else per day
DAY_SPAN = dt.timedelta(days=400)  # ... per day up to this span, else per month
TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"), ("cached input", "cached_input_tokens"))
ZERO = Decimal(0)


@dataclass
class DashboardRows:
    """What the page shows, as the reads returned it."""

    window: str  # of the spend-over-time reads: hour, day or month
    spend_by_model: Rows  # usage: group_by model, per `window`
    spend_by_user: Rows  # usage: group_by user, per `window`
    tokens_by_day: Rows  # usage: group_by tenant, per day
    top_users_by_cost: Rows  # usage: group_by user, top 10, order cost
    top_users_by_tokens: Rows  # usage: group_by user, top 10, order tokens
    average_by_model: Rows  # usage: group_by model, average
    label_keys: tuple[str, ...]  # MS_ROLLUP_LABELS
    by_label: dict[str, Rows]  # usage: group_by label:KEY, per rolled-up key
    rejects: Rows  # rejects: group
    budgets: Rows | None  # the rows of `budgets status` (streams/cli/alerts.py budget_status)
    budgets_problem: str | None = None  # why the budgets could not be read, when they could not
    tenant: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    tz: str | None = None
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


# -- windows -------------------------------------------------------------------------------------


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def spend_window(
    tz: str | None, since: dt.datetime | None, until: dt.datetime | None, days: Iterable[dt.datetime]
) -> str:
    """The windows of the spend-over-time panels: hours over a span of up to 7 days (in UTC:
    the usage read takes a time zone for days and months only), days up to 400, else months.
    The span is [since, until) where given, else the days that hold usage (`days`: the day
    windows' starts)."""
    seen = sorted(_utc(d) for d in days)
    first = _utc(since) if since is not None else (seen[0] if seen else None)
    last = _utc(until) if until is not None else (seen[-1] + dt.timedelta(days=1) if seen else None)
    span = last - first if first is not None and last is not None else dt.timedelta(0)
    if tz is None and span <= HOUR_SPAN:
        return "hour"
    return "day" if span <= DAY_SPAN else "month"


def _next_window(t: dt.datetime, window: str, zone: dt.tzinfo) -> dt.datetime:
    if window == "minute":
        return t + dt.timedelta(minutes=1)
    if window == "hour":
        return t + dt.timedelta(hours=1)
    local = t.astimezone(zone)
    if window == "day":
        d = local.date() + dt.timedelta(days=1)
        nxt = dt.datetime(d.year, d.month, d.day, tzinfo=zone)
    else:
        nxt = dt.datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
    return nxt.astimezone(dt.UTC)


def windows_between(present: Iterable[dt.datetime], window: str, tz: str | None) -> list[dt.datetime]:
    """Every window from the first present to the last (a window without usage is drawn as 0),
    and every present one (a zone's odd midnight is never lost)."""
    got = {_utc(t) for t in present}
    if not got:
        return []
    zone: dt.tzinfo = zoneinfo.ZoneInfo(tz) if tz else dt.UTC
    out, t, last = set(got), min(got), max(got)
    while t < last and len(out) < 50_000:
        out.add(t)
        t = _next_window(t, window, zone)
    return sorted(out)


def window_label(t: dt.datetime, window: str, tz: str | None) -> str:
    """A window's start as read on the axis: in the zone asked (UTC by default)."""
    local = t.astimezone(zoneinfo.ZoneInfo(tz) if tz else dt.UTC)
    return local.strftime(
        {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}.get(window, "%Y-%m")
    )


# -- panels --------------------------------------------------------------------------------------


def _multi_tenant(rows: Rows) -> bool:
    return len({r["tenant_id"] for r in rows}) > 1


def key_name(row: Mapping[str, Any], column: str, multi_tenant: bool, empty: str = "") -> str:
    """A row's key as shown: its value of `column` (`empty` when that is ""), after its tenant
    when the rows hold several (a user or a label value is a tenant's); as plot.series names it."""
    value = str(row[column]) if row[column] != "" else empty
    return f"{row['tenant_id']}: {value}" if multi_tenant and column != "tenant_id" else value


def spend_over_time(rows: Rows, column: str, window: str, tz: str | None) -> list[dict[str, Any]]:
    """Per currency: the cost of each window per key, the 8 keys of highest cost in that currency
    and the rest summed as "other" (plot.series), over every window of the panel, exact."""
    rows = [{**r, "window_start": _utc(r["window_start"])} for r in rows]
    xs = windows_between((r["window_start"] for r in rows), window, tz)
    charts = []
    for currency, lines in series(rows, [column], SERIES).items():
        drawn = []
        for name, points in lines.items():
            at = dict(points)
            values = [at.get(x, ZERO) for x in xs]
            drawn.append(
                {"name": name, "values": [money_str(v) for v in values], "total": money_str(sum(values, ZERO))}
            )
        charts.append(
            {
                "currency": currency,
                "x": [x.isoformat() for x in xs],
                "xlabels": [window_label(x, window, tz) for x in xs],
                "series": drawn,
            }
        )
    return charts


def token_trend(rows: Rows, tz: str | None) -> list[dict[str, Any]]:
    """One chart: per day, the input, output and cached input tokens of every tenant and currency
    (tokens are counts, never money: they add up across currencies)."""
    per_day: dict[dt.datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        day = per_day[_utc(r["window_start"])]
        for _, col in TOKEN_KINDS:
            day[col] += int(r[col])
    xs = windows_between(per_day, "day", tz)
    if not xs:
        return []
    return [
        {
            "currency": None,
            "x": [x.isoformat() for x in xs],
            "xlabels": [window_label(x, "day", tz) for x in xs],
            "series": [
                {
                    "name": name,
                    "values": [str(per_day[x][col]) if x in per_day else "0" for x in xs],
                    "total": str(sum(per_day[x][col] for x in xs if x in per_day)),
                }
                for name, col in TOKEN_KINDS
            ],
        }
    ]


def _tokens(r: Mapping[str, Any]) -> int:
    return sum(int(r[c]) for c in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"))


def top_users(rows: Rows, value: Callable[[Mapping[str, Any]], str]) -> list[dict[str, Any]]:
    """Per currency, the rows in the read's order (its top N), named by user."""
    multi = _multi_tenant(rows)
    charts: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        charts.setdefault(r["currency"], []).append({"name": key_name(r, "user_id", multi), "values": [value(r)]})
    return [{"currency": cur, "bars": bars} for cur, bars in sorted(charts.items())]


def folded_bars(
    items: Iterable[tuple[str | None, str, Decimal]], top: int, other: Callable[[int], str]
) -> list[dict[str, Any]]:
    """Per currency (None: no currency), the `top` names of highest value, the rest summed as
    one bar named other(how many), exact."""
    by: dict[str | None, dict[str, Decimal]] = defaultdict(dict)
    for cur, name, v in items:
        by[cur][name] = by[cur].get(name, ZERO) + v
    charts = []
    for cur in sorted(by, key=lambda c: c or ""):
        totals = by[cur]
        ranked = sorted(totals, key=lambda n: (-totals[n], n))
        bars = [{"name": n, "values": [money_str(totals[n])]} for n in ranked[:top]]
        rest = ranked[top:]
        if rest:
            bars.append({"name": other(len(rest)), "values": [money_str(sum((totals[n] for n in rest), ZERO))]})
        charts.append({"currency": cur, "bars": bars})
    return charts


def average_tokens(rows: Rows) -> tuple[list[dict[str, Any]], list[str]]:
    """Per model over every tenant and currency: input and output tokens per token event (the
    read's `token_events`: events with input or output tokens), half-even to 0.1 as
    `report --avg` rounds; and the models without token events (images, guardrail checks...)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        s = sums[r["model"]]
        s[0] += int(r["input_tokens"])
        s[1] += int(r["output_tokens"])
        s[2] += int(r["token_events"])
    tenth = Decimal("0.1")
    avg = {
        m: ((Decimal(i) / n).quantize(tenth), (Decimal(o) / n).quantize(tenth), n) for m, (i, o, n) in sums.items() if n
    }
    ranked = sorted(avg, key=lambda m: (-(avg[m][0] + avg[m][1]), m))
    bars = [{"name": m, "values": [str(avg[m][0]), str(avg[m][1]), str(avg[m][2])]} for m in ranked]
    return ([{"currency": None, "bars": bars}] if bars else []), sorted(m for m, s in sums.items() if not s[2])


def _reason(r: Mapping[str, Any]) -> str:
    return visible(str(r["reason"]))  # a reason shows no control, bidi or separator character


def _filters(d: DashboardRows) -> dict[str, Any]:
    return {
        "tenant": d.tenant,
        "since": d.since.isoformat() if d.since else None,
        "until": d.until.isoformat() if d.until else None,
        "tz": d.tz or "UTC",
    }


def assemble(d: DashboardRows) -> dict[str, Any]:
    """The page's document: its filters and panels, every figure a decimal string."""
    zone = d.tz or "UTC"
    per = {"hour": "hour (UTC)", "day": f"day ({zone})", "month": f"month ({zone})"}[d.window]
    panels: list[dict[str, Any]] = []

    def panel(pid: str, title: str, kind: str, charts: Any, note: str = "", **extra: Any) -> None:
        panels.append({"id": pid, "title": title, "kind": kind, "note": note, "charts": charts, **extra})

    top_note = f"the {SERIES} of highest cost in each currency; the rest are summed as {OTHER!r}"
    panel(
        "spend-model",
        "Spend over time per model",
        "lines",
        spend_over_time(d.spend_by_model, "model", d.window, d.tz),
        f"Cost per {per}, per currency: {top_note}.",
        unit="cost",
    )
    panel(
        "spend-user",
        "Spend over time per user",
        "lines",
        spend_over_time(d.spend_by_user, "user_id", d.window, d.tz),
        f"Cost per {per}, per currency: {top_note}.",
        unit="cost",
    )
    panel(
        "tokens-day",
        "Daily token trend",
        "lines",
        token_trend(d.tokens_by_day, d.tz),
        f"Input, output and cached input tokens per day ({zone}), every tenant and currency.",
        unit="tokens",
    )
    panel(
        "top-users-cost",
        f"Top {TOP_USERS} users by cost",
        "bars",
        top_users(d.top_users_by_cost, lambda r: money_str(Decimal(r["cost"]))),
        "Per currency, as `report --by user --top 10`.",
        columns=["cost"],
    )
    panel(
        "top-users-tokens",
        f"Top {TOP_USERS} users by tokens",
        "bars",
        top_users(d.top_users_by_tokens, lambda r: str(_tokens(r))),
        "Input, output, cached input and cache write tokens; per currency, as "
        "`report --by user --top 10 --order tokens`.",
        columns=["tokens"],
    )
    avg_charts, no_tokens = average_tokens(d.average_by_model)
    panel(
        "avg-tokens",
        "Average tokens per request per model",
        "bars",
        avg_charts,
        "Over token events only (those with input or output tokens), every tenant; half-even to 0.1."
        + (f" Models without token events, left out: {', '.join(no_tokens)}." if no_tokens else ""),
        columns=["avg input tokens", "avg output tokens", "token requests"],
    )
    if not d.label_keys:
        panel(
            "labels",
            "Cost by label",
            "bars",
            [],
            "Skipped: no label key is rolled up (set MS_ROLLUP_LABELS, e.g. app,team, before the events are counted).",
            columns=["cost"],
        )
    for key in d.label_keys:
        rows = d.by_label.get(key, [])
        multi = _multi_tenant(rows)
        panel(
            f"label-{key}",
            f"Cost by label {key}",
            "bars",
            folded_bars(
                ((r["currency"], key_name(r, f"label:{key}", multi, f"(no {key})"), Decimal(r["cost"])) for r in rows),
                TOP_BARS,
                lambda n: f"{OTHER} ({n} values)",
            ),
            f"Per currency: the {TOP_BARS} values of highest cost, the rest summed; "
            f"(no {key}): events without the label.",
            columns=["cost"],
        )
    reject_note = "Dead-lettered inputs per reason"
    if d.since is not None or d.until is not None:
        reject_note += " (rejected in the range asked)"
    if len(d.rejects) >= REJECT_REASONS_READ:
        reject_note += f"; only the {REJECT_REASONS_READ} most frequent reasons were read"
    panel(
        "rejects",
        "Rejects by reason",
        "bars",
        folded_bars(
            ((None, _reason(r), Decimal(int(r["n"]))) for r in d.rejects),
            TOP_REASONS,
            lambda n: f"{n} other reasons",
        ),
        reject_note + f", as `rejects --group`: the {TOP_REASONS} most frequent, the rest summed.",
        columns=["rejected"],
    )
    if d.budgets is None:
        panel("budgets", "Budgets", "budgets", [], f"Budgets could not be read: {d.budgets_problem or 'unknown'}.")
    else:
        panel(
            "budgets",
            "Budgets",
            "budgets",
            [{k: r.get(k) for k in BUDGET_COLUMNS} for r in d.budgets],
            "Each budget's current period, as `budgets status` (whatever the range asked)."
            if d.budgets
            else "No budgets (meterstream budgets set).",
        )
    return {
        "title": "meterstream dashboard",
        "filters": _filters(d),
        "generated_at": d.generated_at.isoformat(),
        "panels": panels,
    }


BUDGET_COLUMNS = ("id", "tenant_id", "user_id", "model", "period", "currency", "amount", "spend", "percent", "crossed")


# -- the page ------------------------------------------------------------------------------------


def script_json(doc: Any) -> str:
    """JSON safe inside a <script> element: `<`, `>`, `&`, U+2028 and U+2029 as \\u escapes (no
    `</script>`, `<!--` or `]]>` can appear; JSON.parse gives the same strings back)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=_plain)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return money_str(v)
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    raise TypeError(f"not JSON: {type(v).__name__}")


def _csp_hash(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def to_html(doc: Mapping[str, Any]) -> str:
    """The page: the document as a JSON block, the style, and the script that draws it."""
    tenant = doc["filters"].get("tenant")
    title = f"meterstream dashboard{f' - {tenant}' if tenant else ''}"
    csp = (
        f"default-src 'none'; script-src '{_csp_hash(_SCRIPT)}'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )
    return "".join(
        [
            "<!DOCTYPE html>\n",
            '<html lang="en"><head><meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=True)}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{html.escape(title)}</title>\n",
            f"<style>{_CSS}</style>\n</head><body>\n",
            # the script takes the SVG namespace from this element: the page names no URL at all
            '<svg id="svg-ns" width="0" height="0" aria-hidden="true"></svg>\n',
            '<header><h1 id="title"></h1><p id="filters" class="meta"></p></header>\n',
            '<main id="panels"></main>\n',
            "<noscript><p>The charts are drawn by the page's script; their figures are in its JSON block "
            "(dashboard-data).</p></noscript>\n",
            f'<script type="application/json" id="dashboard-data">{script_json(doc)}</script>\n',
            f"<script>{_SCRIPT}</script>\n",
            "</body></html>\n",
        ]
    )


def build(rows: DashboardRows) -> str:
    return to_html(assemble(rows))


_CSS = """
body{font-family:sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:0 0 4px}h3{font-size:1em;margin:10px 0 4px}
.meta,.note{color:#555;font-size:.9em;margin:2px 0 8px}
.panel{border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:0 0 16px}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 18px;font-size:.85em}
.legend li{display:flex;align-items:center;gap:6px}
table{border-collapse:collapse;font-size:.9em}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{max-width:520px;overflow-wrap:anywhere}
.empty{color:#888;font-style:italic}
svg text{font-size:11px;fill:#555}
svg.plot{max-width:100%;height:auto}
"""

# The page's one script (allowed by its hash in the Content Security Policy). Every text is set
# with textContent or a text node; numbers are parsed from the decimal strings only to draw.
_SCRIPT = r"""
(function () {
  "use strict";
  var NS = document.getElementById("svg-ns").namespaceURI;
  var COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                "#ff9da7", "#9c755f", "#bab0ac"];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function num(s) { var v = parseFloat(s); return isFinite(v) ? v : 0; }  // drawing only
  function tick(v) {
    var a = Math.abs(v);
    if (a >= 1e9) { return (v / 1e9).toPrecision(3) + "G"; }
    if (a >= 1e6) { return (v / 1e6).toPrecision(3) + "M"; }
    if (a >= 1e3) { return (v / 1e3).toPrecision(3) + "k"; }
    return a === 0 ? "0" : String(+v.toPrecision(3));
  }
  function niceTop(max) {  // the axis' top: 4 steps of 1, 2, 2.5 or 5 times a power of ten
    if (!(max > 0)) { return 1; }
    var raw = max / 4, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    var step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
    return step * 4;
  }
  function swatch(color) {
    var s = svg("svg", {width: 12, height: 12});
    s.appendChild(svg("rect", {width: 12, height: 12, fill: color}));
    return s;
  }
  function unitOf(panel, chart) {
    return panel.unit === "tokens" ? "tokens" : (chart.currency || "");
  }

  function lines(box, panel, chart) {
    var W = 1300, H = 280, L = 64, R = 48, T = 12, B = 46;
    var n = chart.x.length, max = 0;
    chart.series.forEach(function (s) { s.values.forEach(function (v) { max = Math.max(max, num(v)); }); });
    max = niceTop(max);
    function px(i) { return n > 1 ? L + (W - L - R) * i / (n - 1) : L + (W - L - R) / 2; }
    function py(v) { return T + (H - T - B) * (1 - num(v) / max); }
    var g = svg("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "class": "plot"});
    g.appendChild(svg("title", {}, panel.title + (chart.currency ? " (" + chart.currency + ")" : "")));
    for (var k = 0; k <= 4; k++) {
      var v = max * k / 4, y = py(v);
      g.appendChild(svg("line", {x1: L, x2: W - R, y1: y, y2: y, stroke: "#eee"}));
      g.appendChild(svg("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, tick(v)));
    }
    var every = Math.max(1, Math.ceil(n / 10));
    for (var i = 0; i < n; i += every) {
      g.appendChild(svg("line", {x1: px(i), x2: px(i), y1: H - B, y2: H - B + 4, stroke: "#999"}));
      g.appendChild(svg("text", {x: px(i), y: H - B + 16, "text-anchor": "middle"}, chart.xlabels[i]));
    }
    g.appendChild(svg("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#999"}));
    var legend = el("ul", "legend");
    var drawn = {currency: chart.currency, x: chart.x.slice(), xlabels: chart.xlabels.slice(), series: []};
    chart.series.forEach(function (s, j) {
      var color = COLORS[j % COLORS.length];
      var pts = s.values.map(function (v, i) { return px(i).toFixed(1) + "," + py(v).toFixed(1); });
      var line = svg("polyline", {points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2});
      line.appendChild(svg("title", {}, s.name + ": " + s.total + " " + unitOf(panel, chart)));
      g.appendChild(line);
      if (n <= 400) {
        s.values.forEach(function (v, i) {
          var dot = svg("circle", {cx: px(i), cy: py(v), r: 2.5, fill: color});
          dot.appendChild(svg("title", {}, s.name + ", " + chart.xlabels[i] + ": " + v + " " + unitOf(panel, chart)));
          g.appendChild(dot);
        });
      }
      var li = el("li");
      li.appendChild(swatch(color));
      li.appendChild(el("span", "", s.name + ": " + s.total + " " + unitOf(panel, chart)));
      legend.appendChild(li);
      drawn.series.push({name: s.name, values: s.values.slice(), total: s.total});
    });
    box.appendChild(g);
    box.appendChild(legend);
    return drawn;
  }

  function bars(box, panel, chart) {
    var cols = panel.columns, max = cols.map(function () { return 0; });
    chart.bars.forEach(function (b) { b.values.forEach(function (v, c) { max[c] = Math.max(max[c], num(v)); }); });
    var table = el("table"), head = el("tr");
    head.appendChild(el("th", "", ""));
    cols.forEach(function (c) {
      head.appendChild(el("th", "", c + (chart.currency && c === "cost" ? " (" + chart.currency + ")" : "")));
      head.appendChild(el("th", "", ""));
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    var drawn = {currency: chart.currency, columns: cols.slice(), bars: []};
    chart.bars.forEach(function (b, j) {
      var tr = el("tr");
      tr.appendChild(el("td", "name", b.name));
      b.values.forEach(function (v, c) {
        tr.appendChild(el("td", "n", v));
        var td = el("td"), w = max[c] > 0 ? Math.max(1, 260 * num(v) / max[c]) : 0;
        var s = svg("svg", {width: 262, height: 14});
        var r = svg("rect", {x: 0, y: 1, width: w.toFixed(1), height: 12, fill: COLORS[c % COLORS.length]});
        r.appendChild(svg("title", {}, b.name + ": " + v));
        s.appendChild(r);
        td.appendChild(s);
        tr.appendChild(td);
      });
      body.appendChild(tr);
      drawn.bars.push({name: b.name, values: b.values.slice()});
    });
    box.appendChild(table);
    return drawn;
  }

  function budgets(box, rows) {
    var table = el("table"), head = el("tr");
    ["budget", "tenant", "user", "model", "period", "spend", "amount", "", "%", "crossed"].forEach(function (c) {
      head.appendChild(el("th", "", c));
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody")), drawn = [];
    rows.forEach(function (b) {
      var tr = el("tr"), pct = num(b.percent);
      [b.id, b.tenant_id, b.user_id || "", b.model || "", b.period].forEach(function (v) { tr.appendChild(el("td", "name", v)); });
      tr.appendChild(el("td", "n", b.spend + " " + b.currency));
      tr.appendChild(el("td", "n", b.amount + " " + b.currency));
      var td = el("td"), s = svg("svg", {width: 262, height: 14});
      s.appendChild(svg("rect", {x: 0, y: 1, width: 260, height: 12, fill: "#eee"}));
      s.appendChild(svg("rect", {x: 0, y: 1, width: (260 * Math.min(pct, 100) / 100).toFixed(1), height: 12,
                                 fill: pct >= 100 ? "#e15759" : (pct >= 80 ? "#f28e2b" : "#59a14f")}));
      td.appendChild(s);
      tr.appendChild(td);
      tr.appendChild(el("td", "n", b.percent + "%"));
      tr.appendChild(el("td", "", b.crossed || ""));
      body.appendChild(tr);
      drawn.push({id: b.id, tenant_id: b.tenant_id, period: b.period, currency: b.currency, spend: b.spend,
                  amount: b.amount, percent: b.percent, crossed: b.crossed});
    });
    box.appendChild(table);
    return drawn;
  }

  try {
    var data = JSON.parse(document.getElementById("dashboard-data").textContent);
    var f = data.filters;
    document.getElementById("title").textContent = data.title + (f.tenant ? ": " + f.tenant : "");
    document.getElementById("filters").textContent =
      "tenant: " + (f.tenant || "all") + "; from " + (f.since || "the start") + " to " + (f.until || "now") +
      " (end exclusive); time zone " + f.tz + "; generated " + data.generated_at;
    var main = document.getElementById("panels");
    data.panels.forEach(function (p) {
      var sec = el("section", "panel");
      sec.id = "panel-" + p.id;
      sec.dataset.panel = p.id;
      sec.dataset.kind = p.kind;
      sec.appendChild(el("h2", "", p.title));
      if (p.note) { sec.appendChild(el("p", "note", p.note)); }
      var drawn = [];
      if (p.kind === "budgets") {
        if (p.charts.length) { drawn = budgets(sec, p.charts); }
      } else {
        p.charts.forEach(function (c) {
          var box = el("div", "chart");
          if (c.currency) { box.appendChild(el("h3", "", c.currency)); }
          drawn.push(p.kind === "lines" ? lines(box, p, c) : bars(box, p, c));
          sec.appendChild(box);
        });
      }
      if (!p.charts.length) { sec.appendChild(el("p", "empty", "No data.")); }
      sec.dataset.series = JSON.stringify(drawn);
      main.appendChild(sec);
    });
    document.body.dataset.rendered = "1";
  } catch (e) {
    document.body.dataset.rendered = "error";
    document.body.dataset.error = String(e && e.stack || e);
  }
})();
"""
