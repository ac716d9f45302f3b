"""The worker's web endpoints, closed by default.

Bound to MS_WEB_BIND (127.0.0.1). Every request but the liveness check `GET /health` carries
`Authorization: Bearer <token>` (streams/web_token.py); a POST must be `application/json` (no
cross-site form or text/plain posts) with a JSON object body; the Host header must name this
machine (loopback, or MS_WEB_ALLOWED_HOSTS), against DNS rebinding. Only the routes below
exist: Faust's own table, router, graph and stats pages are off.

    GET  /health          liveness: {"ok": true}
    GET  /status          counters, recoveries, what this worker holds
    POST /read/<name>     a named read (streams/analyst/reads.py) with typed parameters
    POST /sql             {"sql": "SELECT …", "params": {}}: one checked SELECT (streams/analyst/sql_guard.py)
    POST /rerate          {"since", "until", "catalog": NAME}: catalogs from MS_RERATE_CATALOGS_DIR
    POST /fault/sink      {"fail": bool}   only with MS_FAULT_INJECTION=1
    POST /fault/recover   {}               only with MS_FAULT_INJECTION=1: recover as at an offset hole
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import orjson
from aiohttp import web as aioweb

from streams.analyst import reads
from streams.analyst.reader import run_checked_sql
from streams.recovery import recoveries, restart_in_place
from streams.settings import Settings
from streams.analyst.sql_guard import RefusedSQL
from streams.storage import StoreClosed, StoreError
from streams.web_token import ensure_token

log = logging.getLogger("meterstream.web")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CATALOG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, **headers: str) -> aioweb.Response:
    return aioweb.json_response({"error": message}, status=status, headers=headers or None)


def host_name(host: str) -> str:
    """The name of a Host header, without its port."""
    if host.startswith("["):  # [::1]:6066
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard(settings: Settings, routes: Callable[[str], bool]) -> Any:
    """aiohttp middleware: Host check, route allow-list, bearer token, JSON bodies, clean errors."""
    token = ensure_token(settings).get_secret_value().encode()
    if len(token) < 16:
        raise ValueError("MS_WEB_TOKEN must be at least 16 characters")
    hosts = LOOPBACK_HOSTS | {h.strip().lower() for h in settings.web_allowed_hosts.split(",") if h.strip()}
    if settings.web_bind not in ("0.0.0.0", "::"):
        hosts |= {settings.web_bind.lower()}

    @aioweb.middleware
    async def middleware(request: aioweb.Request, handler: Callable[[aioweb.Request], Awaitable[Any]]) -> Any:
        if host_name(request.host or "").lower() not in hosts:
            return _error(421, "unknown Host header")
        path = request.path
        if not routes(path):
            return _error(404, "no such endpoint")
        if not (path == "/health" and request.method in ("GET", "HEAD")):
            given = request.headers.get("Authorization", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token)):
                return _error(401, "a bearer token is required (MS_WEB_TOKEN or $MS_DATA_DIR/web-token)",
                              **{"WWW-Authenticate": 'Bearer realm="meterstream"'})
            if request.method == "POST" and request.content_type != "application/json":
                return _error(415, "send Content-Type: application/json")
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except aioweb.HTTPException:
            raise
        except Exception:
            log.exception("web request %s %s failed", request.method, path)
            return _error(500, "internal error (see the worker's log)")

    return middleware


async def json_object(request: Any) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body


def catalog_by_name(settings: Settings, name: Any) -> Path | None:
    """The catalog directory a re-rate may use: None (the worker's own) or a named one."""
    if name is None:
        return settings.catalog_dir
    if not isinstance(name, str) or not CATALOG_NAME.match(name):
        raise BadRequest(400, "catalog must be the name of a directory in MS_RERATE_CATALOGS_DIR "
                              "(letters, digits, _ . -), not a path")
    root = settings.rerate_catalogs.resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_dir():
        raise BadRequest(400, f"no catalog named {name!r} in {root}")
    return path


def install(app: faust.App, settings: Settings, sink: Any, stats: dict[str, int], state: Any,
            alerts: Any = None) -> None:
    """Register the endpoints and the guard on a Faust app."""
    fault_paths = ({"/fault/recover"} | ({"/fault/sink"} if sink is not None else set())
                   if settings.fault_injection else set())
    fixed = {"/health", "/status", "/sql", "/rerate"} | fault_paths

    def routes(path: str) -> bool:
        return path in fixed or (path.startswith("/read/") and path.count("/") == 2)

    app.web.web_app.middlewares.append(guard(settings, routes))

    async def with_store(fn: Callable[..., Any], *args: Any, exclusive: bool = False) -> Any:
        """Run fn(store, *args) in a thread. Reads do not wait for the sink's batch to finish,
        only for the statement running now (the store runs one at a time); `exclusive` (a
        re-rate, which writes) waits for the sink's whole batch and holds it off meanwhile."""
        store = sink.store if sink is not None else None
        if store is None:
            raise BadRequest(503, "this worker does not hold the store")
        try:
            if exclusive:
                async with sink.store_lock:
                    return await asyncio.to_thread(fn, store, *args)
            return await asyncio.to_thread(fn, store, *args)
        except StoreClosed:
            raise BadRequest(503, "the store was handed over (a rebalance); ask again") from None
        except StoreError as exc:
            raise BadRequest(400, str(exc)) from None

    def rows_response(view: faust.web.View, rows: Any) -> Any:
        return view.bytes(orjson.dumps(rows, default=str), content_type="application/json")

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"ok": True})

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        body = {"ok": True, "stats": dict(stats), "recoveries": recoveries()}
        if state is not None:
            data = state.data
            body["state_keys"] = data.estimated_keys() if hasattr(data, "estimated_keys") else len(data)
        if sink is not None:
            body.update(rollup_keys=len(sink.rollups), sink_rows=sink.rows_written, store_open=sink.store is not None)
        if alerts is not None:
            body.update(alerts_sent=alerts.alerts_sent, alerts_owner=alerts.evaluator is not None)
        return web.json(body)

    @app.page("/read/{name}")
    class ReadView(faust.web.View):
        async def post(self, request: Any, name: str) -> Any:
            body = await json_object(request)
            try:
                reads.parse(name, body)
            except reads.ReadError as exc:
                raise BadRequest(400, str(exc)) from None
            return rows_response(self, await with_store(reads.run, name, body))

    sql_turn = asyncio.Semaphore(1)  # one analyst query at a time on an engine the sink shares

    @app.page("/sql")
    class SqlView(faust.web.View):
        """On the embedded engine an analyst's query runs alone and between the sink's batches,
        with a time limit of at most MS_SQL_EMBEDDED_TIMEOUT_S, so a batch waits for at most one
        such query (streams/storage/chdb_store.py); on a server it runs beside the sink."""

        async def post(self, request: Any) -> Any:
            body = await json_object(request)
            if set(body) - {"sql", "params"}:
                raise BadRequest(400, "the body takes only sql and params")

            def checked(store: Any) -> Any:
                try:
                    return run_checked_sql(store, settings, body.get("sql"), body.get("params"))
                except RefusedSQL as exc:
                    raise BadRequest(400, f"refused: {exc}") from None
                except StoreClosed:
                    raise
                except StoreError as exc:  # a limit (time, memory, rows read …): ClickHouse's first line
                    raise BadRequest(400, (str(exc).strip().splitlines() or ["query failed"])[0][:500]) from None

            store = sink.store if sink is not None else None
            if store is None or not store.analyst_reads_block_writes:
                return rows_response(self, await with_store(checked))
            async with sql_turn:
                return rows_response(self, await with_store(checked, exclusive=True))

    @app.page("/rerate")
    class RerateView(faust.web.View):
        async def post(self, request: Any) -> Any:
            from pricing import CatalogError, load_catalog
            from streams.analyst.rerate import RerateError, rerate

            body = await json_object(request)
            if set(body) - {"since", "until", "catalog"}:
                raise BadRequest(400, "the body takes since, until and catalog (a name)")
            catalog_dir = catalog_by_name(settings, body.get("catalog"))
            try:
                since = dt.datetime.fromisoformat(str(body["since"]))
                until = dt.datetime.fromisoformat(str(body["until"]))
                catalog = load_catalog(catalog_dir)
            except (KeyError, ValueError, CatalogError) as exc:
                raise BadRequest(400, f"bad re-rate request: {exc}") from None

            def run(store: Any) -> Any:
                try:
                    return rerate(store, catalog, since, until,
                                  lateness=dt.timedelta(hours=settings.allowed_lateness_hours))
                except RerateError as exc:
                    raise BadRequest(400, str(exc)) from None

            return self.json(await with_store(run, exclusive=True))

    if settings.fault_injection and sink is not None:
        @app.page("/fault/sink")
        class FaultSinkView(faust.web.View):
            """{"fail": true} makes sink writes fail until false."""

            async def post(self, request: Any) -> Any:
                sink.fail_writes = bool((await json_object(request)).get("fail"))
                return self.json({"fail_writes": sink.fail_writes})

    if settings.fault_injection:
        @app.page("/fault/recover")
        class FaultRecoverView(faust.web.View):
            """Recover now, as at an offset hole (the process re-executes itself)."""

            async def post(self, request: Any) -> Any:
                asyncio.get_running_loop().call_later(0.1, restart_in_place, "fault injection")
                return self.json({"recovering": True})
