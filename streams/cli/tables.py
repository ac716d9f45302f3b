"""`meterstream tables`: the tables and views analysts may read, what each holds and its columns.

The list and the one-line descriptions are the guard's (streams/analyst/sql_guard.py: READABLE,
DESCRIPTIONS); whether each exists, its kind and its columns come from the engine, through the
same checked path as `meterstream sql` (SHOW FULL TABLES, then DESCRIBE TABLE each: on the store,
or through the worker that holds it), so they are never stale."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from streams.settings import Settings


def readable_objects(reader: Any) -> list[dict[str, Any]]:
    """Each READABLE object, in DESCRIPTIONS' order: name, kind (table, view, or missing when this
    database lacks it), description and columns (name, type), from the engine."""
    from streams.analyst.sql_guard import DESCRIPTIONS, READABLE

    engines = {r["name"]: r["engine"] for r in reader.sql("SHOW FULL TABLES")}
    out = []
    for name in [n for n in DESCRIPTIONS if n in READABLE] + sorted(READABLE - set(DESCRIPTIONS)):
        engine = engines.get(name)
        columns = (
            [{"name": c["name"], "type": c["type"]} for c in reader.sql(f"DESCRIBE TABLE {name}")]
            if engine is not None
            else []
        )
        kind = "missing" if engine is None else "view" if engine == "View" else "table"
        out.append({"name": name, "kind": kind, "description": DESCRIPTIONS.get(name, ""), "columns": columns})
    return out


@click.command("tables")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def tables_command(settings: Settings, fmt: str) -> None:
    """List the tables and views `meterstream sql` may read, each with what it holds and its
    columns as the engine gives them (docs/schema.md says which to use for what)."""
    from streams.analyst.reader import Reader

    with Reader(settings) as reader:
        objects = readable_objects(reader)
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(objects, option=orjson.OPT_INDENT_2) + b"\n")
        return
    missing = [o["name"] for o in objects if o["kind"] == "missing"]
    for o in objects:
        if o["kind"] == "missing":
            continue
        click.echo(f"{o['name']} ({o['kind']})")
        click.echo(f"  {o['description']}")
        width = max(len(c["name"]) for c in o["columns"]) if o["columns"] else 0
        for c in o["columns"]:
            click.echo(f"    {c['name']:<{width}}  {c['type']}")
        click.echo()
    if missing:
        click.echo(f"not in this database (run meterstream migrate): {', '.join(missing)}")
