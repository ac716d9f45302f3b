#!/usr/bin/env python3
"""P5 analyst query benchmark: top-100 users by month spend over a 10M-row ledger, chDB.

Opens a fresh embedded store (chDB) the way meterstream does (``streams.storage.open_store``,
migrations by ``streams.storage.migrations.migrate``), fills the ledger in the engine with
``INSERT INTO ledger SELECT ... FROM numbers(N)`` (a deterministic, skewed, realistic mix priced
with the shipped catalogs' prices, exact decimals), derives the per-user rollups exactly as the
stream would have left them (calendar month and day), then times the analysts' question
"top-100 users by spend in one month", one tenant and all tenants:

  (a)     the analysts' path: the spend_by_user_month view, in the shape ``meterstream report
          --by user --window total`` reads for a month-aligned range (streams/analyst/reads.py),
  (a-day) the same over spend_by_user_day (the path before the month rollup; comparison),
  (b)     the ledger itself: ``ledger FINAL``, GROUP BY user (comparison),

and checks that every (a*) returns exactly the same 100 (tenant, user, currency, cost, events)
rows as (b), Decimal-exact (a mismatch aborts the run with exit 2). See ops/bench/README.md.

    python ops/bench/bench_query.py [--rows N] [--runs R] [--warmup W] [--data-dir DIR] [--keep]
                                    [--month YYYY-MM] [--currency C] [--windows month[,day][,hour][,minute]]
                                    [--no-optimize] [--investigate] [--json OUT] [--check]

Target: the analysts' query (a) <= 200 ms (p50 of the timed runs, as filled) on 10,000,000
ledger rows, for one tenant and for all tenants: the results file's "summary".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from common import REPO, RESULTS, git_commit  # noqa: E402  (ops/bench/common.py)
from common import machine as common_machine

DEFAULT_JSON = RESULTS / "query.json"
TARGET_MS = 200.0

# ------------------------------------------------------------------------------------------
# The data. Everything is a function of the row number (cityHash64 of it with a salt), so the
# same --rows gives the same ledger, byte for byte, on any machine.
# ------------------------------------------------------------------------------------------
TS_FROM = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # Jan, Feb, Mar 2025: 3 partitions
SPAN_DAYS = 90
USERS = 100_000
ZIPF_S = 0.8  # user popularity ~ 1 / (rank + 1)^0.8: a few heavy service accounts, a long tail
SRC_PARTITIONS = 4  # topic_partitions; events are keyed by (tenant, user) like streams/producer.py
# Tenants and their share of the users (a user belongs to one tenant).
TENANTS: list[tuple[str, int]] = [("acme", 40), ("globex", 25), ("initech", 15), ("umbrella", 12), ("hooli", 8)]
# ~20 models: (provider, model, weight, region). Prices come from the shipped catalogs.
MODELS: list[tuple[str, str, float, str]] = [
    ("openai", "gpt-4o", 16, ""),
    ("openai", "gpt-4o-mini", 16, ""),
    ("openai", "gpt-4o-2024-08-06", 4, ""),
    ("openai", "gpt-4o-2024-05-13", 1, ""),
    ("openai", "gpt-3.5-turbo", 3, ""),
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 8, "us-east-1"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", 6, "us-east-1"),
    ("bedrock", "anthropic.claude-3-opus-20240229-v1:0", 1, "us-west-2"),
    ("bedrock", "anthropic.claude-instant-v1", 1.5, "us-west-2"),
    ("bedrock", "meta.llama2-70b-chat-v1", 1.5, "us-east-1"),
    ("bedrock", "mistral.mixtral-8x7b-instruct-v0:1", 1.5, "us-west-2"),
    ("bedrock", "mistral.mistral-large-2402-v1:0", 1, "eu-central-1"),
    ("bedrock", "cohere.command-r-plus-v1:0", 1.5, "us-east-1"),
    ("bedrock", "cohere.command-r-v1:0", 1.5, "us-east-1"),
    ("bedrock", "amazon.titan-text-lite-v1", 1, "us-east-1"),
    ("bedrock", "cohere.embed-english-v3", 3, "us-east-1"),
    ("bailian", "qwen-max", 4, "cn-beijing"),
    ("bailian", "qwen-plus", 5, "cn-beijing"),
    ("bailian", "qwen-turbo", 5, "cn-beijing"),
    ("bailian", "qwen2-7b-instruct", 1, "cn-beijing"),
]
EMBEDDING_MODELS = {"cohere.embed-english-v3"}  # input tokens only
HOME_MODEL_SHARE = 70  # % of a user's events on the user's "home" model (stickiness), rest: the mix
CACHED_SHARE = 30  # % of events on models with a cached-input price that carry cached tokens
BATCH_SHARE = 5  # % of OpenAI events in batch mode (catalog batch_factor 0.5)
APPS = ["chat", "search", "support-bot", "summarizer", "code-assist", "rag", "agent", "translate"]

ROLLUP_COLS = (
    "window_start, tenant_id, user_id, currency, src_partition, cost, events, input_tokens, "
    "output_tokens, cached_input_tokens, cache_write_tokens, images, guardrail_units, version"
)
ROLLUP_WINDOWS = ("month", "day", "hour", "minute")  # rollup_user_<w>; month is the analysts' path


def _lit(s: str) -> str:
    """A SQL string literal of one of our own constants (model ids, units: no quotes inside)."""
    if "'" in s or "\\" in s:
        raise ValueError(f"unexpected quote in {s!r}")
    return f"'{s}'"


def _arr(values: list[Any], fn: str = "") -> str:
    if fn == "dec":
        return "[" + ", ".join(f"toDecimal128('{v}', 12)" for v in values) + "]"
    if fn == "str":
        return "[" + ", ".join(_lit(v) for v in values) + "]"
    return "[" + ", ".join(str(v) for v in values) + "]"


def model_table(catalog: Any) -> list[dict[str, Any]]:
    """Per-model exact per-token prices (realtime and batch) from the shipped catalogs; the same
    catalog entry must be in force over the whole time range."""
    from pricing.engine import _unit_text, money_str

    ts_to = TS_FROM + dt.timedelta(days=SPAN_DAYS) - dt.timedelta(milliseconds=1)
    out = []
    for provider, model, weight, region in MODELS:
        prod = catalog.lookup(provider, model, TS_FROM)
        if catalog.lookup(provider, model, ts_to) is not prod:
            raise SystemExit(f"bench_query: the price of {provider}/{model} changes within the range")

        def price(dim: str) -> tuple[Decimal, Decimal, str, str]:
            specs = prod.prices.get(dim) or []
            if not specs:
                return Decimal(0), Decimal(0), "", "0", "0"
            p = specs[0]
            factor = Decimal(prod.spec.batch_factor) if prod.spec.batch_factor is not None else Decimal(1)
            return (
                p.price / p.per,
                p.price * factor / p.per,
                _unit_text(p.per, dim, ""),
                money_str(p.price),
                money_str(p.price * factor),
            )

        pin, pin_b, uin, tin, tin_b = price("input_tokens")
        pout, pout_b, uout, tout, tout_b = (
            price("output_tokens") if model not in EMBEDDING_MODELS else (Decimal(0), Decimal(0), "", "0", "0")
        )
        pc, pc_b, uc, tc, tc_b = price("cached_input_tokens")
        out.append(
            {
                "provider": provider,
                "model": model,
                "weight": weight,
                "region": region,
                "currency": prod.currency,
                "catalog_version": prod.catalog_version,
                "batch": provider == "openai" and prod.spec.batch_factor is not None,
                "pin": pin,
                "pin_b": pin_b,
                "pout": pout,
                "pout_b": pout_b,
                "pc": pc,
                "pc_b": pc_b,
                "uin": uin,
                "uout": uout,
                "uc": uc,
                "tin": tin,
                "tout": tout,
                "tc": tc,
                "tin_b": tin_b,
                "tout_b": tout_b,
                "tc_b": tc_b,
            }
        )
    for m in out:  # exact at 12 places: the ledger's scale
        for k in ("pin", "pin_b", "pout", "pout_b", "pc", "pc_b"):
            if m[k].as_tuple().exponent < -12 and m[k] != m[k].quantize(Decimal("1e-12")):
                raise SystemExit(f"bench_query: {m['model']} {k} {m[k]} needs more than 12 places")
            m[k] = format(m[k].normalize(), "f") if m[k] else "0"
    return out


def fill_ledger_sql(rows: int, models: list[dict[str, Any]]) -> str:
    """INSERT INTO ledger SELECT ... FROM numbers(rows): all in the engine."""
    h = "(cityHash64(number, {salt}) / 18446744073709551616.0)"  # uniform [0, 1) per row and salt

    def u(salt: int) -> str:
        return h.format(salt=salt)

    span_ms = SPAN_DAYS * 86_400_000
    tw = [w for _, w in TENANTS]
    tcum = [sum(tw[: i + 1]) for i in range(len(tw))]
    mcum, acc = [], 0.0
    for m in models:
        acc += m["weight"]
        mcum.append(round(acc / sum(x["weight"] for x in models), 9))
    mcum[-1] = 1.0
    a = 1.0 - ZIPF_S
    top = (USERS + 1) ** a - 1
    # user rank ~ power law: inverse CDF of a continuous Zipf(s) on [0, USERS)
    user_expr = f"least({USERS - 1}, toUInt32(floor(pow(1 + {u(1)} * {top!r}, {1 / a!r}) - 1)))"
    cached_models = [bool(m["pc"] != "0") for m in models]
    lo = int(TS_FROM.timestamp() * 1000)
    return f"""
INSERT INTO ledger
SELECT
    tenant_id, event_id, user_id, provider, model, region, mode, ts, currency, cost,
    input_tokens, output_tokens, cached_input_tokens, 0 AS cache_write_tokens, 0 AS images,
    0 AS guardrail_units, line_items, usage, labels, catalog_version, false AS estimated,
    src_partition, src_offset, 0 AS src_index, 1 AS version, ingested_at
FROM (
    SELECT *,
        toDecimal128(input_tokens, 0) * if(is_batch, {_arr([m["pin_b"] for m in models], "dec")}[mi],
                                                      {_arr([m["pin"] for m in models], "dec")}[mi]) AS c_in,
        toDecimal128(output_tokens, 0) * if(is_batch, {_arr([m["pout_b"] for m in models], "dec")}[mi],
                                                       {_arr([m["pout"] for m in models], "dec")}[mi]) AS c_out,
        toDecimal128(cached_input_tokens, 0) * if(is_batch, {_arr([m["pc_b"] for m in models], "dec")}[mi],
                                                           {_arr([m["pc"] for m in models], "dec")}[mi]) AS c_cached,
        toDecimal128(c_in + c_out + c_cached, 12) AS cost,
        concat('[',
            '{{"dimension":"input_tokens","quantity":"', toString(input_tokens), '","unit":"',
            {_arr([m["uin"] for m in models], "str")}[mi], '","unit_price":"', unit_in, '","cost":"', toString(c_in), '"}}',
            if(output_tokens > 0, concat(',{{"dimension":"output_tokens","quantity":"', toString(output_tokens),
               '","unit":"', {_arr([m["uout"] for m in models], "str")}[mi], '","unit_price":"', unit_out,
               '","cost":"', toString(c_out), '"}}'), ''),
            if(cached_input_tokens > 0, concat(',{{"dimension":"cached_input_tokens","quantity":"',
               toString(cached_input_tokens), '","unit":"', {_arr([m["uc"] for m in models], "str")}[mi],
               '","unit_price":"', unit_cached, '","cost":"', toString(c_cached), '"}}'), ''),
            ']') AS line_items,
        concat('{{"input_tokens":', toString(input_tokens),
               if(output_tokens > 0, concat(',"output_tokens":', toString(output_tokens)), ''),
               if(cached_input_tokens > 0, concat(',"cached_input_tokens":', toString(cached_input_tokens)), ''),
               '}}') AS usage
    FROM (
        SELECT *,
            {_arr([m["provider"] for m in models], "str")}[mi] AS provider,
            {_arr([m["model"] for m in models], "str")}[mi] AS model,
            {_arr([m["region"] for m in models], "str")}[mi] AS region,
            {_arr([m["currency"] for m in models], "str")}[mi] AS currency,
            {_arr([m["catalog_version"] for m in models], "str")}[mi] AS catalog_version,
            {_arr([int(m["batch"]) for m in models])}[mi] = 1 AND {u(8)} * 100 < {BATCH_SHARE} AS is_batch,
            if(is_batch, 'batch', 'realtime') AS mode,
            -- log-normal token counts: median ~800 in, ~250 out (Box-Muller on two uniforms)
            toUInt64(least(400000, greatest(1, exp(6.7 + 1.2 * sqrt(-2 * log(1 - {u(9)})) * cos(2 * pi() * {u(10)}))))) AS input_tokens,
            if(model IN ({", ".join(_lit(x) for x in sorted(EMBEDDING_MODELS))}), toUInt64(0),
               toUInt64(least(16000, greatest(1, exp(5.5 + 1.0 * sqrt(-2 * log(1 - {u(11)})) * sin(2 * pi() * {u(10)})))))) AS output_tokens,
            if({_arr([int(c) for c in cached_models])}[mi] = 1 AND {u(12)} * 100 < {CACHED_SHARE},
               toUInt64(1024 + 128 * (cityHash64(number, 13) % 120)), toUInt64(0)) AS cached_input_tokens,
            if(is_batch, {_arr([m["tin_b"] for m in models], "str")}[mi],
               {_arr([m["tin"] for m in models], "str")}[mi]) AS unit_in,
            if(is_batch, {_arr([m["tout_b"] for m in models], "str")}[mi],
               {_arr([m["tout"] for m in models], "str")}[mi]) AS unit_out,
            if(is_batch, {_arr([m["tc_b"] for m in models], "str")}[mi],
               {_arr([m["tc"] for m in models], "str")}[mi]) AS unit_cached,
            -- about the arrival order: the offset order is the time order, give or take a few
            -- seconds, and 1 % of events arrive up to 2 hours late
            fromUnixTimestamp64Milli(toInt64(greatest({lo}, {lo} + intDiv(number * {span_ms}, {rows})
                - if({u(14)} < 0.01, cityHash64(number, 15) % 7200000, cityHash64(number, 15) % 5000))), 'UTC') AS ts,
            ts + toIntervalMillisecond(200 + cityHash64(number, 16) % 3000) AS ingested_at,
            if({u(17)} < 0.45, map('app', {_arr(APPS, "str")}[1 + cityHash64(number, 18) % {len(APPS)}],
                                   'env', if({u(19)} < 0.85, 'prod', 'staging')),
               map()) AS labels,
            toString(reinterpretAsUUID(concat(reinterpretAsString(cityHash64(number, 20)),
                                              reinterpretAsString(cityHash64(number, 21))))) AS event_id
        FROM (
            SELECT number, uid, tenant_id, user_id, src_partition,
                -- the user's home model 70 % of the time, else the overall mix
                arrayFirstIndex(c -> c > if({u(3)} * 100 < {HOME_MODEL_SHARE},
                                            cityHash64(uid, 4) / 18446744073709551616.0, {u(5)}),
                                {_arr(mcum)}) AS mi,
                row_number() OVER (PARTITION BY src_partition ORDER BY number) - 1 AS src_offset
            FROM (
                SELECT number, {user_expr} AS uid,
                    {_arr([t for t, _ in TENANTS], "str")}[arrayFirstIndex(c -> c > cityHash64(uid, 2) % 100, {_arr(tcum)})] AS tenant_id,
                    concat('u-', leftPad(toString(uid), 6, '0')) AS user_id,
                    toUInt32(cityHash64(tenant_id, user_id) % {SRC_PARTITIONS}) AS src_partition
                FROM numbers({rows})
            )
        )
    )
)
"""


def fill_rollup_sql(window: str) -> str:
    """The rollup rows the stream leaves for these ledger rows: per (window, tenant, user,
    currency, source partition) the absolute totals, versioned by the last source offset. The
    window start is the stream's own (streams/sink/windows.py; the month: its first instant, UTC)."""
    from streams.sink.windows import BY_NAME

    return f"""
INSERT INTO rollup_user_{window} ({ROLLUP_COLS})
SELECT toDateTime64({BY_NAME[window].sql_start("ts")}, 3, 'UTC') AS window_start, tenant_id, user_id, currency,
       src_partition, sum(cost), count(), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens),
       sum(cache_write_tokens), sum(images), sum(guardrail_units), max(src_offset)
FROM ledger FINAL
GROUP BY window_start, tenant_id, user_id, currency, src_partition
"""


# ------------------------------------------------------------------------------------------
# The queries
# ------------------------------------------------------------------------------------------
def rollup_query(view: str, tenant: bool) -> str:
    """streams/analyst/reads.py's "total" shape over the view, ranked: ORDER BY cost DESC LIMIT 100."""
    return (
        f"SELECT tenant_id, user_id, currency, sum(cost) AS cost, sum(events) AS events "
        f"FROM {view} WHERE {_cond(tenant)} GROUP BY tenant_id, user_id, currency "
        f"ORDER BY cost DESC, tenant_id, user_id LIMIT 100"
    )


def _cond(tenant: bool) -> str:
    return ("tenant_id = {tenant:String} AND " if tenant else "") + (
        "currency = {currency:String} AND window_start >= {since:DateTime64(3, 'UTC')} "
        "AND window_start < {until:DateTime64(3, 'UTC')}"
    )


def variants(tenant: bool, windows: list[str]) -> list[tuple[str, str, str]]:
    """--investigate: other ways to the same answer, each checked against the ledger's."""
    tail = "GROUP BY tenant_id, user_id, currency ORDER BY cost DESC, tenant_id, user_id LIMIT 100"
    sel = "SELECT tenant_id, user_id, currency, sum(cost) AS cost, sum(events) AS events"
    out = [
        (
            "(v1) rollup_user_month FINAL, one GROUP BY",
            f"{sel} FROM rollup_user_month FINAL WHERE {_cond(tenant)} {tail}",
            "the same rows without the view's per-window GROUP BY",
        ),
        (
            "(v2) rollup_user_month, no FINAL (bound)",
            f"{sel} FROM rollup_user_month WHERE {_cond(tenant)} {tail}",
            "NOT a fix: wrong whenever superseded versions are not merged yet; shows what FINAL costs",
        ),
    ]
    if "day" in windows:
        out.append(
            (
                "(v3) rollup_user_day FINAL, one GROUP BY",
                f"{sel} FROM rollup_user_day FINAL WHERE {_cond(tenant)} {tail}",
                "the day rollup without the view's per-day GROUP BY",
            )
        )
    return out


def ledger_query(tenant: bool) -> str:
    cond = ("tenant_id = {tenant:String} AND " if tenant else "") + (
        "currency = {currency:String} AND ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}"
    )
    return (
        f"SELECT tenant_id, user_id, currency, sum(cost) AS cost, count() AS events "
        f"FROM ledger FINAL WHERE {cond} GROUP BY tenant_id, user_id, currency "
        f"ORDER BY cost DESC, tenant_id, user_id LIMIT 100"
    )


def _pct(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    import math

    k = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[k - 1]


def timed(store: Any, sql: str, params: dict[str, Any], runs: int, warmup: int) -> tuple[dict[str, Any], list[dict]]:
    rows: list[dict] = []
    for _ in range(warmup):
        rows = store.query(sql, params)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = store.query(sql, params)
        times.append((time.perf_counter() - t0) * 1000)
    s = sorted(times)
    stats = {
        "min_ms": round(s[0], 1),
        "p50_ms": round(_pct(s, 50), 1),
        "p95_ms": round(_pct(s, 95), 1),
        "max_ms": round(s[-1], 1),
        "runs_ms": [round(t, 1) for t in times],
        "rows": len(rows),
    }
    return stats, rows


# ------------------------------------------------------------------------------------------
# Machine description
# ------------------------------------------------------------------------------------------
def _machine() -> dict[str, Any]:
    """ops/bench/common.py's description (what summary.py reads) + allowed cores and chdb."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import chdb

        chdb_v = getattr(chdb, "__version__", None) or version("chdb")
        if getattr(chdb, "engine_version", None):
            chdb_v = f"{chdb_v} (engine {chdb.engine_version})"
    except (ImportError, PackageNotFoundError):
        chdb_v = None
    return {**common_machine(), "cores_allowed": len(os.sched_getaffinity(0)), "chdb": chdb_v}


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _parts(store: Any) -> dict[str, dict[str, int]]:
    rows = store.query(
        "SELECT table, count() AS parts, uniqExact(partition) AS partitions, sum(rows) AS rows, "
        "sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = currentDatabase() AND active "
        "AND (table = 'ledger' OR table LIKE 'rollup_user_%') GROUP BY table ORDER BY table"
    )
    return {
        r["table"]: {
            "parts": int(r["parts"]),
            "partitions": int(r["partitions"]),
            "rows": int(r["rows"]),
            "mib": round(int(r["bytes"]) / 2**20, 1),
        }
        for r in rows
    }


# ------------------------------------------------------------------------------------------
SCOPES = (("one tenant", True), ("all tenants", False))
Row = tuple[str, str, str, Decimal, int]


def _rows(rows: list[dict[str, Any]]) -> list[Row]:
    return [(r["tenant_id"], r["user_id"], r["currency"], r["cost"], r["events"]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="ledger rows (default 10,000,000)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per query (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs before them (default 3)")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="MS_DATA_DIR to use (the chDB store is DIR/chdb); default: a fresh temp dir",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir (printed) instead of removing it")
    ap.add_argument("--month", default="2025-02", help="the month ranked, YYYY-MM (default 2025-02; data: 2025-01..03)")
    ap.add_argument("--currency", default="USD", help="the currency ranked (default USD; costs are never mixed)")
    ap.add_argument(
        "--windows",
        default="month,day",
        help="rollup_user_* tables to fill and rank from, comma-separated among month,day,hour,minute "
        "(default month,day; month always: it is (a); the others add (a-<window>) comparisons)",
    )
    ap.add_argument(
        "--no-optimize", action="store_true", help="skip the second round of timings after OPTIMIZE TABLE ... FINAL"
    )
    ap.add_argument(
        "--investigate", action="store_true", help="also time variants (no view, no FINAL) and save EXPLAINs of (a)"
    )
    ap.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON.relative_to(REPO)})"
    )
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = ap.parse_args(argv)
    command = shlex.join([Path(sys.executable).as_posix(), *sys.argv])
    asked = {w.strip() for w in args.windows.split(",") if w.strip()}
    if "month" not in asked or asked - set(ROLLUP_WINDOWS):
        ap.error(f"--windows must include month and name only {', '.join(ROLLUP_WINDOWS)}")
    windows = [w for w in ROLLUP_WINDOWS if w in asked]  # month first
    month = dt.datetime.strptime(args.month, "%Y-%m").replace(tzinfo=dt.UTC)
    until = (month + dt.timedelta(days=32)).replace(day=1)

    sys.path.insert(0, str(REPO))  # run from a checkout even without the editable install
    from pricing import load_catalog
    from streams.settings import Settings
    from streams.storage import open_store
    from streams.storage.migrations import migrate

    machine = _machine()
    print("P5 analyst query: top-100 users by month spend, embedded engine (chDB)")
    print(
        f"  machine : {machine['cpu_model']}, {machine['cores']} cores ({machine['cores_allowed']} allowed), "
        f"{machine['memory_gib']} GiB RAM, {machine['python']}, chdb {machine['chdb']}"
    )
    print(f"  command : {command}")
    print(f"  commit  : {git_commit()}   load average at start: {_loadavg()}")

    tmp = None
    if args.data_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="ms-bench-query-"))
        data_dir = tmp
    else:
        data_dir = args.data_dir
    # clickhouse_url=None: always the embedded engine, whatever MS_CLICKHOUSE_URL says
    settings = Settings(data_dir=data_dir, clickhouse_url=None)
    print(f"  data dir: {settings.chdb_path}" + (" (temporary)" if tmp else ""), flush=True)

    models = model_table(load_catalog())
    report: dict[str, Any] = {
        "benchmark": "P5 analyst query: top-100 users by month spend (chDB)",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "git_commit": git_commit(),
        "machine": machine,
        "summary": [],
        "target": {
            "ms": TARGET_MS,
            "statistic": "p50 of the timed runs of (a) spend_by_user_month, as filled, one tenant and all tenants",
        },
        "params": {
            "rows": args.rows,
            "runs": args.runs,
            "warmup": args.warmup,
            "month": args.month,
            "currency": args.currency,
            "users": USERS,
            "zipf_s": ZIPF_S,
            "tenants": dict(TENANTS),
            "models": len(models),
            "src_partitions": SRC_PARTITIONS,
            "ts_range": [TS_FROM.isoformat(), (TS_FROM + dt.timedelta(days=SPAN_DAYS)).isoformat()],
            "rollup_windows": windows,
        },
        "load_average": {"start": _loadavg()},
    }
    failed = False
    store = open_store(settings)
    try:
        if store.backend != "chdb":
            raise SystemExit(f"bench_query: expected the embedded engine, got {store.backend}")
        applied = migrate(store, settings.migrations_dir)
        existing = store.query("SELECT count() AS n FROM ledger")[0]["n"]
        meta = store.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND name = 'bench_query_meta'"
        )
        print(f"  migrations applied now: {[m.path.name for m in applied]}")

        # 1. fill (or re-use a store this script filled with the same parameters)
        fill: dict[str, Any] = {}
        meta_params = json.dumps({"rows": args.rows, "windows": windows}, sort_keys=True)
        if existing:
            if not (meta and store.query("SELECT params FROM bench_query_meta")[0]["params"] == meta_params):
                raise SystemExit(
                    f"bench_query: {settings.chdb_path} already holds {existing:,} ledger rows that this "
                    "script did not write with these --rows/--windows; use an empty --data-dir"
                )
            print(f"  re-using the filled store ({existing:,} ledger rows)")
            fill["reused"] = True
        else:
            t0 = time.perf_counter()
            store.command(fill_ledger_sql(args.rows, models))
            fill["ledger_s"] = round(time.perf_counter() - t0, 2)
            print(f"  ledger  : {args.rows:,} rows inserted in {fill['ledger_s']:.1f} s", flush=True)
            for w in windows:
                t0 = time.perf_counter()
                store.command(fill_rollup_sql(w))
                fill[f"rollup_user_{w}_s"] = round(time.perf_counter() - t0, 2)
                print(f"  rollup_user_{w}: filled in {fill[f'rollup_user_{w}_s']:.1f} s", flush=True)
            store.command("CREATE TABLE IF NOT EXISTS bench_query_meta (params String) ENGINE = Log")
            store.insert("bench_query_meta", [{"params": meta_params}])
        report["fill"] = fill
        n = store.query(
            "SELECT count() AS n, uniqExact(tenant_id, user_id) AS users, uniqExact(model) AS models, "
            "min(ts) AS lo, max(ts) AS hi FROM ledger"
        )[0]
        if n["n"] != args.rows:
            raise SystemExit(f"bench_query: ledger holds {n['n']:,} rows, expected {args.rows:,}")
        counts = {
            "ledger": n["n"],
            "ledger_distinct_users": n["users"],
            "ledger_models": n["models"],
            "ledger_ts": [str(n["lo"]), str(n["hi"])],
        }
        params = {
            "currency": args.currency,
            "since": month.strftime("%Y-%m-%d %H:%M:%S.000"),
            "until": until.strftime("%Y-%m-%d %H:%M:%S.000"),
        }
        counts["ledger_rows_in_month"] = store.query(
            "SELECT count() AS n FROM ledger WHERE ts >= {since:DateTime64(3, 'UTC')} AND ts < {until:DateTime64(3, 'UTC')}",
            params,
        )[0]["n"]
        for w in windows:
            counts[f"rollup_user_{w}"] = store.query(f"SELECT count() AS n FROM rollup_user_{w}")[0]["n"]
            counts[f"rollup_user_{w}_in_month"] = store.query(
                f"SELECT count() AS n FROM rollup_user_{w} WHERE window_start >= {{since:DateTime64(3, 'UTC')}} "
                "AND window_start < {until:DateTime64(3, 'UTC')}",
                params,
            )[0]["n"]
        report["counts"] = counts
        print("  rows    : " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items()))
        _sanity(store, models, windows)

        tenant = store.query("SELECT tenant_id, count() AS n FROM ledger GROUP BY tenant_id ORDER BY n DESC LIMIT 1")[
            0
        ]["tenant_id"]
        params["tenant"] = tenant
        report["params"]["tenant"] = tenant
        print(
            f"  query   : top 100 (tenant, user) by {args.currency} spend in {args.month}; one tenant = {tenant!r} "
            f"(the largest), and all tenants; {args.warmup} warm-up + {args.runs} timed runs each",
            flush=True,
        )

        # 2. time (a), the comparisons and (b), as filled and after OPTIMIZE ... FINAL
        rounds = ["as filled" if not fill.get("reused") else "as found (re-used store)"]
        if not args.no_optimize:
            rounds.append("after OPTIMIZE FINAL")
        report["rounds"] = []
        for label in rounds:
            if label == "after OPTIMIZE FINAL":
                t0 = time.perf_counter()
                for t in ["ledger", *(f"rollup_user_{w}" for w in windows)]:
                    store.command(f"OPTIMIZE TABLE {t} FINAL")
                print(f"\n  OPTIMIZE TABLE ... FINAL of the ledger and rollups: {time.perf_counter() - t0:.1f} s")
            rnd: dict[str, Any] = {"state": label, "parts": _parts(store), "results": {}}
            print(
                f"\n  [{label}] active parts: "
                + ", ".join(f"{t} {p['parts']} ({p['rows']:,} rows, {p['mib']} MiB)" for t, p in rnd["parts"].items())
            )
            print(f"  {'query':<56} {'min':>8} {'p50':>8} {'p95':>8} {'max':>8}")
            for scope, with_tenant in SCOPES:
                queries = [("(a)", "spend_by_user_month", rollup_query("spend_by_user_month", with_tenant))]
                queries += [
                    (f"(a-{w})", f"spend_by_user_{w}", rollup_query(f"spend_by_user_{w}", with_tenant))
                    for w in windows
                    if w != "month"
                ]
                queries.append(("(b)", "ledger FINAL", ledger_query(with_tenant)))
                got: dict[str, list[Row]] = {}
                for tag, source, sql in queries:
                    stats, rows = timed(store, sql, params, args.runs, args.warmup)
                    stats["sql"] = sql
                    if tag == "(a)":
                        stats["target_met"] = stats["p50_ms"] <= TARGET_MS
                    rnd["results"][f"{tag} {scope}"] = stats
                    got[tag] = _rows(rows)
                    print(
                        f"  {f'{tag} {source}, {scope}':<56} {stats['min_ms']:>8.1f} {stats['p50_ms']:>8.1f} "
                        f"{stats['p95_ms']:>8.1f} {stats['max_ms']:>8.1f}",
                        flush=True,
                    )
                b = got.pop("(b)")
                ok = True
                for tag, a in got.items():
                    same = a == b and len(a) == 100 and all(isinstance(r[3], Decimal) for r in a)
                    rnd["results"][f"{tag} == (b) {scope}"] = same
                    if not same:
                        ok, failed = False, True
                        diff = [(x, y) for x, y in zip(a, b) if x != y][:3]
                        print(
                            f"  MISMATCH {tag} vs (b), {scope}: {len(a)} vs {len(b)} rows; first differences: {diff}",
                            file=sys.stderr,
                            flush=True,
                        )
                if ok:
                    print(
                        f"    {' and '.join(got)} == (b): the same 100 rows, Decimal-exact; "
                        f"#1 {b[0][0]}/{b[0][1]} {b[0][3]} {b[0][2]} ({b[0][4]:,} events), #100 {b[-1][0]}/{b[-1][1]} {b[-1][3]}"
                    )
                rnd["results"][f"top3 {scope}"] = [
                    {"tenant": t, "user": u_, "cost": str(c), "events": e} for t, u_, _, c, e in b[:3]
                ]
                if args.investigate:
                    vruns = max(5, args.runs // 2)
                    for name, sql, note in variants(with_tenant, windows):
                        stats, rows = timed(store, sql, params, vruns, args.warmup)
                        same = _rows(rows) == b
                        stats.update(sql=sql, note=note, same_as_ledger=same)
                        rnd["results"][f"{name.split()[0]} {scope}"] = stats
                        print(
                            f"  {name + ', ' + scope:<56} {stats['min_ms']:>8.1f} {stats['p50_ms']:>8.1f} "
                            f"{stats['p95_ms']:>8.1f} {stats['max_ms']:>8.1f}  "
                            f"{'same 100 rows' if same else 'DIFFERENT rows'} ({vruns} runs)",
                            flush=True,
                        )
            if args.investigate:
                a_sql = rollup_query("spend_by_user_month", True)
                rnd["explain_a"] = [r["explain"] for r in store.query("EXPLAIN indexes = 1 " + a_sql, params)]
                rnd["explain_pipeline_a"] = [r["explain"] for r in store.query("EXPLAIN PIPELINE " + a_sql, params)]
            report["rounds"].append(rnd)
        report["load_average"]["end"] = _loadavg()
    finally:
        store.close()
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"\n  kept the data dir: {tmp} (re-run with --data-dir {tmp})")

    # 3. the figures: (a) as filled (or as found), each scope
    first = report["rounds"][0]["results"]
    report["exact_same_as_ledger"] = not failed
    if not failed:  # no figure from a path that gave a wrong answer
        report["summary"] = [
            {
                "what": f"top-100 users by month spend, {scope}, {args.rows:,} ledger rows (spend_by_user_month)",
                "p50_ms": first[f"(a) {scope}"]["p50_ms"],
                "p95_ms": first[f"(a) {scope}"]["p95_ms"],
                "target_ms": int(TARGET_MS),
            }
            for scope, _ in SCOPES
        ]
    met = not failed and all(first[f"(a) {scope}"]["target_met"] for scope, _ in SCOPES)
    report["target"]["met"] = met
    if len(report["rounds"]) > 1:
        report["target"]["met_after_optimize"] = all(
            report["rounds"][1]["results"][f"(a) {scope}"]["target_met"] for scope, _ in SCOPES
        )
    print(
        f"\n  load average at end: {report['load_average']['end']} on {machine['cores']} cores "
        "(other work on the machine makes figures noisy)"
    )
    print(f"\n  {'figure (' + report['rounds'][0]['state'] + ')':<92} {'p50':>7} {'p95':>7}  target")
    for scope, _ in SCOPES:
        st = first[f"(a) {scope}"]
        what = f"top-100 users by month spend, {scope}, {args.rows:,} ledger rows (spend_by_user_month)"
        print(
            f"  {what:<92} {st['p50_ms']:>7.1f} {st['p95_ms']:>7.1f}  <= {TARGET_MS:.0f} ms "
            f"{'met' if st['target_met'] else 'MISSED'}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"  results written to {args.json}")
    if failed:
        print("FAILED: a rollup path and the ledger disagree (no summary written)", file=sys.stderr)
        return 2
    return 1 if args.check and not met else 0


def _sanity(store: Any, models: list[dict[str, Any]], windows: list[str]) -> None:
    """Re-price a sample of ledger rows in Python, exactly, from tokens x catalog prices; check
    every rollup view holds exactly the ledger's totals, and the month windows are calendar months."""
    by_model = {m["model"]: m for m in models}
    rows = store.query(
        "SELECT model, mode, input_tokens, output_tokens, cached_input_tokens, cost, line_items "
        "FROM ledger WHERE cityHash64(event_id) % 1000 = 7 LIMIT 2000"
    )
    for r in rows:
        m = by_model[r["model"]]
        b = "_b" if r["mode"] == "batch" else ""
        want = (
            r["input_tokens"] * Decimal(m["pin" + b])
            + r["output_tokens"] * Decimal(m["pout" + b])
            + r["cached_input_tokens"] * Decimal(m["pc" + b])
        )
        items = json.loads(r["line_items"])
        if r["cost"] != want or sum(Decimal(i["cost"]) for i in items) != want:
            raise SystemExit(f"bench_query: ledger cost is not exact: {r} != {want}")
    tot = store.query("SELECT sum(cost) AS cost, count() AS events FROM ledger FINAL")[0]
    for w in windows:
        got = store.query(f"SELECT sum(cost) AS cost, sum(events) AS events FROM spend_by_user_{w}")[0]
        if got != tot:
            raise SystemExit(f"bench_query: spend_by_user_{w} totals {got} differ from the ledger's {tot}")
    starts = [str(r["w"]) for r in store.query("SELECT DISTINCT window_start AS w FROM rollup_user_month ORDER BY w")]
    last = TS_FROM + dt.timedelta(days=SPAN_DAYS) - dt.timedelta(milliseconds=1)
    want_starts = [
        f"{y:04d}-{m:02d}-01 00:00:00"
        for y in range(TS_FROM.year, last.year + 1)
        for m in range(1, 13)
        if (TS_FROM.year, TS_FROM.month) <= (y, m) <= (last.year, last.month)
    ]
    if [x[:19] for x in starts] != want_starts:
        raise SystemExit(f"bench_query: rollup_user_month window starts {starts}, expected {want_starts}")
    print(
        f"  checked : {len(rows)} sampled ledger costs re-priced exactly in Python; "
        f"{', '.join(f'spend_by_user_{w}' for w in windows)} totals == ledger totals ({tot['events']:,} events, "
        f"{tot['cost']} mixed-currency cost units); month windows start {', '.join(x[:10] for x in starts)}"
    )


if __name__ == "__main__":
    sys.exit(main())
