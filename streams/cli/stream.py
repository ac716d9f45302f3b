"""`meterstream worker | produce | report | rejects`: the pipeline from the command line."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pricing import money_str
from schemas.errors import ConfigurationError, InputRejected
from streams.cli.formats import format_options
from streams.producer import DEFAULT_LINGER_MS
from streams.settings import Settings


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An error's message on one line (ClickHouse's can span many), cut to a readable length."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback: an RFC 3339 time (Z or an offset; none given: UTC), else a usage error."""
    from streams.analyst.reader import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 time, e.g. 2026-11-01T00:00:00Z") from None


def _json_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return money_str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


# counters a table leaves out when they are 0 on every row (json and csv keep every column)
QUIET_ZERO = frozenset({"input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "images"})


def emit(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    clean = [{c: _json_value(r.get(c)) for c in columns} for r in rows]
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(clean, option=orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(clean)
        sys.stdout.write(buf.getvalue())
    else:
        # cells are Text, never markup: a user_id such as "[/x]" or "[b]alice" shows as it is;
        # counters that are 0 on every row are left out; piped, no cell is cut to a width
        shown = [c for c in columns if c not in QUIET_ZERO or any(r[c] not in (0, None) for r in clean)]
        table = Table()
        for c in shown:
            table.add_column(Text(c), overflow="fold")
        for r in clean:
            table.add_row(*(Text("" if r[c] is None else str(r[c])) for c in shown))
        Console(width=None if sys.stdout.isatty() else 4096).print(table)


def port_free(host: str, port: int, moved_by: str) -> None:
    """Unavailable (one line, naming what moves it) when something listens on host:port already:
    said before a server starts, not as its traceback."""
    import errno
    import socket

    from schemas.errors import Unavailable

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as the server binds: a closed one's TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise Unavailable(
                f"{host}:{port} is in use: stop what listens there, or move this with {moved_by}"
            ) from None


@click.command("worker")
@click.option("--web-port", type=int, default=None, help="Port of this worker's web endpoint (MS_WEB_PORT).")
@click.option(
    "--role",
    type=click.Choice(["all", "rate", "sink", "alerts"]),
    default="all",
    show_default=True,
    help="rate: price and deduplicate (run several, they share the partitions); sink: ledger, "
    "windows and the alerts table into ClickHouse, analysts' reads (one per embedded engine); "
    "alerts: budgets, alert delivery (one active, others stand by); all: the three.",
)
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
def worker_command(settings: Settings, web_port: int | None, role: str, loglevel: str) -> None:
    """Run a worker: rate, deduplicate, roll up, sink to ClickHouse. Several may run on one
    topic; rating workers share its partitions."""
    from faust.worker import Worker

    from streams import logs, services
    from streams.app import create_app

    if web_port:
        settings = settings.model_copy(update={"web_port": web_port})
    port_free(settings.web_bind, settings.web_port, "--web-port or MS_WEB_PORT")
    services.kafka_reachable(settings)  # said in one line here, not in Faust's traceback
    app = create_app(settings, role)
    quiet = loglevel.lower() != "debug"  # Faust's banners: at debug only (streams/logs.py)
    Worker(
        app, loglevel=loglevel, quiet=quiet, logging_config=logs.config(settings.log_format, loglevel)
    ).execute_from_commandline()


@click.command("produce")
@click.argument("source", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--generate",
    "generate_n",
    type=int,
    default=None,
    help="Instead of reading SOURCE, produce N realistic mixed events.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--duplicates", type=float, default=0.0, help="With --generate: share of repeated event_ids.")
@click.option("--bad", type=int, default=0, help="With --generate: number of bad inputs to mix in.")
@click.option("--late", type=int, default=0, help="With --generate: events hours behind (within lateness).")
@click.option("--topic", default=None, help="Default: MS_EVENTS_TOPIC.")
@click.option(
    "--no-batch", "no_batch", is_flag=True, help="One Kafka record per event (no application/jsonl batch records)."
)
@click.option(
    "--linger-ms",
    type=click.FloatRange(min=0),
    default=DEFAULT_LINGER_MS,
    show_default=True,
    help="The longest an event waits for its partition's batch.",
)
@click.option(
    "--no-check",
    "no_check",
    is_flag=True,
    help="Do not rate the events on their way (by default each is checked as the rater will, with "
    "MS_CATALOG_DIR or the shipped catalogs: what will be dead-lettered is said, and the exit code is 1).",
)
@format_options
@click.pass_obj
def produce_command(
    settings: Settings,
    source: str | None,
    generate_n: int | None,
    seed: int,
    duplicates: float,
    bad: int,
    late: int,
    topic: str | None,
    no_batch: bool,
    linger_ms: float,
    no_check: bool,
    fmt: str,
    **ids: Any,
) -> None:
    """Publish billing events (JSON lines, each as is: bad lines too) to Kafka, batched per
    partition as JSON Lines records (schemas/batch.py) unless --no-batch. With --format, each
    line is a provider's payload, converted first (adapters/); a payload that cannot be
    converted goes to the dead-letter topic with the reason (and exit code 1). Unless
    --no-check, each event is rated on its way as the rater will: the events it will
    dead-letter are counted by reason on stderr (and exit code 1)."""
    from rich.progress import Progress

    from streams.cli.formats import check_ids, open_input
    from streams.kafka_security import kafka_security
    from streams.producer import publish

    check_ids(fmt, ids)
    ctx = click.get_current_context()
    given = [
        f"--{n}"
        for n in ("duplicates", "bad", "late", "seed")
        if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE
    ]
    if generate_n is not None and source:
        raise click.UsageError("give a FILE (or - for stdin) or --generate N, not both")
    if generate_n is None and given:
        raise click.UsageError(f"{', '.join(given)} shape generated traffic: give them with --generate N")
    lines: Iterator[bytes]
    if generate_n is not None:
        from streams.harness.generate import generate

        lines = (line for _, line in generate(generate_n, seed=seed, duplicate_rate=duplicates, bad=bad, late=late))
        total = generate_n + bad + late
    elif source:
        stream, _ = open_input(source)
        lines, total = iter(stream), None
    else:
        raise click.UsageError("give a FILE, - for stdin, or --generate N")
    refusals: list[tuple[bytes, str]] = []

    def refused(n: int, line: bytes, reason: str) -> None:
        from schemas.redact import stored_payload

        where = f"meterstream produce --format {fmt} {source}, line {n}"
        refusals.append((stored_payload(line).encode(), f"not converted ({fmt}), {where}: {reason}"))
        click.echo(f"line {n}: not converted ({fmt}): {reason}", err=True)

    if fmt != "billing-event":
        from streams.cli.formats import converted, ids_of

        lines, total = converted(lines, fmt, ids_of(ids), refused), None
    check = None
    if not no_check:  # the worker's catalog, loaded before anything is sent
        from pricing import CatalogError, load_catalog
        from streams.cli.formats import DeadLetterCheck

        try:
            catalog = load_catalog(settings.catalog_dir)
        except CatalogError as exc:
            raise ConfigurationError(f"catalog: {exc} (or give --no-check)") from exc
        check = DeadLetterCheck(catalog, "line" if fmt == "billing-event" and source else "event")
        lines = check.passing(lines)
    with Progress(console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("producing", total=total)
        n = publish(
            settings.bootstrap,
            topic or settings.events_topic,
            lines,
            lambda k: progress.update(task, advance=k),
            kafka_security(settings),
            batch=not no_batch,
            linger_ms=linger_ms,
        )
    click.echo(f"produced {n} events to {topic or settings.events_topic} at {settings.bootstrap}", err=True)
    if refusals:
        publish_refusals(settings, topic or settings.events_topic, refusals)
        click.echo(
            f"{len(refusals)} payloads not converted: sent as refused records (schemas/refusal.py); "
            f"the rater keeps them in {settings.dead_letter_topic} and rejected_events with their reasons",
            err=True,
        )
    for said in check.summary() if check is not None else ():
        click.echo(said, err=True)
    if refusals or (check is not None and check.rejected):
        sys.exit(1)


def publish_refusals(settings: Settings, topic: str, refusals: list[tuple[bytes, str]]) -> None:
    """Payloads refused before they were events, as refused records on the events topic
    (acknowledged): the rater rejects each with its reason, like a bad event."""
    from schemas.refusal import refusal_header
    from streams.kafka_security import kafka_security
    from streams.producer import make_producer

    producer = make_producer(settings.bootstrap, kafka_security(settings), client_id="meterstream-refusals")
    try:
        futures = [producer.send(topic, value=value, headers=[refusal_header(reason)]) for value, reason in refusals]
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close()


@click.command("report")
@click.option(
    "--by",
    required=True,
    metavar="DIMS",
    help="tenant, user, model or label:KEY; two at once with a comma (e.g. model,user).",
)
@click.option(
    "--window", type=click.Choice(["minute", "hour", "day", "month", "total"]), default="total", show_default=True
)
@click.option("--tz", default=None, help="Day and month windows in this IANA time zone (e.g. Asia/Shanghai).")
@click.option("--tenant", default=None)
@click.option("--user", default=None)
@click.option("--model", default=None)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Only events with this label (repeatable).")
@click.option("--since", default=None, callback=time_option, help="RFC 3339 time (inclusive).")
@click.option("--until", default=None, callback=time_option, help="RFC 3339 time (exclusive).")
@click.option("--top", type=click.IntRange(1, 10_000), default=None, help="Only the top N per currency (and window).")
@click.option("--order", type=click.Choice(["cost", "tokens", "events"]), default="cost", show_default=True)
@click.option(
    "--avg", "average", is_flag=True, help="Average input and output tokens per request (over token events only)."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Draw cost over time per key (top 8 and the rest) to a PNG file.",
)
@click.pass_obj
def report_command(
    settings: Settings,
    by: str,
    window: str,
    tz: str | None,
    tenant: str | None,
    user: str | None,
    model: str | None,
    labels: tuple[str, ...],
    since: Any,
    until: Any,
    top: int | None,
    order: str,
    average: bool,
    fmt: str,
    plot: Path | None,
) -> None:
    """Cost, events and tokens per currency from ClickHouse, grouped by tenant, user, model or a
    label (streams/analyst/usage.py). Each row's share is its part of the cost of its currency
    (and window) over everything the filters select, rounded half-even to 0.1%."""
    from streams.analyst.reader import Reader
    from streams.cli.alerts import label_pair

    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    asked: dict[str, Any] = {
        "group_by": dims,
        "window": window,
        "tz": tz,
        "since": since,
        "until": until,
        "tenant": tenant,
        "user": user,
        "model": model,
        "labels": dict(label_pair(x) for x in labels),
        "order": order,
        "average": average,
        "rolled_up_labels": settings.label_keys,
    }
    if plot is not None and window == "total":
        raise click.UsageError("--plot needs --window minute|hour|day|month")
    with Reader(settings) as reader:
        try:
            rows = reader.read("usage", **asked, top=top)
            totals = reader.read("usage", **{**asked, "group_by": ("tenant",), "average": False})
        except InputRejected as exc:  # a bad --by, --tz or label, said as the option's
            raise click.UsageError(str(exc).replace("bad parameters for usage: ", "")) from None
    add_shares(rows, totals)
    columns = ["tenant_id", *(usage_column(d) for d in dims if d != "tenant"), "currency", "cost", "share", "events"]
    columns += ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"]
    if average:
        columns += ["token_events", "avg_input_tokens", "avg_output_tokens"]
        for r in rows:
            n = int(r["token_events"])
            for c in ("input_tokens", "output_tokens"):
                r[f"avg_{c}"] = (Decimal(r[c]) / n).quantize(Decimal("0.1")) if n else None
    if window != "total":
        columns.insert(0, "window_start")
    emit(rows, fmt, columns)
    if plot is not None:
        from streams.analyst.plot import usage_over_time

        usage_over_time(rows, plot, [usage_column(d) for d in dims], f"cost by {by} per {window}", since, until)
        click.echo(f"wrote {plot}", err=True)
    warn_if_waiting(settings)


def usage_column(dim: str) -> str:
    """The column of a --by dimension in the usage read's rows."""
    return {"tenant": "tenant_id", "user": "user_id", "model": "model"}.get(dim, dim)


def add_shares(rows: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
    """Each row's share of its currency's (and window's) cost over all tenants, half-even to 0.1%."""
    whole: dict[tuple[Any, str], Decimal] = {}
    for t in totals:
        k = (t.get("window_start"), t["currency"])
        whole[k] = whole.get(k, Decimal(0)) + Decimal(t["cost"])
    for r in rows:
        total = whole.get((r.get("window_start"), r["currency"]))
        r["share"] = f"{(Decimal(r['cost']) * 100 / total).quantize(Decimal('0.1'))}%" if total else None


def warn_if_waiting(settings: Settings) -> None:
    """On stderr: how many events the totals do not hold yet (Kafka's lag of the rating and
    the sink groups, streams/health.py), or that it could not be told."""
    import asyncio

    from streams import health
    from streams.kafka_security import kafka_security

    groups = [health.rating_group(settings), health.sink_group(settings)]
    try:
        lags = asyncio.run(health.lag_once(settings.bootstrap, kafka_security(settings), groups, timeout_s=3.0))
    except Exception as exc:  # noqa: BLE001 - a warning, never the report's failure
        text = " ".join(str(exc).split()) or "no answer within 3 s"
        click.echo(f"warning: cannot tell whether events are waiting: Kafka at {settings.bootstrap}: {text}", err=True)
        return
    rated, written = health.waiting(lags, settings)
    if rated or written:
        click.echo(
            f"warning: not in these totals yet: {rated} events waiting to be rated, {written} sink records "
            "waiting to be written (see meterstream status)",
            err=True,
        )


@click.command("rejects")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--tenant", default=None)
@click.option("--since", default=None, callback=time_option, help="Rejected at or after (RFC 3339).")
@click.option("--until", default=None, callback=time_option, help="Rejected before (RFC 3339).")
@click.option("--reason", default=None, help="Only reasons containing this text (any case).")
@click.option("--group", is_flag=True, help="One line per reason: how many, first and last rejected.")
@click.pass_obj
def rejects_command(
    settings: Settings,
    fmt: str,
    limit: int,
    tenant: str | None,
    since: Any,
    until: Any,
    reason: str | None,
    group: bool,
) -> None:
    """Dead-lettered inputs with their reasons (payloads never hold `text`)."""
    from streams.analyst.reader import Reader

    asked = {"limit": limit, "tenant": tenant, "since": since, "until": until, "reason": reason, "group": group}
    with Reader(settings) as reader:
        rows = reader.read("rejects", **{k: v for k, v in asked.items() if v not in (None, False)})
    if group:
        emit(printable_rejects(rows), fmt, ["n", "reason", "first_rejected_at", "last_rejected_at"])
        return
    cols = ["src_partition", "src_offset", "src_index", "event_id", "tenant_id", "reason"]
    emit(
        printable_rejects(rows),
        fmt,
        cols + (["payload", "rejected_at", "redriven_at", "redrive_outcome"] if fmt == "json" else []),
    )


def printable_rejects(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejection rows as printed: a stored reason or payload with every control, format or
    separator character (ESC, CR, LF, C1, bidi) written ``<U+XXXX>``. A reason can come from a
    producer's ``meterstream-refused`` header, and nothing it holds may move the cursor, recolour
    the terminal or hide text."""
    from schemas.validate import visible

    return [{**r, **{c: visible(r[c]) for c in ("reason", "payload") if isinstance(r.get(c), str)}} for r in rows]


@click.command("sql")
@click.argument("query")
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="A value for a {NAME:Type} placeholder (repeatable)."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_obj
def sql_command(settings: Settings, query: str, params: tuple[str, ...], fmt: str) -> None:
    """Run one read-only SELECT (or DESCRIBE / SHOW TABLES / SHOW COLUMNS) over meterstream's
    tables and views. It is checked by ClickHouse's
    own parser first (tables of this database only, wherever they appear; functions from an
    allow-list; no table functions, INTO OUTFILE, FORMAT or SETTINGS) and runs under readonly=1
    within MS_SQL_TIMEOUT_S (MS_SQL_EMBEDDED_TIMEOUT_S on the embedded engine), MS_SQL_MAX_ROWS,
    MS_SQL_MAX_MEMORY_MB, MS_SQL_MAX_ROWS_READ and MS_SQL_MAX_BYTES_READ."""
    from streams.analyst.reader import Reader

    bound = {}
    for p in params:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{p!r}: give NAME=VALUE", param_hint="--param")
        bound[name] = value
    from streams.analyst.reader import AnalystRefused
    from streams.storage import StoreError

    with Reader(settings) as reader:
        try:
            rows = reader.sql(query, bound)
        except StoreError as exc:  # stopped by a limit: the query is refused (exit 1), the store is there
            if not any(code in str(exc) for code in SQL_LIMIT_CODES):
                raise
            raise AnalystRefused(one_line(exc)) from exc
    emit(rows, fmt, list(rows[0]) if rows else [])


# ClickHouse's error names for a query stopped by one of the MS_SQL_* limits (the worker's /sql
# answers them 400: refused, as here)
SQL_LIMIT_CODES = (
    "MEMORY_LIMIT_EXCEEDED",
    "TOO_MANY_ROWS",
    "TOO_MANY_BYTES",
    "TOO_MANY_ROWS_OR_BYTES",
    "TIMEOUT_EXCEEDED",
    "TOO_SLOW",
)
