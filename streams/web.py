"""The worker's web endpoints, closed by default.

Bound to MS_WEB_BIND (127.0.0.1), behind the guard the ingest shares (streams/http_guard.py).
Every request but the liveness check `GET /health` carries `Authorization: Bearer <token>`
(streams/web_token.py); a POST must be `application/json` (no cross-site form or text/plain
posts) with a JSON object body; the Host header must name this machine (loopback, or
MS_WEB_ALLOWED_HOSTS), against DNS rebinding. Only the routes below exist: Faust's own table,
router, graph and stats pages are off.

The port sees the roles of its process only through the narrow interfaces below: the store the
sink holds (`StoreAccess`), each role's status (`RoleStatus`) and the sink's fault injection
(`FaultInjection`).

    GET  /health          liveness: {"ok": true}
    GET  /ready           readiness: 200 {"ready": true}, else 503 with the problems (streams/health.py)
    GET  /status          ready or not and why, each role's partitions and lag, counters, recoveries
    GET  /metrics         the same counters and more, in Prometheus's text format (streams/metrics.py)
    POST /read/<name>     a named read (streams/analyst/reads.py) with typed parameters
    POST /sql             {"sql": "SELECT …", "params": {}}: one checked SELECT (streams/analyst/sql_guard.py)
    POST /fault/sink      {"fail": bool}   only with MS_FAULT_INJECTION=1
    POST /fault/recover   {}               only with MS_FAULT_INJECTION=1: recover as at an offset hole
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import faust
import orjson

from streams import metrics
from streams.analyst import reads
from streams.analyst.reader import run_checked_sql
from streams.analyst.sql_guard import RefusedSQL
from streams.http_guard import Bearer, Refused, allowed_hosts, guard, shown
from streams.recovery import recoveries, restart_in_place
from streams.settings import Settings
from streams.storage import Store, StoreClosed, StoreError
from streams.storage.migrations import pending
from streams.web_token import ensure_token

log = logging.getLogger("meterstream.web")


class StoreAccess(Protocol):
    """The store this process holds (the sink's), as the web port may use it."""

    def holds_store(self) -> bool:
        """Whether this process holds the store now."""

    def reads_block_writes(self) -> bool:
        """Whether an analyst's query on the store holds off the sink's writes (the embedded
        engine runs one statement at a time)."""

    async def read(self, fn: Callable[[Store], Any]) -> Any:
        """fn(store) in a thread, beside the sink's batch (it waits only for the statement
        running now). StoreClosed when the store is not held."""

    async def exclusive(self, fn: Callable[[Store], Any]) -> Any:
        """fn(store) in a thread between the sink's batches: it waits for the batch being written
        and holds the next one off until it returns. StoreClosed when the store is not held."""


class RoleStatus(Protocol):
    """A role's part of GET /status."""

    def status(self) -> dict[str, Any]: ...


class FaultInjection(Protocol):
    """The sink's fault injection (MS_FAULT_INJECTION=1 only)."""

    def inject_write_failures(self, fail: bool) -> bool:
        """Make the sink's writes fail, as if ClickHouse were down, while `fail`; the setting now."""


def worker_bearer(settings: Settings) -> Bearer:
    """The worker's one token (MS_WEB_TOKEN, else $MS_DATA_DIR/web-token), of 16 characters or more."""
    token = ensure_token(settings).get_secret_value().encode()
    if len(token) < 16:
        raise ValueError("MS_WEB_TOKEN must be at least 16 characters")
    return Bearer(
        realm="meterstream",
        required="a bearer token is required (MS_WEB_TOKEN or $MS_DATA_DIR/web-token)",
        check=lambda given: True if hmac.compare_digest(given.encode(), token) else None,
    )


def web_guard(settings: Settings, routes: Callable[[str], bool]) -> Any:
    """aiohttp middleware: Host check, route allow-list, bearer token, JSON bodies, clean errors."""
    return guard(
        hosts=allowed_hosts(settings.web_bind, settings.web_allowed_hosts),
        routes=routes,
        bearer=worker_bearer(settings),
        post_types=("application/json",),
        owner="the worker",
        log=log,
        logged=lambda request: f"web request {request.method} {shown(request)}",
        charset="utf-8",
    )


async def json_object(request: Any) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object")
    return body


def install(
    app: faust.App,
    settings: Settings,
    stats: dict[str, int],
    *,
    store: StoreAccess | None = None,
    statuses: Sequence[RoleStatus | None] = (),
    faults: FaultInjection | None = None,
    health: Any = None,
) -> None:
    """Register the endpoints and the guard on a Faust app. `store`: the store this process
    holds (the sink), if any; `statuses`: the roles' parts of /status, in order (None: a role
    this process does not run); `faults`: the sink's fault injection; `health`: the process's
    streams/health.py Health (None: always ready, no roles' lag)."""
    roles = [role for role in statuses if role is not None]
    fault_paths = (
        {"/fault/recover"} | ({"/fault/sink"} if faults is not None else set()) if settings.fault_injection else set()
    )
    fixed = {"/health", "/ready", "/status", "/metrics", "/sql"} | fault_paths

    def routes(path: str) -> bool:
        return path in fixed or (path.startswith("/read/") and path.count("/") == 2)

    cast(Any, app.web).web_app.middlewares.append(web_guard(settings, routes))  # Faust's aiohttp driver

    async def with_store(fn: Callable[[Store], Any], *, exclusive: bool = False) -> Any:
        """Run fn(store) in a thread. Reads do not wait for the sink's batch to finish, only for
        the statement running now (the store runs one at a time); `exclusive` (a re-rate, which
        writes) waits for the sink's whole batch and holds it off meanwhile."""
        if store is None or not store.holds_store():
            raise Refused(503, "this worker does not hold the store")
        try:
            return await (store.exclusive(fn) if exclusive else store.read(fn))
        except StoreClosed:
            raise Refused(503, "the store was handed over (a rebalance); ask again") from None
        except StoreError as exc:
            raise Refused(400, str(exc)) from None

    def rows_response(view: faust.web.View, rows: Any) -> Any:
        return view.bytes(orjson.dumps(rows, default=str), content_type="application/json")

    @app.page("/health")
    async def liveness(web: Any, request: Any) -> Any:
        return web.json({"ok": True})

    def problems() -> list[str]:
        return health.problems() if health is not None else []

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        found = problems()
        return web.json({"ready": not found, "problems": found}, status=503 if found else 200)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        found = problems()
        body: dict[str, Any] = {"ok": not found, "ready": not found, "problems": found}
        body.update(health.status() if health is not None else {})
        body.update({"stats": dict(stats), "recoveries": recoveries()})
        for role in roles:
            body.update(role.status())
        if store is not None and store.holds_store():  # what `meterstream up` asks while this holds the engine
            try:
                body["migrations_pending"] = await store.read(
                    lambda s: [m.path.name for m in pending(s, settings.migrations_dir)]
                )
            except (StoreClosed, StoreError):
                pass
        return web.json(body)

    registry = metrics.registry(
        [
            metrics.RecoveryMetrics(),
            health,
            *(getattr(role, "metrics", None) for role in roles),
            *(getattr(role, "spend", None) for role in roles),  # MS_METRICS_SPEND=1 only
        ]
    )

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(registry), headers={"Content-Type": metrics.CONTENT_TYPE})

    @app.page("/read/{name}")
    class ReadView(faust.web.View):
        async def post(self, request: Any, name: str) -> Any:
            body = await json_object(request)
            try:
                reads.parse(name, body)
            except reads.ReadError as exc:
                raise Refused(400, str(exc)) from None
            return rows_response(self, await with_store(lambda store: reads.run(store, name, body)))

    sql_turn = asyncio.Semaphore(1)  # one analyst query at a time on an engine the sink shares

    @app.page("/sql")
    class SqlView(faust.web.View):
        """On the embedded engine an analyst's query runs alone and between the sink's batches,
        with a time limit of at most MS_SQL_EMBEDDED_TIMEOUT_S, so a batch waits for at most one
        such query (streams/storage/chdb_store.py); on a server it runs beside the sink."""

        async def post(self, request: Any) -> Any:
            body = await json_object(request)
            if set(body) - {"sql", "params"}:
                raise Refused(400, "the body takes only sql and params")

            sql = body.get("sql")
            if not isinstance(sql, str):
                raise Refused(400, "refused: give one SELECT query")

            def checked(store: Any) -> Any:
                try:
                    return run_checked_sql(store, settings, sql, body.get("params"))
                except RefusedSQL as exc:
                    raise Refused(400, f"refused: {exc}") from None
                except StoreClosed:
                    raise
                except StoreError as exc:  # a limit (time, memory, rows read …): ClickHouse's first line
                    raise Refused(400, (str(exc).strip().splitlines() or ["query failed"])[0][:500]) from None

            if store is None or not store.reads_block_writes():
                return rows_response(self, await with_store(checked))
            async with sql_turn:
                return rows_response(self, await with_store(checked, exclusive=True))

    if settings.fault_injection and faults is not None:
        injection: FaultInjection = faults

        @app.page("/fault/sink")
        class FaultSinkView(faust.web.View):
            """{"fail": true} makes sink writes fail until false."""

            async def post(self, request: Any) -> Any:
                fail = injection.inject_write_failures(bool((await json_object(request)).get("fail")))
                return self.json({"fail_writes": fail})

    if settings.fault_injection:

        @app.page("/fault/recover")
        class FaultRecoverView(faust.web.View):
            """Recover now, as at an offset hole (the process re-executes itself)."""

            async def post(self, request: Any) -> Any:
                asyncio.get_running_loop().call_later(0.1, restart_in_place, "fault injection")
                return self.json({"recovering": True})
