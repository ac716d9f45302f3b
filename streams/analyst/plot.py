"""`report --plot`: cost over time, one chart per currency, one line per key (the 8 keys of the
highest cost in that currency, the rest summed as "other"), a legend, and one time axis over
the range asked for (else the windows found), labelled. matplotlib, the `plot` extra."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

SERIES = 8  # keys drawn apiece; the others are one "other" line
OTHER = "other"

Chart = dict[str, dict[str, list[tuple[dt.datetime, Decimal]]]]  # currency -> key -> points


def series(rows: list[dict[str, Any]], keys: list[str], top: int = SERIES) -> Chart:
    """The lines drawn: per currency, per key (its columns joined with " / "), the cost of each
    window (absent windows as 0), exact; beyond the `top` keys of highest total, one "other"."""
    by: dict[str, dict[str, dict[dt.datetime, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    windows: dict[str, set[dt.datetime]] = defaultdict(set)
    for r in rows:
        name = " / ".join(str(r[k]) for k in keys) or "total"
        if len(keys) < 2 and "tenant_id" not in keys and len({x["tenant_id"] for x in rows}) > 1:
            name = f"{r['tenant_id']}: {name}"
        cur, ws = r["currency"], r["window_start"]
        by[cur][name][ws] = by[cur][name].get(ws, Decimal(0)) + Decimal(r["cost"])
        windows[cur].add(ws)
    chart: Chart = {}
    for cur, lines in sorted(by.items()):
        ranked = sorted(lines, key=lambda n: (-sum(lines[n].values()), n))
        kept, rest = ranked[:top], ranked[top:]
        out: dict[str, list[tuple[dt.datetime, Decimal]]] = {}
        for name in kept:
            out[name] = [(w, lines[name].get(w, Decimal(0))) for w in sorted(windows[cur])]
        if rest:
            out[OTHER] = [
                (w, sum((lines[n].get(w, Decimal(0)) for n in rest), Decimal(0))) for w in sorted(windows[cur])
            ]
        chart[cur] = out
    return chart


def usage_over_time(
    rows: list[dict[str, Any]],
    path: Path,
    keys: list[str],
    title: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Chart:
    """Draw the chart to `path` (PNG); return what was drawn (series())."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    chart = series(rows, keys)
    fig, axes = plt.subplots(max(1, len(chart)), 1, figsize=(10, 3.2 * max(1, len(chart))), squeeze=False, sharex=True)
    for ax, (currency, lines) in zip(axes[:, 0], chart.items()):
        for name, points in lines.items():
            # plotting needs floats; the figures themselves stay Decimal everywhere else
            ax.step([p[0] for p in points], [float(p[1]) for p in points], where="post", label=name)
        ax.set_ylabel(f"cost ({currency})")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small", ncol=2)
    if since is not None or until is not None:
        left, right = axes[0, 0].get_xlim()
        axes[0, 0].set_xlim(
            mdates.date2num(since) if since is not None else left,
            mdates.date2num(until) if until is not None else right,
        )
    axes[-1, 0].set_xlabel("window start (UTC)")
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return chart
