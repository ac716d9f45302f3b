"""`report --plot`: spend over time per currency (matplotlib, the `plot` extra)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any


def spend_over_time(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[Any, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        series[r["currency"]][r["window_start"]] += r["cost"]
    fig, axes = plt.subplots(len(series) or 1, 1, figsize=(9, 3 * max(1, len(series))), squeeze=False)
    for ax, (currency, points) in zip(axes[:, 0], sorted(series.items())):
        xs = sorted(points)
        # plotting needs floats; the figures themselves stay Decimal everywhere else
        ax.step(xs, [float(points[x]) for x in xs], where="post")
        ax.set_ylabel(currency)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
