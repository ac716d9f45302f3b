"""`meterstream worker | produce | report | rejects`: the pipeline from the command line."""

from __future__ import annotations

import csv
import io
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from pricing import money_str
from streams.settings import Settings


def _json_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return money_str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


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
        table = Table(*columns)
        for r in clean:
            table.add_row(*("" if r[c] is None else str(r[c]) for c in columns))
        Console().print(table)


@click.command("worker")
@click.option("--web-port", type=int, default=None, help="Port of this worker's web endpoint (MS_WEB_PORT).")
@click.option("--loglevel", default="info", show_default=True)
def worker_command(web_port: int | None, loglevel: str) -> None:
    """Run the Faust worker: rate, deduplicate, roll up, sink to ClickHouse. Several may run
    on one topic; they share its partitions."""
    from faust.worker import Worker

    from streams.app import create_app

    settings = Settings(**({"web_port": web_port} if web_port else {}))
    app = create_app(settings)
    Worker(app, loglevel=loglevel).execute_from_commandline()


@click.command("produce")
@click.argument("source", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--generate", "generate_n", type=int, default=None,
              help="Instead of reading SOURCE, produce N realistic mixed events.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--duplicates", type=float, default=0.0, help="With --generate: share of repeated event_ids.")
@click.option("--bad", type=int, default=0, help="With --generate: number of bad inputs to mix in.")
@click.option("--late", type=int, default=0, help="With --generate: events hours behind (within lateness).")
@click.option("--topic", default=None, help="Default: MS_EVENTS_TOPIC.")
def produce_command(source: str | None, generate_n: int | None, seed: int, duplicates: float, bad: int,
                    late: int, topic: str | None) -> None:
    """Publish billing events (JSON lines, each as is: bad lines too) to Kafka."""
    from rich.progress import Progress

    from streams.kafka_security import kafka_security
    from streams.producer import publish

    settings = Settings()
    if generate_n is not None:
        from streams.generate import generate

        lines = (line for _, line in generate(generate_n, seed=seed, duplicate_rate=duplicates, bad=bad, late=late))
        total = generate_n + bad + late
    elif source:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
        lines, total = iter(stream), None
    else:
        raise click.UsageError("give a FILE, - for stdin, or --generate N")
    with Progress(console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("producing", total=total)
        n = publish(settings.bootstrap, topic or settings.events_topic, lines,
                    lambda k: progress.update(task, advance=k), kafka_security(settings))
    click.echo(f"produced {n} events to {topic or settings.events_topic} at {settings.bootstrap}", err=True)


@click.command("report")
@click.option("--by", type=click.Choice(["user", "model"]), required=True)
@click.option("--window", type=click.Choice(["minute", "hour", "day", "month", "total"]), default="total", show_default=True)
@click.option("--tenant", default=None)
@click.option("--since", default=None, help="RFC 3339 time (inclusive, window start).")
@click.option("--until", default=None, help="RFC 3339 time (exclusive, window start).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw spend over time (per currency) to a PNG file.")
def report_command(by: str, window: str, tenant: str | None, since: str | None, until: str | None, fmt: str,
                   plot: Path | None) -> None:
    """Spend totals per currency from ClickHouse, by user or by model."""
    from streams.analyst import AnalystError, Reader, parse_time
    from streams.report import spend

    try:
        with Reader(Settings()) as reader:
            rows = spend(reader, by=by, window=window, tenant=tenant, since=parse_time(since), until=parse_time(until))
    except AnalystError as exc:
        raise click.ClickException(str(exc)) from None
    who = "user_id" if by == "user" else "model"
    columns = ["tenant_id", who, "currency", "cost", "events"]
    if window != "total":
        columns.insert(0, "window_start")
    emit(rows, fmt, columns)
    if plot is not None:
        if window == "total":
            raise click.UsageError("--plot needs --window minute|hour|day|month")
        from streams.plot import spend_over_time

        spend_over_time(rows, plot, f"spend by {by} per {window}")
        click.echo(f"wrote {plot}", err=True)


@click.command("rejects")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=1000, show_default=True)
def rejects_command(fmt: str, limit: int) -> None:
    """Dead-lettered inputs with their reasons (payloads never hold `text`)."""
    from streams.analyst import AnalystError, Reader
    from streams.report import rejects

    try:
        with Reader(Settings()) as reader:
            rows = rejects(reader, limit)
    except AnalystError as exc:
        raise click.ClickException(str(exc)) from None
    cols = ["src_partition", "src_offset", "event_id", "tenant_id", "reason"]
    emit(rows, fmt, cols + (["payload", "rejected_at"] if fmt == "json" else []))


@click.command("rerate")
@click.option("--since", required=True, help="RFC 3339 start of the period (event time, inclusive).")
@click.option("--until", required=True, help="RFC 3339 end of the period (exclusive).")
@click.option("--catalog", "catalog_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Catalog directory to price with (default: MS_CATALOG_DIR or the shipped catalogs).")
def rerate_command(since: str, until: str, catalog_dir: Path | None) -> None:
    """Re-price a closed period from the stored usage with another catalog, rewrite the affected
    rollups, and print the old and new totals per currency."""
    import datetime as dt
    import json
    import urllib.error
    import urllib.request

    from pricing import CatalogError, load_catalog
    from streams.analyst import Reader, parse_time
    from streams.rerate import RerateError, rerate

    settings = Settings()
    a, b = parse_time(since), parse_time(until)
    reader = Reader(settings)
    try:
        if reader.store is not None:
            try:
                result = rerate(reader.store, load_catalog(catalog_dir or settings.catalog_dir), a, b,
                                lateness=dt.timedelta(hours=settings.allowed_lateness_hours))
            except (RerateError, CatalogError) as exc:
                raise click.ClickException(str(exc)) from None
        else:
            body = json.dumps({"since": a.isoformat(), "until": b.isoformat(),
                               "catalog_dir": str(catalog_dir.resolve()) if catalog_dir else None}).encode()
            result = None
            for url in reader.via:
                req = urllib.request.Request(f"{url}/rerate", data=body, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - local worker URL
                        result = json.loads(resp.read())
                        break
                except urllib.error.HTTPError as exc:
                    if exc.code != 503:
                        raise click.ClickException(json.loads(exc.read()).get("error", str(exc))) from None
                except urllib.error.URLError:
                    continue
            if result is None:
                raise click.ClickException("the embedded engine is locked and no worker serves it")
    finally:
        reader.close()
    click.echo(f"re-rated {result['events']} events (version {result['version']})")
    old = {t["currency"]: t for t in result["before"]}
    for t in result["after"]:
        o = old.get(t["currency"], {"cost": "0"})
        click.echo(f"{t['currency']}: {money_str(Decimal(o['cost']))} -> {money_str(Decimal(t['cost']))}")
