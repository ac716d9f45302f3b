"""`meterstream api`: the usage API for products, read tokens limited to tenants.

    GET /health     liveness: {"ok": true}, no token
    GET /v1/usage   cost, tokens or events of the token's tenant, grouped, windowed, filtered
                    (query.py: OpenMeter's meter query, its parameters and answer)
    GET /metrics    requests, queries by token name, query time (Prometheus's text format)

Closed as the ingest and the worker's web port are, by the same guard (streams/http_guard.py):
bound to MS_API_BIND (127.0.0.1); the Host header must name this machine or one of
MS_API_ALLOWED_HOSTS (DNS rebinding); any other path is 404 before a token is looked at; every
request but /health carries a read token, `Authorization: Bearer <token>` (401 with
`WWW-Authenticate`; a missing token and a wrong one get different messages, neither naming a
token); errors are one line of JSON. No POST is taken.

Read tokens are the ingest's tokens file form (streams/ingest/tokens.py; tokens.py here), in
MS_API_TOKENS_FILE ($MS_DATA_DIR/api-tokens, mode 0600; only SHA-256 hashes), read again
within a second of a change. Every API token names its tenants (`api token add NAME --tenant
T`): a line without `tenants=` is refused at start, and its token is refused while the API runs
(the log names the line's name, never a token). A token reads only its tenants (query.py).

Reads are the "usage" named read (streams/analyst/reads.py) through `Reader`
(streams/analyst/reader.py) in a thread: on a ClickHouse server, the store directly; with the
embedded engine, always through the worker that holds it (MS_WORKER_URL, with the worker's web
token), never opening the engine itself (that would take its lock from the sink). A store or
worker away is a 503 with Retry-After. The access log names the token's name, never the token."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas.errors import Unavailable
from streams import metrics
from streams.analyst.reader import AnalystRefused, Reader
from streams.analyst.usage import UsageParams
from streams.api import query
from streams.http_guard import Bearer, Refused, allowed_hosts, guard, json_error, shown
from streams.ingest.server import AccessLog, OneLine
from streams.ingest.tokens import Producer, TokensFile
from streams.settings import Settings

log = logging.getLogger("meterstream.api")
ROUTES = frozenset({"/health", "/v1/usage", "/metrics"})
RETRY_AFTER_S = "5"
WORKER_ATTEMPTS = 4  # of asking the workers for a read, 0.5 s apart, before a 503

Rows = list[dict[str, Any]]
UsageRead = Callable[[UsageParams], Rows]  # blocking: run in a thread

SETTINGS = web.AppKey("settings", Settings)
READ: web.AppKey[UsageRead] = web.AppKey("read")
REGISTRY = web.AppKey("registry", CollectorRegistry)
KEEPALIVE_S = 15.0  # how long a connection may wait for a request's headers, or idle


class ApiMetrics(metrics.RoleMetrics):
    """The usage API: requests by status class, queries by token name (an operator's names, from
    the tokens file), and how long a query took."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = self._own(
            Counter("meterstream_api_requests", "requests answered, by status class", ["code"], registry=None)
        )
        for code in metrics.STATUS_CLASSES:
            self.requests.labels(code)
        self.queries = self._own(
            Counter("meterstream_api_queries", "usage queries answered 200, by token name", ["token"], registry=None)
        )
        self.seconds = self._own(
            Histogram("meterstream_api_query_seconds", "time to read a usage query's rows", registry=None)
        )

    def answered(self, status: int) -> None:
        self.requests.labels(f"{status // 100}xx" if 200 <= status < 600 else "5xx").inc()


METRICS = web.AppKey("metrics", ApiMetrics)


def reader_bearer(tokens: TokensFile) -> Bearer:
    """A read token (as the tokens file says now) limited to tenants: the request keeps its name
    (`reader`, for the log) and its holder (`scope`: the tenants it reads)."""

    def check(token: str) -> Producer | None:
        who = tokens.current().producer(token)
        if who is not None and not who.tenants:
            log.warning(
                "a token of %s has no tenants= in %s: refused (an API token reads its tenants)", who.name, tokens.path
            )
            return None
        return who

    def admit(request: web.Request, who: Any) -> None:
        request["reader"] = who.name
        request["scope"] = who

    return Bearer(
        realm="meterstream-api",
        say_invalid=True,
        check=check,
        required="a read token is required: Authorization: Bearer <token> (meterstream api token add NAME --tenant T)",
        invalid="this bearer token is not a read token of this API (revoked, mistyped, or never added: "
        "meterstream api token add NAME --tenant T)",
        admit=admit,
    )


class StoreReads:
    """The usage read through `Reader`, made at the first query (a store away at start is a 503
    then, not a failed start); with the embedded engine, always through the workers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader: Reader | None = None
        self._lock = threading.Lock()

    def __call__(self, params: UsageParams) -> Rows:
        with self._lock:
            if self._reader is None:
                reader = Reader(self.settings, remote=self.settings.clickhouse_url is None)
                reader.attempts = WORKER_ATTEMPTS
                self._reader = reader
        return self._reader.read("usage", **params.model_dump())

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def _json(status: int, doc: Any, **headers: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers or None)


async def get_usage(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS]
    who: Producer = request["scope"]
    q = query.parse(request.query.items(), who.tenants or frozenset(), settings.label_keys)
    read = request.app[READ]
    started = time.monotonic()
    try:
        rows = await asyncio.to_thread(read, q.params)
    except AnalystRefused as exc:
        raise Refused(400, str(exc)) from None
    except Unavailable as exc:
        log.warning("GET /v1/usage by %s: 503: %s", who.name, exc)
        return json_error(
            503,
            "the usage store cannot be read right now (see the API's log); try again",
            **{"Retry-After": RETRY_AFTER_S},
        )
    m = request.app[METRICS]
    m.seconds.observe(time.monotonic() - started)
    m.queries.labels(who.name).inc()
    return _json(200, query.answer(q, rows), **{"Cache-Control": "no-store"})  # a tenant's usage: no cache keeps it


async def health(request: web.Request) -> web.Response:
    return _json(200, {"ok": True})


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(request.app[REGISTRY]), headers={"Content-Type": metrics.CONTENT_TYPE})


@web.middleware
async def count_answers(request: web.Request, handler: Any) -> Any:
    """Every answer counted by its status class (outside the guard: its refusals too)."""
    m = request.app[METRICS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        m.answered(exc.status)
        raise
    except Exception:
        m.answered(500)
        raise
    m.answered(response.status)
    return response


class ApiAccessLog(AccessLog):
    """The ingest's access log line, naming the read token's name (never the token or a header)."""

    who = "reader"


def make_app(settings: Settings, tokens: TokensFile, read: UsageRead | None = None) -> web.Application:
    """The API's application; `read`: how the usage read runs (default: StoreReads)."""
    middleware = guard(
        hosts=allowed_hosts(settings.api_bind, settings.api_allowed_hosts),
        bearer=reader_bearer(tokens),
        post_types=(),
        routes=lambda path: path in ROUTES,
        aiohttp_errors_as_json=True,
        owner="the API",
        log=log,
        logged=lambda request: f"{request.method} {shown(request)}",
    )
    app = web.Application(middlewares=[count_answers, middleware], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    reads: StoreReads | None = None
    if read is None:
        read = reads = StoreReads(settings)
    app[READ] = read
    app[METRICS] = ApiMetrics()
    app[REGISTRY] = metrics.registry([app[METRICS]])
    app.router.add_get("/health", health)
    app.router.add_get("/v1/usage", get_usage)
    app.router.add_get("/metrics", metrics_page)

    async def close_reads(app: web.Application) -> None:
        if reads is not None:
            await asyncio.to_thread(reads.close)

    app.on_cleanup.append(close_reads)
    return app


def serve(settings: Settings, tokens: TokensFile) -> None:
    """Run until SIGINT or SIGTERM."""
    logging.getLogger("aiohttp.server").addFilter(OneLine())
    web.run_app(
        make_app(settings, tokens),
        host=settings.api_bind,
        port=settings.api_port,
        access_log_class=ApiAccessLog,
        keepalive_timeout=KEEPALIVE_S,
        print=lambda text: log.info(" ".join(text.split())),
    )
