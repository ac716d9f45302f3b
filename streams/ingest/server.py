"""`meterstream ingest`: billing events over HTTP into Kafka, for producers that cannot run a
Kafka client.

    GET  /health              liveness: {"ok": true}, no token
    POST /v1/events           billing events: one JSON object, a JSON array, or JSON Lines
    POST /v1/usage/{format}   provider payloads (adapters/), framed the same way; the ids they
                              lack as query parameters or Meterstream-* headers (ids.py)

Closed as the worker's web port is (streams/web.py): bound to MS_INGEST_BIND (127.0.0.1); the
Host header must name this machine or one of MS_INGEST_ALLOWED_HOSTS (DNS rebinding); every
request but /health carries a producer's `Authorization: Bearer <token>` (tokens.py, read again
when the file changes; a token limited to some tenants gets 403 for another's events); a POST is
JSON or JSON Lines (no cross-site form posts) of at most MS_INGEST_MAX_BYTES (413 before more
is read); errors are one line of JSON. Every item is judged before anything is written
(intake.py). The answer, 202 `{"accepted": n, "rejected": [{"index", "reason"}]}` (422 when
nothing was accepted), comes only after Kafka acknowledged every record of the request, events
and refused records; else 503 (writer.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from adapters import FORMATS
from streams.ingest import body, ids
from streams.ingest.intake import Intake
from streams.ingest.tokens import TokensFile
from streams.ingest.writer import Unavailable, Writer
from streams.settings import Settings
from streams.web import LOOPBACK_HOSTS, host_name

log = logging.getLogger("meterstream.ingest")
WRITER = web.AppKey("writer", Writer)
RETRY_AFTER_S = "5"


class Refused(Exception):
    """A request answered with this status and one line of reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(status: int, doc: Any, **headers: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json",
                        headers=headers or None)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return _json(status, {"error": message}, **headers)


def guard(tokens: TokensFile, hosts: frozenset[str], max_bytes: int) -> Any:
    """aiohttp middleware: Host check, a producer's bearer token, content type and body size,
    clean errors."""
    too_large = f"the body is over {max_bytes} bytes (MS_INGEST_MAX_BYTES)"

    def refusal(request: web.Request) -> web.Response | None:
        if host_name(request.host or "").lower() not in hosts:
            return _error(421, "unknown Host header")
        if request.path == "/health" and request.method in ("GET", "HEAD"):
            return None
        given = request.headers.get("Authorization", "")
        producer = tokens.current().producer(given[7:].strip()) if given.startswith("Bearer ") else None
        if producer is None:
            challenge = 'Bearer realm="meterstream-ingest"' + (', error="invalid_token"' if given else "")
            return _error(401, "a producer's bearer token is required (meterstream ingest token add NAME)",
                          **{"WWW-Authenticate": challenge})
        request["producer"] = producer.name
        request["scope"] = producer
        if request.method == "POST":
            if request.content_type not in body.CONTENT_TYPES:
                return _error(415, f"send Content-Type: {', '.join(sorted(body.CONTENT_TYPES))}")
            if request.content_length is not None and request.content_length > max_bytes:
                return _error(413, too_large)
        return None

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        refused = refusal(request)
        if refused is not None:
            return refused  # a body it carries is not read: aiohttp discards it (for at most 10 s)
        try:
            return await handler(request)
        except Refused as exc:
            return _error(exc.status, str(exc))
        except web.HTTPRequestEntityTooLarge:  # no Content-Length: refused once the limit is read
            return _error(413, too_large)
        except web.HTTPException as exc:  # aiohttp's own: no such route (404), method (405)
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return _error(exc.status, exc.reason, **allow)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error (see the ingest's log)")

    return middleware


async def _items(request: web.Request) -> list[tuple[int, bytes]]:
    try:
        return body.items(await request.read(), request.content_type)
    except body.BadBody as exc:
        raise Refused(400, str(exc)) from None


async def _answer(request: web.Request, intake: Intake) -> web.Response:
    """Write what was accepted and the refused records; answer once Kafka acknowledged them."""
    if intake.forbidden:
        tenants = ", ".join(sorted(intake.producer.tenants or ()))
        return _json(403, {"error": f"this producer's token is for the events of {tenants} only; nothing was written",
                           "indexes": intake.forbidden})
    try:
        await request.app[WRITER].write(intake.events, intake.refusals, request["producer"])
    except Unavailable as exc:
        log.warning("%s by %s: 503: %s", request.path, request["producer"], exc)
        return _error(503, f"{exc}: nothing is confirmed, send the request again (some of it may have been "
                           "written; the stream counts a repeated event_id once)", **{"Retry-After": RETRY_AFTER_S})
    accepted = len(intake.events)
    return _json(202 if accepted else 422, {"accepted": accepted, "rejected": intake.rejected})


async def post_events(request: web.Request) -> web.Response:
    if ids.given(request.query, request.headers):
        raise Refused(400, "POST /v1/events takes no ids: the events carry theirs (ids are for /v1/usage/{format})")
    items = await _items(request)
    intake = Intake(f"meterstream ingest POST /v1/events by {request['producer']}", request["scope"])
    for index, raw in items:
        intake.event(index, raw)
    return await _answer(request, intake)


async def post_usage(request: web.Request) -> web.Response:
    fmt = request.match_info["format"]
    if fmt not in FORMATS:
        raise Refused(404, f"no format {fmt!r}: one of {', '.join(FORMATS)}")
    try:
        given = ids.request_ids(request.query, request.headers)
    except ids.BadIds as exc:
        raise Refused(400, str(exc)) from None
    items = await _items(request)
    if given.event_id is not None and len(items) > 1:
        raise Refused(400, "event-id replaces a payload's id: give it with one payload only")
    intake = Intake(f"meterstream ingest POST /v1/usage/{fmt} by {request['producer']}", request["scope"])
    for index, raw in items:
        intake.payload(index, fmt, raw, given)
    return await _answer(request, intake)


async def health(request: web.Request) -> web.Response:
    return _json(200, {"ok": True})


class AccessLog(AbstractAccessLogger):
    """One line a request: who, what, the status, how long (never a header or the body)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %s %d %.3fs", request.remote, request.get("producer", "-"), request.method,
                         request.path, response.status, time)


def make_app(settings: Settings, tokens: TokensFile) -> web.Application:
    hosts = LOOPBACK_HOSTS | {h.strip().lower() for h in settings.ingest_allowed_hosts.split(",") if h.strip()}
    if settings.ingest_bind not in ("0.0.0.0", "::"):
        hosts |= {settings.ingest_bind.lower()}
    app = web.Application(middlewares=[guard(tokens, frozenset(hosts), settings.ingest_max_bytes)],
                          client_max_size=settings.ingest_max_bytes)
    app[WRITER] = Writer(settings)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/events", post_events)
    app.router.add_post("/v1/usage/{format}", post_usage)

    async def close_writer(app: web.Application) -> None:
        await asyncio.to_thread(app[WRITER].close)

    app.on_cleanup.append(close_writer)
    return app


def serve(settings: Settings, tokens: TokensFile) -> None:
    """Run until SIGINT or SIGTERM (then the Kafka client sends what it holds, and closes)."""
    web.run_app(make_app(settings, tokens), host=settings.ingest_bind, port=settings.ingest_port,
                access_log_class=AccessLog, print=lambda text: log.info(" ".join(text.split())))
