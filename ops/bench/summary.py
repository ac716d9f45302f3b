#!/usr/bin/env python3
"""Regenerate the table of benchmark and chaos figures in docs/benchmarks.md from ops/bench/results/*.json
(between the `<!-- figures:begin -->` and `<!-- figures:end -->` markers).

    python ops/bench/summary.py           # rewrite docs/benchmarks.md
    python ops/bench/summary.py --print   # print the table only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "ops" / "bench" / "results"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table() -> str:
    rows: list[tuple[str, str, str, str, str]] = []  # id, figure, value, target, verdict
    sources: list[str] = []

    def src(doc: dict[str, Any], name: str) -> None:
        m = doc["machine"]
        sources.append(
            f"`{name}`: {doc['timestamp'][:10]}, commit {doc.get('git_commit')}, "
            f"{m.get('cpu_model')} ({m.get('cores')} cores)"
        )

    if doc := load("pricing.json"):
        src(doc, "pricing.json")
        r = doc["results"]
        eps = r["all_mix"]["events_per_s"]
        rows.append(
            (
                "P1",
                "validate + price, realistic mix, one core",
                f"{eps:,.0f} events/s",
                "≥ 100,000/s",
                verdict(eps >= 100_000),
            )
        )
        ratio = doc.get("ratio_token_subset_over_litellm")
        if ratio:
            rows.append(
                ("P1", "token events vs LiteLLM `cost_per_token`", f"{ratio:.1f}×", "≥ 20×", verdict(ratio >= 20))
            )
    if doc := load("pipeline.json"):
        src(doc, "pipeline.json")
        r = doc["results"]
        if (p2 := r.get("p2")) and "rate_alone_events_per_s" in p2:
            rows.append(
                (
                    "P2",
                    f"batched records: Kafka → exact totals in chDB, {p2['events']:,} events "
                    f"({p2['records']:,} records), workers {' + '.join(p2['roles'])}",
                    f"{p2['sustained_events_per_s']:,} events/s",
                    "≥ 30,000/s (floor 10,000)",
                    verdict(p2["sustained_events_per_s"] >= 30_000),
                )
            )
            rows.append(
                (
                    "P2",
                    f"share of `rate()` alone on the same events ({p2['rate_alone_events_per_s']:,}/s)",
                    f"{p2['share_of_rate_alone']:.1%}",
                    "≥ 50%",
                    verdict(p2["share_of_rate_alone"] >= 0.5),
                )
            )
        if (p2l := r.get("p2_labels")) and "share_of_p2_without" in p2l:
            rows.append(
                (
                    "P2",
                    "batched records with two label keys rolled up (MS_ROLLUP_LABELS=app,team), the same "
                    "events, beside P2 without",
                    f"{p2l['sustained_events_per_s']:,} events/s = {p2l['share_of_p2_without']:.1%}",
                    "",
                    "",
                )
            )
        if p2s := r.get("p2_single"):
            rows.append(
                (
                    "P2",
                    f"one event per record, {p2s['events']:,} events: share of a no-op Faust agent "
                    f"({p2s['noop_faust_messages_per_s']:,}/s; bare aiokafka {p2s['raw_consume_per_s']:,}/s)",
                    f"{p2s['sustained_events_per_s']:,} events/s = {p2s['share_of_noop_faust']:.1%}",
                    "≥ 80%",
                    verdict(p2s["share_of_noop_faust"] >= 0.8),
                )
            )
        if sc := r.get("scale"):
            rows.append(
                (
                    "scale",
                    f"single-event records: {' + '.join(sc['roles'])} vs one worker "
                    f"({sc['sustained_events_per_s']:,} events/s)",
                    f"{sc['speedup_vs_one_all_worker']:.2f}×",
                    "≥ 1.3×, exact",
                    verdict(sc["speedup_vs_one_all_worker"] >= 1.3),
                )
            )
        if p3 := r.get("p3"):
            rows.append(
                (
                    "P3",
                    f"produced → in the 1-minute rollup at {p3['achieved_rate_per_s']:,}/s, batched, p50 / p99",
                    f"{p3['p50_s']} s / {p3['p99_s']} s",
                    "p99 ≤ 2 s",
                    verdict(p3["p99_s"] <= 2),
                )
            )
        if p4 := r.get("p4"):
            rows.append(
                (
                    "P4",
                    f"worker RSS, {p4['window_keys']:,} active window keys",
                    f"{p4['rss_mib']:,} MiB",
                    "≤ 1,024 MiB",
                    verdict(p4["rss_mib"] <= 1024),
                )
            )
    if doc := load("dedup.json"):
        src(doc, "dedup.json")
        r = doc["results"]
        disk, mem = r["rocksdb"], r["memory"]
        rows.append(
            (
                "P4b",
                f"rating worker RSS (peak) with {r['ids_held']:,} event ids held for dedup on disk "
                f"({r['state_bytes_on_disk'] / 2**30:.1f} GiB), {disk['events']:,} events with 10% duplicates of them",
                f"{disk['rss_mib_peak']:,} MiB",
                "≤ 1,024 MiB",
                verdict(disk["rss_mib_peak"] <= 1024),
            )
        )
        rows.append(
            (
                "P4b",
                "restart → first new event counted, with those ids on disk (in memory, empty: "
                f"{mem['restart_to_first_count_s']} s)",
                f"{disk['restart_to_first_count_s']} s",
                "reported",
                "—",
            )
        )
        alone = r["rater_alone"]
        rows.append(
            (
                "P4b",
                f"added cost per event, the rater alone ({alone['memory_us_per_event']} µs in memory, "
                f"{alone['disk_us_per_event']} µs on disk); through the worker {disk['events_per_s']:,} vs "
                f"{mem['events_per_s']:,} events/s",
                f"+{alone['added_us_per_event']} µs",
                "reported",
                "—",
            )
        )
    if doc := load("query.json"):
        src(doc, "query.json")
        for q in doc.get("summary", []):
            rows.append(("P5", q["what"], f"{q['p50_ms']} ms (p50)", "≤ 200 ms", verdict(q["p50_ms"] <= 200)))
    if doc := load("ingest.json"):
        src(doc, "ingest.json")
        r = doc["results"]
        produce = r["produce"]["sustained_events_per_s"]
        for run in r["ingest"]:
            rows.append(
                (
                    "ingest",
                    f"HTTP ingest, {run['batch_events']}-event JSON Lines requests on {run['concurrency']} "
                    f"keep-alive connection(s), each answered after Kafka's acknowledgement (request p50 / p99: "
                    f"{run['request_p50_ms']} / {run['request_p99_ms']} ms); `meterstream produce` of the same "
                    f"events {produce:,}/s",
                    f"{run['sustained_events_per_s']:,} events/s = {run['sustained_events_per_s'] / produce:.0%}",
                    "reported",
                    "—",
                )
            )
    # every chaos results file; a scenario measured in several shows its newest run
    newest: dict[str, tuple[str, dict[str, Any], str]] = {}
    for path in sorted(RESULTS.glob("chaos*.json")):
        doc = json.loads(path.read_text())
        for r in doc["results"]:
            if r["scenario"] not in newest or doc["timestamp"] > newest[r["scenario"]][0]:
                newest[r["scenario"]] = (doc["timestamp"], r, path.name)
    used = {name for _, _, name in newest.values()}
    for name in sorted(used):
        src(json.loads((RESULTS / name).read_text()), name)
    order = ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "soak", "short"]
    for scenario in sorted(newest, key=lambda s: order.index(s) if s in order else len(order)):
        r = newest[scenario][1]
        alerts = f"{r['alerts_delivered']}/{r['alerts_expected']} alerts"
        exact = (
            r["totals_diff"] == 0
            and not r["alerts_missing"]
            and r["alerts_repeated"] == 0
            and not r["alerts_unexpected"]
        )
        value, target = f"diff {r['totals_diff']}", "diff 0, every alert once"
        if rss := r.get("rss"):
            value += "; RSS " + ", ".join(
                f"{role} {g['after_warmup_mib']}→{g['end_mib']} MiB ({g['growth_pct']:+.1f}%)"
                for role, g in rss.items()
            )
            target += "; RSS growth ≤ 5% after warm-up"
            exact = exact and all(g["growth_pct"] <= 5 for g in rss.values())
        rows.append(
            (
                r["scenario"],
                f"{r['what']}: {r['produced']:,} produced, {r['counted']:,} counted, "
                f"{r['dead_lettered']:,} dead-lettered, {alerts}",
                value,
                target,
                verdict(exact),
            )
        )
    lines = ["| | figure | value | target | |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "Measured: " + "; ".join(sources) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--print", action="store_true")
    ap.add_argument("--readme", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    text = table()
    if args.print:
        print(text)
        return 0
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        print(f"{args.readme} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.readme.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
