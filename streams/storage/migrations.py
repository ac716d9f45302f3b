"""Versioned DDL migrations (ops/clickhouse/migrations/NNNN_name.sql), applied in order, once.

Each applied file is recorded in ``schema_migrations`` with its checksum; a file changed after
it was applied is an error, not a silent re-run. Statements use IF NOT EXISTS so a run that
stopped half-way can simply be run again. On a store with a cluster (MS_CLICKHOUSE_CLUSTER) the
same files run in their cluster form (streams/storage/cluster.py), bookkeeping included."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from streams.storage.base import Store, StoreError, split_statements
from streams.storage.cluster import cluster_statements

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    if not directory.is_dir() or not any(directory.glob("*.sql")):
        raise StoreError(f"no migrations in {directory}: the installation is incomplete")
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise StoreError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in {directory}")
    return found


def statements(sql: str, store: Store) -> list[str]:
    """The statements of a migration's text as `store` runs them: as written on one node, in their
    cluster form when the store has a cluster."""
    stmts = list(split_statements(sql))
    if store.cluster is None:
        return stmts
    return [out for stmt in stmts for out in cluster_statements(stmt, store.cluster, store.database)]


def applied(store: Store) -> dict[int, str]:
    for stmt in statements(BOOKKEEPING, store) if store.cluster else [BOOKKEEPING]:
        store.command(stmt)
    rows = store.query("SELECT version, checksum FROM schema_migrations FINAL ORDER BY version")
    return {r["version"]: r["checksum"] for r in rows}


def pending(store: Store, directory: Path) -> list[Migration]:
    """The migrations of `directory` not applied on `store` (read only: nothing is created)."""
    try:
        rows = store.query("SELECT version FROM schema_migrations FINAL")
    except StoreError:
        rows = []  # no bookkeeping table yet: nothing applied
    done = {int(r["version"]) for r in rows}
    return [m for m in discover(directory) if m.version not in done]


def migrate(store: Store, directory: Path) -> list[Migration]:
    """Apply what is not applied yet; return the migrations applied by this call."""
    done = applied(store)
    pending = []
    for mig in discover(directory):
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                raise StoreError(
                    f"migration {mig.path.name} changed after it was applied "
                    "(add a new migration instead of editing an applied one)"
                )
            continue
        pending.append((mig, statements(mig.sql, store)))  # all rewritten before any runs
    newly = []
    for mig, stmts in pending:
        for stmt in stmts:
            store.command(stmt)
        store.insert(
            "schema_migrations",
            [
                {
                    "version": mig.version,
                    "name": mig.name,
                    "checksum": mig.checksum,
                    "applied_at": dt.datetime.now(dt.UTC),
                }
            ],
        )
        newly.append(mig)
    return newly
