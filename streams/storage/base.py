"""The store interface. SQL uses ClickHouse's ``{name:Type}`` placeholders for values, bound
by the backend (never pasted into the text); rows are inserted as data, not SQL."""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from schemas.errors import Unavailable
from streams.settings import Settings

Row = dict[str, Any]


class StoreError(Unavailable):
    """A ClickHouse statement failed; the message carries ClickHouse's own."""


class StoreClosed(StoreError):
    """The store was closed (its owner handed it over) while a statement waited for it."""


# Defaults of Store.query_readonly's limits (the settings MS_SQL_MAX_MEMORY_MB, MS_SQL_MAX_ROWS_READ,
# MS_SQL_MAX_BYTES_READ and MS_SQL_EMBEDDED_TIMEOUT_S have the same ones).
# an analyst read's limits when not given: the settings' defaults (MS_SQL_*), defined there only
_FIELDS = Settings.model_fields
DEFAULT_MAX_MEMORY_MB: int = _FIELDS["sql_max_memory_mb"].default
DEFAULT_MAX_ROWS_READ: int = _FIELDS["sql_max_rows_read"].default
DEFAULT_MAX_BYTES_READ: int = _FIELDS["sql_max_bytes_read"].default
DEFAULT_EMBEDDED_TIMEOUT_S: int = _FIELDS["sql_embedded_timeout_s"].default
ANALYST_BLOCK_ROWS = 8192


def readonly_settings(
    *, max_rows: int, timeout_s: int, max_memory_mb: int, max_rows_read: int, max_bytes_read: int
) -> str:
    """The SETTINGS clause of an analyst's read; it applies to the whole query (subqueries, every
    SELECT of a UNION). The engine checks its limits between blocks of rows: blocks of at most
    8192 rows (joins' output too: a cross join's default blocks of 65k wide rows took the memory
    at once) make them bite sooner. The result is held whole (as blocks, then as text), so it may
    hold at most half the memory limit."""
    memory = int(max_memory_mb) * 1024 * 1024
    return (
        f"\nSETTINGS readonly = 1, max_execution_time = {int(timeout_s)}, timeout_overflow_mode = 'throw', "
        f"max_result_rows = {int(max_rows)}, max_result_bytes = {memory // 2}, result_overflow_mode = 'throw', "
        f"max_memory_usage = {memory}, max_rows_to_read = {int(max_rows_read)}, "
        f"max_bytes_to_read = {int(max_bytes_read)}, read_overflow_mode = 'throw', "
        f"max_block_size = {ANALYST_BLOCK_ROWS}, max_joined_block_size_rows = {ANALYST_BLOCK_ROWS}"
    )


class Store(abc.ABC):
    backend: str
    database: str
    cluster: str | None = None  # a ClickHouse cluster's name (servers only): tables are replicated and sharded

    @abc.abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a SELECT; Decimal columns come back as Decimal, integers as int."""

    @abc.abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, ALTER, OPTIMIZE …)."""

    @abc.abstractmethod
    def insert(self, table: str, rows: Sequence[Row], *, dedup_token: str | None = None) -> None:
        """Insert rows (dicts keyed by column). A repeat of the same block with the same
        ``dedup_token`` is dropped by tables that keep a deduplication window."""

    # True when an analyst's read runs on the same one-statement-at-a-time engine as the sink's
    # writes (the embedded engine): such a read is then held to a short time limit as well.
    analyst_reads_block_writes = False

    def query_readonly(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        max_rows: int,
        timeout_s: int,
        max_memory_mb: int = DEFAULT_MAX_MEMORY_MB,
        max_rows_read: int = DEFAULT_MAX_ROWS_READ,
        max_bytes_read: int = DEFAULT_MAX_BYTES_READ,
        embedded_timeout_s: int = DEFAULT_EMBEDDED_TIMEOUT_S,
    ) -> list[Row]:
        """A SELECT (already checked to hold no SETTINGS, FORMAT or INTO) under readonly=1 with
        limits on time, result rows and bytes, memory, and rows and bytes read: going over any is
        an error (one line, ClickHouse's own), never a cut. Where reads share the writer's engine
        (`analyst_reads_block_writes`) the time limit is also at most `embedded_timeout_s`."""
        seconds = min(timeout_s, embedded_timeout_s) if self.analyst_reads_block_writes else timeout_s
        return self._query_analyst(
            sql
            + readonly_settings(
                max_rows=max_rows,
                timeout_s=seconds,
                max_memory_mb=max_memory_mb,
                max_rows_read=max_rows_read,
                max_bytes_read=max_bytes_read,
            ),
            params,
        )

    def _query_analyst(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]:
        """Run an analyst's limited read (backends give it its own priority or connection)."""
        return self.query(sql, params)

    def close(self) -> None:  # noqa: B027 - optional for backends
        pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def convert_value(ch_type: str, value: Any) -> Any:
    """Turn a JSON-decoded ClickHouse value into its Python type by the column's type."""
    if value is None:
        return None
    t = ch_type
    if t.startswith("Nullable("):
        t = t[len("Nullable(") : -1]
    if t.startswith("LowCardinality("):
        t = t[len("LowCardinality(") : -1]
    if t.startswith("Decimal"):
        return Decimal(str(value))
    if t.startswith(("Int", "UInt")):
        return int(value)
    if t.startswith("DateTime"):
        text = str(value)
        parsed = dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if t == "Date":
        return dt.date.fromisoformat(str(value))
    if t.startswith("Array(") and isinstance(value, list):
        inner = t[len("Array(") : -1]
        return [convert_value(inner, v) for v in value]
    return value


_SECONDS: dict[float, str] = {}


def _second_text(second: float) -> str:
    """ "YYYY-MM-DD HH:MM:SS" (UTC) of a Unix second, cached: rows of a batch share few seconds."""
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
    return text


class EpochMs(int):
    """A DateTime64(3, 'UTC') value as Unix milliseconds: rows carry it without building a
    datetime (the embedded engine reads it as "seconds.millis" text, a server gets a datetime)."""

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self / 1000, dt.UTC)


def json_default(value: Any) -> Any:
    """JSON encoding of values for JSONEachRow inserts: exact decimals as strings."""
    if isinstance(value, EpochMs):
        return f"{value // 1000}.{value % 1000:03d}"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime in a row: times must carry a zone")
        return f"{_second_text(value.timestamp() // 1)}.{value.microsecond:06d}"
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def split_statements(sql_text: str) -> Iterable[str]:
    """Split a migration file on ';' at line ends (our DDL has no ';' inside strings)."""
    lines = [ln for ln in sql_text.splitlines() if not ln.strip().startswith("--")]
    for stmt in "\n".join(lines).split(";\n"):
        stmt = stmt.strip().rstrip(";").strip()
        if stmt:
            yield stmt
