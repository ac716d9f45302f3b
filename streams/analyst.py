"""Read access for analysts' commands (report, rejects, alerts, rerate's reads).

With a ClickHouse server, or an embedded data directory no worker holds, the store is opened
directly. When a worker holds the embedded engine (one process per data directory), the same
read-only SQL goes to that worker's /query endpoint (MS_WORKER_URL, default
http://127.0.0.1:MS_WEB_PORT)."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from streams.settings import Settings
from streams.storage import Store, StoreError, open_store
from streams.storage.base import convert_value


class AnalystError(RuntimeError):
    pass


class _NoWorker(AnalystError):
    """No worker holds the store right now."""


class Reader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Store | None = None
        try:
            self.store = open_store(settings)
        except StoreError as exc:
            if "lock" not in str(exc).lower() and "another" not in str(exc).lower():
                raise
            # a worker holds the embedded engine: ask the workers (MS_WORKER_URL, comma-separated)
            self.via = [u.strip().rstrip("/") for u in settings.analyst_url.split(",") if u.strip()]

    def query(self, sql: str, params: dict[str, Any] | None = None,
              types: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if self.store is not None:
            return self.store.query(sql, params)
        body = json.dumps({"sql": sql, "params": params or {}}, default=str).encode()
        for attempt in range(20):  # a worker re-opening the store (after a rebalance) answers 503 briefly
            try:
                return self._ask_workers(body, types)
            except _NoWorker:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _ask_workers(self, body: bytes, types: dict[str, str] | None) -> list[dict[str, Any]]:
        problems = []
        for url in self.via:
            req = urllib.request.Request(f"{url}/query", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - local worker URL
                    rows = json.loads(resp.read(), parse_float=Decimal)
                break
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                if exc.code != 503:  # 503: that worker does not hold the store; try the next
                    raise AnalystError(f"worker at {url}: {text}") from None
                problems.append(f"{url}: {text}")
            except urllib.error.URLError as exc:
                problems.append(f"{url}: {exc.reason}")
        else:
            raise _NoWorker("the embedded engine is held by another process and no worker serves it: "
                            + "; ".join(problems))
        # values crossed HTTP as JSON text: restore the types the caller names
        for row in rows:
            for col, ch_type in (types or {}).items():
                if col in row:
                    row[col] = convert_value(ch_type, row[col])
        return rows

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
