"""The store interface. SQL uses ClickHouse's ``{name:Type}`` placeholders for values, bound
by the backend (never pasted into the text); rows are inserted as data, not SQL."""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

Row = dict[str, Any]


class StoreError(RuntimeError):
    """A ClickHouse statement failed; the message carries ClickHouse's own."""


class StoreClosed(StoreError):
    """The store was closed (its owner handed it over) while a statement waited for it."""


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

    def query_readonly(self, sql: str, params: Mapping[str, Any] | None = None, *, max_rows: int,
                       timeout_s: int) -> list[Row]:
        """A SELECT (already checked to hold no SETTINGS, FORMAT or INTO) under readonly=1, with a
        time limit and a row limit: going over either is an error, not a cut."""
        limits = (f"\nSETTINGS readonly = 1, max_execution_time = {int(timeout_s)}, "
                  f"max_result_rows = {int(max_rows)}, result_overflow_mode = 'throw'")
        return self.query(sql + limits, params)

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
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    if t == "Date":
        return dt.date.fromisoformat(str(value))
    if t.startswith("Array(") and isinstance(value, list):
        inner = t[len("Array(") : -1]
        return [convert_value(inner, v) for v in value]
    return value


_SECONDS: dict[float, str] = {}


def _second_text(second: float) -> str:
    """"YYYY-MM-DD HH:MM:SS" (UTC) of a Unix second, cached: rows of a batch share few seconds."""
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
        return dt.datetime.fromtimestamp(self / 1000, dt.timezone.utc)


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
