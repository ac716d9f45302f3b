"""A ClickHouse server, through clickhouse-connect (HTTP). Used when MS_CLICKHOUSE_URL is set,
e.g. ``http://user:password@host:8123``; the password belongs in the environment only.

With a cluster (MS_CLICKHOUSE_CLUSTER) the database is created ON CLUSTER, and inserts go to the
Distributed tables in the foreground (``distributed_foreground_insert = 1``): an insert returns
once every shard's replicated table has its rows (or fails), and ``insert_deduplication_token``
goes with each shard's part of the block (the insert's settings travel to the shards), so a
retried block is dropped by each shard's own dedup window. Not run against a cluster here (docs/operations.md,
"ClickHouse cluster").

Analysts' reads (Store.query_readonly) go through a second client without a session, so they never
wait for, or hold up, the sink's statements on the first one; the server runs them side by side
under the same per-query limits as on chDB (memory, rows and bytes read, result, MS_SQL_TIMEOUT_S)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from streams.storage.base import EpochMs, Row, Store, StoreError
from streams.storage.chdb_store import check_identifier
from streams.storage.cluster import check_cluster_name

_READ_ONLY = ("READONLY", "ACCESS_DENIED", "Code: 164", "Code: 497")


class ServerStore(Store):
    backend = "server"

    def __init__(self, url: str, database: str = "meterstream", cluster: str | None = None) -> None:
        import clickhouse_connect

        self.database = check_identifier(database)
        self.cluster = cluster
        on_cluster = f" ON CLUSTER {check_cluster_name(cluster)}" if cluster else ""
        try:
            admin = clickhouse_connect.get_client(dsn=url)
            try:
                admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}{on_cluster}")
            except Exception as exc:
                # a read-only user (the analyst role) may not create it: it must exist already
                if not any(code in str(exc) for code in _READ_ONLY):
                    raise
            finally:
                admin.close()
            self._client = clickhouse_connect.get_client(dsn=url, database=self.database)
            self._lock = threading.Lock()
            self._url = url  # for the analysts' client, made at their first read
            self._analyst_client: Any = None
            self._analyst_lock = threading.Lock()
        except Exception as exc:
            raise StoreError(f"cannot connect to the ClickHouse server: {exc}") from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            with self._lock:  # one statement at a time: the client's session refuses concurrent ones
                return list(self._client.query(sql, parameters=dict(params or {})).named_results())
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def _query_analyst(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        import clickhouse_connect

        try:
            with self._analyst_lock:  # analysts' reads take turns among themselves, not with the sink
                if self._analyst_client is None:
                    self._analyst_client = clickhouse_connect.get_client(
                        dsn=self._url, database=self.database, autogenerate_session_id=False
                    )
                return list(self._analyst_client.query(sql, parameters=dict(params or {})).named_results())
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            with self._lock:
                self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def insert(self, table: str, rows: Sequence[Row], *, dedup_token: str | None = None) -> None:
        if not rows:
            return
        columns = list(rows[0])
        data = [[v.datetime() if isinstance(v, EpochMs) else v for v in (r[c] for c in columns)] for r in rows]
        settings: dict[str, Any] = {"insert_deduplication_token": dedup_token} if dedup_token else {}
        if self.cluster:
            settings["distributed_foreground_insert"] = 1
        try:
            with self._lock:
                self._client.insert(check_identifier(table), data, column_names=columns, settings=settings or None)
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        self._client.close()
        if self._analyst_client is not None:
            self._analyst_client.close()
