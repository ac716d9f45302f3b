"""Read access for analysts' commands (report, rejects, alerts, sql, rerate).

With a ClickHouse server, or an embedded data directory no worker holds, the store is opened
directly. When a worker holds the embedded engine (one process per data directory), the command
asks that worker (MS_WORKER_URL, default http://127.0.0.1:MS_WEB_PORT) with its bearer token:
named reads by name (/read/<name>), an analyst's own SQL through /sql, which checks it the same
way (streams/analyst/sql_guard.py)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from schemas.errors import InputRejected, Unavailable
from streams.analyst import reads
from streams.analyst.sql_guard import RefusedSQL, SqlGuard
from streams.settings import Settings
from streams.storage import Store, StoreError, open_store
from streams.storage.base import convert_value
from streams.web_token import TokenMissing, read_token


class AnalystError(Unavailable):
    """No worker answered an analyst's read, or it failed there."""


class AnalystRefused(InputRejected):
    """An analyst's read refused for what it asked: a query the guard refuses, bad parameters."""


class _NoWorker(AnalystError):
    """No worker holds the store right now."""


class Reader:
    """Named reads (streams/analyst/reads.py) and checked ad-hoc SQL, on the store or through a worker."""

    def __init__(self, settings: Settings, *, remote: bool = False) -> None:
        """`remote`: never open the store, always ask the workers (a process that must not take
        the embedded engine's lock from the sink)."""
        self.settings = settings
        self.store: Store | None = None
        self.attempts = 20  # of asking the workers, 0.5 s apart (one re-opening the store answers 503 briefly)
        # when a worker holds the embedded engine: ask the workers (MS_WORKER_URL, comma-separated)
        self.via = [u.strip().rstrip("/") for u in settings.analyst_url.split(",") if u.strip()]
        if remote:
            return
        try:
            self.store = open_store(settings)
        except StoreError as exc:
            if "lock" not in str(exc).lower() and "another" not in str(exc).lower():
                raise

    def read(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Rows of the read called `name` (spend, rejects, alerts, counts)."""
        if self.store is not None:
            try:
                return reads.run(self.store, name, params)
            except reads.ReadError as exc:
                raise AnalystRefused(str(exc)) from None
        rows = self._ask(f"/read/{name}", params)
        return _typed(rows, reads.READS[name].types)

    def sql(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """An analyst's own SELECT, DESCRIBE or SHOW, checked (streams/analyst/sql_guard.py) and run read-only."""
        if self.store is not None:
            try:
                return run_checked_sql(self.store, self.settings, text, params)
            except RefusedSQL as exc:
                raise AnalystRefused(f"refused: {exc}") from None
        return self._ask("/sql", {"sql": text, "params": params or {}})

    def post(self, path: str, body: dict[str, Any], timeout: float = 60) -> Any:
        """POST to the workers (the one holding the store answers); for the worker-only actions."""
        return self._ask(path, body, timeout)

    def _ask(self, path: str, body_obj: dict[str, Any], timeout: float = 60) -> Any:
        body = json.dumps(body_obj, default=_json_default).encode()
        for attempt in range(self.attempts):  # a worker re-opening the store (after a rebalance) answers 503 briefly
            try:
                return self._ask_workers(path, body, timeout)
            except _NoWorker:
                if attempt == self.attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _ask_workers(self, path: str, body: bytes, timeout: float) -> Any:
        problems = []
        try:
            token = read_token(self.settings)
        except TokenMissing as exc:
            raise AnalystError(str(exc)) from None
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token.get_secret_value()}"}
        for url in self.via:
            req = urllib.request.Request(f"{url}{path}", data=body, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - local worker URL
                    return json.loads(resp.read(), parse_float=Decimal)
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                if exc.code == 400:  # the worker refused what was asked
                    raise AnalystRefused(f"worker at {url}: {_error_text(text)}") from None
                if exc.code != 503:  # 503: that worker does not hold the store; try the next
                    raise AnalystError(f"worker at {url}: {_error_text(text)}") from None
                problems.append(f"{url}: {_error_text(text)}")
            except urllib.error.URLError as exc:
                problems.append(f"{url}: {exc.reason}")
            except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:  # a worker stopped mid-answer
                problems.append(f"{url}: {type(exc).__name__}: {exc}")
        raise _NoWorker(
            "the embedded engine is held by another process and no worker serves it: " + "; ".join(problems)
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_checked_sql(store: Store, settings: Settings, text: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Check `text` with the store's own parser, then run it read-only with the MS_SQL_* limits
    (time, result rows, memory, rows and bytes read; on the embedded engine a time limit of at
    most MS_SQL_EMBEDDED_TIMEOUT_S: streams/storage/chdb_store.py). A SELECT runs as its
    canonical text; for DESCRIBE and SHOW the guard's own statement runs, and SHOW TABLES keeps
    the tables and views analysts may read (SqlGuard.check)."""
    if params is not None and (
        not isinstance(params, dict)
        or not all(isinstance(k, str) and isinstance(v, str | int | bool) for k, v in params.items())
    ):
        raise RefusedSQL("params must map names to strings or integers")
    checked = SqlGuard(store, settings.clickhouse_database).check(text, params)
    rows = store.query_readonly(
        checked.sql,
        checked.params,
        max_rows=settings.sql_max_rows,
        timeout_s=settings.sql_timeout_s,
        max_memory_mb=settings.sql_max_memory_mb,
        max_rows_read=settings.sql_max_rows_read,
        max_bytes_read=settings.sql_max_bytes_read,
        embedded_timeout_s=settings.sql_embedded_timeout_s,
    )
    return checked.keep(rows)


def _typed(rows: list[dict[str, Any]], types: dict[str, str]) -> list[dict[str, Any]]:
    """Values crossed HTTP as JSON text: restore the types the read names."""
    for row in rows:
        for col, ch_type in types.items():
            if col in row:
                row[col] = convert_value(ch_type, row[col])
    return rows


def _error_text(text: str) -> str:
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text[:300]


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"not JSON: {type(v).__name__}")


def parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
