"""`meterstream price` and `meterstream catalog …`: the pricing engine from the command line."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from pathlib import Path
from typing import IO, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from pricing import CatalogError, load_catalog
from pricing.rating import Rejection, rate
from pricing.staleness import MAX_SOURCE_AGE
from schemas.errors import ConfigurationError, InputRejected, Unavailable
from schemas.validate import strip_line
from streams.cli.formats import check_ids, converted, format_options, ids_of, open_input
from streams.settings import Settings

catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="MS_CATALOG_DIR",
    default=None,
    help="Directory of catalog files (default: MS_CATALOG_DIR, else the shipped catalogs).",
)


def _load(catalog_dir: Path | None):
    try:
        return load_catalog(catalog_dir)
    except CatalogError as exc:
        raise ConfigurationError(f"catalog: {exc}") from exc


def _lines(stream: IO[bytes], size: int | None):
    if size and sys.stderr.isatty() and size > 1_000_000:
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("pricing", total=size)
            for line in stream:
                progress.update(task, advance=len(line))
                yield line
    else:
        yield from stream


@click.command("price")
@click.argument("source", default="-", type=click.Path(allow_dash=True, dir_okay=False))
@catalog_option
@format_options
def price_command(source: str, catalog_dir: Path | None, fmt: str, **ids: Any) -> None:
    """Price billing events (JSON lines) from SOURCE or stdin: priced events to stdout, one JSON
    line per rejected input to stderr. Exit 1 when any line was rejected. With --format, each
    line is a provider's payload, converted first (adapters/)."""
    catalog = _load(catalog_dir)
    check_ids(fmt, ids)
    stream, size = open_input(source)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    rejected = 0

    def refused(n: int, line: bytes, reason: str) -> None:
        nonlocal rejected
        rejected += 1
        err.write(orjson.dumps({"line": n, "event_id": None, "reason": f"not converted ({fmt}): {reason}"}) + b"\n")

    with stream:
        lines = converted(_lines(stream, size), fmt, ids_of(ids), refused)
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result = rate(strip_line(line), catalog)  # the event without its line ending, as produced
            if isinstance(result, Rejection):
                rejected += 1
                where = "line" if fmt == "billing-event" else "event"  # converted: the n-th event, not line
                err.write(orjson.dumps({where: n, "event_id": result.event_id, "reason": result.reason}) + b"\n")
            else:
                out.write(orjson.dumps(result) + b"\n")
    out.flush()
    err.flush()
    sys.exit(1 if rejected else 0)


@click.group("catalog")
def catalog_group() -> None:
    """Inspect the pricing catalogs meterstream loads."""


def _as_of(value: str | None, hint: str) -> dt.datetime:
    """An RFC 3339 time with an offset (default: now)."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("an RFC 3339 time, e.g. 2026-12-01T00:00:00Z", param_hint=hint) from None
    if t.tzinfo is None:
        raise click.BadParameter("needs an offset (Z or +hh:mm)", param_hint=hint)
    return t


@catalog_group.command("validate")
@catalog_option
@click.option(
    "--max-source-age",
    "max_age_days",
    type=click.IntRange(1),
    default=MAX_SOURCE_AGE.days,
    show_default=True,
    help="Warn for an entry whose source_date is more than this many days older than the last event it "
    "prices (its effective_to, or now for an open-ended entry).",
)
@click.option("--as-of", "as_of", default=None, help="Judge staleness at this RFC 3339 time (default: now).")
def catalog_validate(catalog_dir: Path | None, max_age_days: int, as_of: str | None) -> None:
    """Load every catalog file and report what was loaded (exit 1 on any defect). Stale prices are
    warnings on stderr, not defects (pricing/staleness.py)."""
    from pricing.staleness import warnings

    at = _as_of(as_of, "--as-of")
    cat = _load(catalog_dir)
    entries = cat.entries()
    click.echo(
        f"ok: {len(cat.files)} files, {len(entries)} entries, providers {', '.join(sorted(cat.providers()))}, "
        f"version {cat.content_hash}"
    )
    for f in cat.files:
        click.echo(f"  {f}")
    for line in warnings(cat, at, dt.timedelta(days=max_age_days)):
        click.echo(f"warning: {line}", err=True)


@catalog_group.command("list")
@click.option("--provider", default=None)
@catalog_option
def catalog_list(provider: str | None, catalog_dir: Path | None) -> None:
    """List products: provider, id, currency, effective range, dimensions priced."""
    cat = _load(catalog_dir)
    table = Table("provider", "product", "currency", "effective", "dimensions", "batch", "tokenizer")
    for p in cat.entries():
        if provider and p.provider != provider:
            continue
        s = p.spec
        eff = (
            f"{s.effective_from:%Y-%m-%d} .. {s.effective_to:%Y-%m-%d}"
            if s.effective_to
            else f"{s.effective_from:%Y-%m-%d} .."
        )
        batch = "-" if s.batch_factor is None else f"x{s.batch_factor}"
        tok = "-" if s.tokenizer is None else f"{s.tokenizer.encoding}{'' if s.tokenizer.exact else ' (estimate)'}"
        table.add_row(p.provider, s.id, p.currency, eff, ", ".join(sorted(p.prices)), batch, tok)
    Console().print(table)


@catalog_group.command("show")
@click.argument("provider")
@click.argument("model")
@catalog_option
def catalog_show(provider: str, model: str, catalog_dir: Path | None) -> None:
    """Show every price of one product (all its effective versions) with its source."""
    cat = _load(catalog_dir)
    versions = _versions(cat, provider, model)
    if not versions:
        raise InputRejected(f"unknown product {provider}/{model} (see meterstream catalog list)")
    prefix = cat.profile_of.get((provider, model))
    if prefix is not None:
        click.echo(f"{provider}/{model}: {versions[0].id} through the cross-region profile {prefix}.")
    for p in versions:
        s = p.spec
        click.echo(f"{p.provider}/{s.id}  {s.name or ''}  [{p.catalog_version}]")
        if s.source_date is not None:
            click.echo(f"  source date: {s.source_date}")
        click.echo(
            f"  effective: {s.effective_from.isoformat()} .. {s.effective_to.isoformat() if s.effective_to else 'open'}"
        )
        click.echo(f"  source:    {s.source}")
        if s.regions:
            click.echo(f"  regions:   {', '.join(s.regions)}")
        click.echo(f"  batch:     {'not offered' if s.batch_factor is None else 'x' + str(s.batch_factor)}")
        if s.profiles:
            only = " (the bare id is not invoked: profiles only)" if s.profile_only else ""
            click.echo(f"  profiles:  {', '.join(f'{k}. x{v}' for k, v in s.profiles.items())}{only}")
        if s.tokenizer:
            click.echo(f"  tokenizer: {s.tokenizer.encoding} ({'exact' if s.tokenizer.exact else 'estimate'})")
        for ps in s.prices:
            quals = {k: v for k, v in ps.model_dump(exclude={"dimension", "per", "price"}).items() if v is not None}
            if ps.rounding is not None:
                quals["rounding"] = f"{ps.rounding.mode}:{ps.rounding.unit}"
            q = " ".join(f"{k}={v if not isinstance(v, tuple) else ','.join(v)}" for k, v in quals.items())
            click.echo(f"  {ps.dimension:<22} {ps.price} {p.currency} per {ps.per}  {q}")


def _versions(cat: Any, provider: str, model: str) -> list[Any]:
    """Every effective version of the product ``model`` names: its id, an alias or a profile id
    (``us.<id>``), and also the bare id of a product served through profiles only, which the
    pricing index leaves out (Bedrock refuses it on demand, so events under it are rejected)."""
    hit = cat.products.get((provider, model))
    if hit:
        return list(hit)
    return [p for p in cat.entries() if p.provider == provider and model in (p.spec.id, *p.spec.aliases)]


@catalog_group.command("import")
@click.argument("source_kind", type=click.Choice(["litellm"]))
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--provider",
    "providers",
    multiple=True,
    required=True,
    help="LiteLLM's litellm_provider to import (repeatable), e.g. openai, anthropic.",
)
@click.option(
    "--effective-from", "effective_from", required=True, help="RFC 3339 time from which the imported prices apply."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write <provider>-usd.yaml into (not the shipped catalogs).",
)
def catalog_import(
    source_kind: str, file: Path | None, providers: tuple[str, ...], effective_from: str, out_dir: Path
) -> None:
    """Catalog files from LiteLLM's price map: FILE, or the one in the installed litellm package
    (offline). Models that cannot be converted exactly are listed on stderr with the reason."""
    import datetime as dt

    from pricing import litellm_import as li

    try:
        start = dt.datetime.fromisoformat(effective_from)
    except ValueError:
        raise click.BadParameter("an RFC 3339 time, e.g. 2026-12-01T00:00:00Z", param_hint="--effective-from") from None
    if start.tzinfo is None:
        raise click.BadParameter("needs an offset (Z or +hh:mm)", param_hint="--effective-from")
    if file is None:
        try:
            file, version = li.bundled()
        except FileNotFoundError as exc:
            raise ConfigurationError(str(exc)) from exc
        source = f"LiteLLM {version} bundled {file.name}"
    else:
        source = f"LiteLLM price map {file.name} (sha256 {hashlib.sha256(file.read_bytes()).hexdigest()[:16]})"
    result = li.convert(li.load_price_map(file), providers=set(providers), effective_from=start, source=source)
    out_dir.mkdir(parents=True, exist_ok=True)
    for provider, doc in sorted(result.catalogs.items()):
        path = out_dir / f"{provider}-usd.yaml"
        path.write_text(li.dump(doc), encoding="utf-8")
        click.echo(f"wrote {path}: {len(doc['products'])} products")
    for key, reason in result.skipped:
        click.echo(f"not imported: {key}: {reason}", err=True)
    for key, costs in result.unpriced:
        click.echo(f"imported without: {key}: {', '.join(costs)} (no event field carries them)", err=True)
    click.echo(
        f"{sum(len(d['products']) for d in result.catalogs.values())} imported, {len(result.skipped)} not "
        f"imported (listed above)",
        err=True,
    )
    _load(out_dir)  # the written files load as a catalog, or this is an error


@catalog_group.command("diff")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
def catalog_diff(old: Path, new: Path) -> None:
    """Changed, added and removed prices between two catalog files or directories. Exit 1 when
    they differ."""
    from pricing.catalog_diff import diff, load_documents

    d = diff(load_documents(old), load_documents(new))

    def name(k: tuple) -> str:
        provider, pid, start, dim, per, quals = k
        q = "".join(f" {a}={b}" for a, b in quals)
        return f"{provider}/{pid} from {start}: {dim} per {per}{q}"

    for k, a, b in d["changed"]:
        click.echo(f"changed  {name(k)}: {a} -> {b}")
    for k, v in d["added"]:
        click.echo(f"added    {name(k)}: {v}")
    for k, v in d["removed"]:
        click.echo(f"removed  {name(k)}: {v}")
    click.echo(f"{len(d['changed'])} changed, {len(d['added'])} added, {len(d['removed'])} removed", err=True)
    sys.exit(1 if any(d.values()) else 0)


@catalog_group.command("check")
@click.option(
    "--against",
    "against",
    type=click.Choice(["litellm"]),
    required=True,
    help="What to compare with: litellm, LiteLLM's model_prices_and_context_window.json.",
)
@click.argument("price_map", metavar="MAP", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@catalog_option
@click.option(
    "--as-of", "as_of", default=None, help="Compare our entries in force at this RFC 3339 time (default: now)."
)
def catalog_check(against: str, price_map: Path, catalog_dir: Path | None, as_of: str | None) -> None:
    """Where our catalogs and LiteLLM's price map MAP disagree: prices per dimension (and tier,
    Region, profile), batch factors, deprecations, models the map has that we lack (for our
    providers) and ours the map lacks. Exit 1 when any disagree, 0 when none do. Lines marked
    `note` are not disagreements (pricing/litellm_check.py)."""
    from pricing import litellm_check
    from pricing.litellm_import import load_price_map

    at = _as_of(as_of, "--as-of")
    cat = _load(catalog_dir)
    source = f"LiteLLM price map {price_map.name} (sha256 {hashlib.sha256(price_map.read_bytes()).hexdigest()[:16]})"
    report = litellm_check.check(load_price_map(price_map), cat, at, source)
    for kind, text in report.lines:
        click.echo(f"{kind:<9} {text}")
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n)
    click.echo(f"{report.disagreements} disagreements" + (f" ({counts})" if counts else ""), err=True)
    sys.exit(1 if report.disagreements else 0)


@catalog_group.command("publish")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the broker's acks.")
@click.option(
    "--sequence",
    type=click.IntRange(1, 2**63 - 1),
    default=None,
    help="The publication's sequence (default: now, in microseconds since 1970). Raters refuse a "
    "catalog record whose sequence is not above the one in force.",
)
@click.pass_obj
def catalog_publish(settings: Settings, directory: Path, timeout: float, sequence: int | None) -> None:
    """Publish a catalog directory as the new version for the running raters: validated here
    first (a bad catalog is refused, nothing is sent), then one catalog record to every
    partition of the events topic, sealed with the catalog key (MS_CATALOG_KEY, else the one a
    worker wrote in MS_DATA_DIR) for its topic, partition and sequence. Every event after it on a
    partition is priced with it."""
    import time

    from pricing.bundle import read_bundle
    from schemas.catalog_record import encode, headers
    from streams.kafka_security import kafka_security
    from streams.producer import make_producer
    from streams.web_token import CATALOG_KEY, read_token

    try:
        catalog = load_catalog(directory)
        value = encode(catalog.content_hash, read_bundle(directory))
    except (CatalogError, ValueError) as exc:
        click.echo(f"refused: {exc}; nothing was published", err=True)
        sys.exit(2)
    key = read_token(settings, CATALOG_KEY).get_secret_value().encode()
    producer = make_producer(settings.bootstrap, kafka_security(settings), client_id="meterstream-catalog")
    try:
        partitions = sorted(producer.partitions_for(settings.events_topic) or ())
        if not partitions:
            raise Unavailable(f"no topic {settings.events_topic} (run `meterstream up`)")
        seq = sequence or time.time_ns() // 1000
        futures = [
            producer.send(
                settings.events_topic,
                value=value,
                partition=p,
                headers=headers(key, value, topic=settings.events_topic, partition=p, seq=seq),
            )
            for p in partitions
        ]
        acked = [f.get(timeout=timeout) for f in futures]
        offsets = {m.partition: m.offset for m in acked}
    finally:
        producer.close(timeout=timeout)
    click.echo(
        f"published {catalog.content_hash} ({len(catalog.files)} files), sequence {seq}, to {settings.events_topic}: "
        + ", ".join(f"p{p}@{o}" for p, o in sorted(offsets.items()))
    )


@catalog_group.command("status")
@click.option(
    "--stale-s",
    type=float,
    default=120.0,
    show_default=True,
    help="A worker not heard from for longer is shown as stale.",
)
@click.pass_obj
def catalog_status(settings: Settings, stale_s: float) -> None:
    """Which catalog version each rating worker prices each of its partitions with (from the
    status topic the workers report to, at every switch and every MS_CATALOG_STATUS_INTERVAL_S)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka_security import kafka_security

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        client_id="meterstream-catalog-status",
        **kafka_security(settings).kafka_python(),
    )
    latest: dict[bytes, dict[str, Any]] = {}
    try:
        tp = TopicPartition(settings.catalog_status_topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    latest[r.key] = orjson.loads(r.value)
    finally:
        consumer.close()
    if not latest:
        click.echo(f"no rating worker has reported to {settings.catalog_status_topic} yet")
        return
    now_ms = time.time() * 1000
    table = Table("worker", "seen", "own catalog", "partition", "version in force")
    for doc in sorted(latest.values(), key=lambda d: d["worker"]):
        age = (now_ms - doc["at_ms"]) / 1000
        seen = f"{age:.0f} s ago" + (" (stale)" if age > stale_s else "")
        parts = sorted(doc["partitions"].items(), key=lambda kv: int(kv[0])) or [("-", None)]
        for i, (p, version) in enumerate(parts):
            table.add_row(
                doc["worker"] if i == 0 else "",
                seen if i == 0 else "",
                doc["own"] if i == 0 else "",
                p,
                version or "(no event read yet)",
            )
    Console(width=200).print(table)
