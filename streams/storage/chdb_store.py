"""The embedded ClickHouse engine (chDB). One process owns a data directory at a time.

The engine runs one statement at a time (a chDB session is not safe for concurrent queries), so
in a worker the sink's writes and analysts' reads (`meterstream sql` through POST /sql) take
turns on it. An analyst's read must never stall the ledger for long, so:

- an analyst's read (Store.query_readonly) runs with max_execution_time at most
  MS_SQL_EMBEDDED_TIMEOUT_S (5 s; MS_SQL_TIMEOUT_S applies when it is shorter), beside the
  memory, rows-read, bytes-read and result limits every analyst read has (streams/storage/base.py):
  the engine stops it with TIMEOUT_EXCEEDED and gives the engine back;
- the engine's lock prefers everything else: an analyst's read starts only when no other
  statement (a sink insert, a rollup read, a named read) waits for the engine, so a write waits for
  at most the one analyst read running, never for a queue of them;
- the worker's POST /sql (streams/web.py) runs one analyst query at a time, between the sink's
  batches (under the sink's batch lock), so a batch of several statements is delayed at most once.

So a sink write waits at most MS_SQL_EMBEDDED_TIMEOUT_S plus the time the engine takes to notice
the limit (it checks between blocks of rows: tests/integration/test_sql_limits.py measures it)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from streams.storage.base import Row, Store, StoreClosed, StoreError, convert_value, json_default

_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_identifier(name: str) -> str:
    if not name or set(name) - _IDENT_OK or name[0].isdigit():
        raise StoreError(f"not a plain identifier: {name!r}")
    return name


@contextlib.contextmanager
def _stderr_captured():
    """chDB's engine writes start-up failures to fd 2; keep them for the error message."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)

        def text() -> str:
            tmp.seek(0)
            return tmp.read().decode(errors="replace")

        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _escaped(params: Mapping[str, Any]) -> dict[str, Any]:
    """Bound values as the engine parses them (ClickHouse's Escaped text format, as the HTTP
    interface's param_ values): without this a newline ends the value and a backslash starts an
    escape, so multi-line SQL given to formatQuery was refused."""
    return {
        k: v.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        if isinstance(v, str)
        else v
        for k, v in params.items()
    }


class _EngineLock:
    """One statement at a time; a statement that is not an analyst's read goes before any
    analyst's read that waits (module doc)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._others_waiting = 0

    @contextlib.contextmanager
    def hold(self, *, analyst: bool = False) -> Iterator[None]:
        with self._cond:
            if analyst:
                while self._busy or self._others_waiting:
                    self._cond.wait()
            else:
                self._others_waiting += 1
                try:
                    while self._busy:
                        self._cond.wait()
                finally:
                    self._others_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class ChdbStore(Store):
    backend = "chdb"
    analyst_reads_block_writes = True

    def __init__(self, path: Path, database: str = "meterstream") -> None:
        try:
            from chdb import session
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreError("the embedded engine needs chDB: pip install 'meterstream[embedded]'") from exc
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.database = check_identifier(database)
        self._lock = _EngineLock()  # a chDB session is not safe for concurrent queries
        with _stderr_captured() as captured:
            try:
                self._session: Any = session.Session(str(path))
            except Exception as exc:
                detail = " ".join(captured().split())[-400:]
                raise StoreError(
                    f"cannot open the chDB data directory {path}: {exc} {detail} "
                    "(is another meterstream process, e.g. a worker, holding it?)"
                ) from exc
        self._run(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._run(f"USE {self.database}")

    def _run(
        self, sql: str, fmt: str = "CSV", params: Mapping[str, Any] | None = None, *, analyst: bool = False
    ) -> Any:
        with self._lock.hold(analyst=analyst):
            if self._session is None:
                raise StoreClosed("the embedded engine was closed")
            try:
                return self._session.query(sql, fmt, params=_escaped(params) if params else None)
            except Exception as exc:
                # chDB keeps the output a query wrote before it failed (a row limit, a timeout,
                # throwIf) and hands it to the NEXT query in front of its own: drain it here.
                with contextlib.suppress(Exception):
                    self._session.query("SELECT 1", "CSV")
                raise StoreError(str(exc)) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        return self._query(sql, params)

    def _query_analyst(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        return self._query(sql, params, analyst=True)

    def _query(self, sql: str, params: Mapping[str, Any] | None, *, analyst: bool = False) -> list[Row]:
        res = self._run(sql, "JSON", params, analyst=analyst)
        raw = res.bytes() if hasattr(res, "bytes") else bytes(res)
        if not raw.strip():
            return []
        doc = json.loads(raw, parse_float=Decimal)
        types = {m["name"]: m["type"] for m in doc["meta"]}
        return [{k: convert_value(types[k], v) for k, v in row.items()} for row in doc["data"]]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def insert(self, table: str, rows: Sequence[Row], *, dedup_token: str | None = None) -> None:
        if not rows:
            return
        settings = ""
        if dedup_token is not None:
            # SETTINGS cannot take a bound parameter: allow only a safe alphabet
            if set(dedup_token) - (_IDENT_OK | set("-:.")):
                raise StoreError(f"dedup token has characters outside [A-Za-z0-9_:.-]: {dedup_token!r}")
            settings = f" SETTINGS insert_deduplication_token = '{dedup_token}'"
        option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS  # EpochMs, datetimes
        body = b"\n".join(orjson.dumps(r, default=json_default, option=option) for r in rows)
        sql = f"INSERT INTO {check_identifier(table)}{settings} FORMAT JSONEachRow\n" + body.decode()
        self._run(sql)

    def close(self) -> None:
        with self._lock.hold():
            if self._session is not None:
                self._session.close()
                self._session = None
