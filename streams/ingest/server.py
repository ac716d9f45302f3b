"""`meterstream ingest`: billing events over HTTP into Kafka, for producers that cannot run a
Kafka client.

    GET  /health              liveness: {"ok": true}, no token
    GET  /metrics             requests, events accepted, items refused (Prometheus's text format)
    POST /v1/events           billing events: one JSON object, a JSON array, or JSON Lines
    POST /v1/usage/{format}   provider payloads (adapters/), framed the same way; the ids they
                              lack as query parameters or Meterstream-* headers (ids.py)

Closed as the worker's web port is, by the same guard (streams/http_guard.py): bound to
MS_INGEST_BIND (127.0.0.1); the Host header must name this machine or one of
MS_INGEST_ALLOWED_HOSTS (DNS rebinding); every request but /health carries a producer's
`Authorization: Bearer <token>` (tokens.py, read again when the file changes; a token limited to
some tenants gets 403 for another's events); a POST is JSON or JSON Lines (no cross-site form
posts) of at most MS_INGEST_MAX_BYTES (413 before more is read) and MAX_ITEMS items (413,
nothing written); its headers arrive within MS_INGEST_HEADER_TIMEOUT_S and its body within
MS_INGEST_BODY_TIMEOUT_S (408); errors are one line of JSON. Every item is judged before
anything is written (intake.py), and an event whose record the broker would not take is refused
as an item (writer.py's Limits). The answer, 202 `{"accepted": n, "rejected": [{"index",
"reason"}]}` (422 when nothing was accepted; past MAX_LISTED refusals, the first ones,
`rejected_count` and `rejected_truncated`), comes only after Kafka acknowledged every record of
the request, events and refused records; else 503 (writer.py). The access log names a request by
its path as sent, escaped and cut (`shown`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry

from adapters import FORMATS
from streams import metrics
from streams.http_guard import MAX_SHOWN_PATH, Bearer, BodyLimit, Refused, allowed_hosts, guard, json_error, shown
from streams.ingest import body, ids
from streams.ingest.intake import Intake
from streams.ingest.tokens import TokensFile
from streams.ingest.writer import Limits, Unavailable, Writer
from streams.settings import Settings

log = logging.getLogger("meterstream.ingest")
WRITER = web.AppKey("writer", Writer)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
METRICS = web.AppKey("metrics", metrics.IngestMetrics)
REGISTRY = web.AppKey("registry", CollectorRegistry)
RETRY_AFTER_S = "5"
MAX_LISTED = 100  # refused items (or forbidden indexes) an answer lists in full


def listed(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """The answer with at most MAX_LISTED entries of doc[key]; past that, the first ones, their
    number as `KEY_count` and `KEY_truncated: true`."""
    entries = doc[key]
    if len(entries) <= MAX_LISTED:
        return doc
    return {**doc, key: entries[:MAX_LISTED], f"{key}_count": len(entries), f"{key}_truncated": True}


def _json(status: int, doc: Any, **headers: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json", headers=headers or None)


def producer_bearer(tokens: TokensFile) -> Bearer:
    """A producer's token (tokens.py, as the file says now): the request keeps its name
    (`producer`, for the log) and the producer (`scope`: the tenants it may write for)."""

    def admit(request: web.Request, producer: Any) -> None:
        request["producer"] = producer.name
        request["scope"] = producer

    return Bearer(
        realm="meterstream-ingest",
        say_invalid=True,
        check=lambda token: tokens.current().producer(token),
        required="a producer's bearer token is required (meterstream ingest token add NAME)",
        invalid="this bearer token is not a producer's token of this ingest (revoked, mistyped, or never "
        "added: meterstream ingest token add NAME)",
        admit=admit,
    )


async def _items(request: web.Request) -> list[tuple[int, bytes]]:
    timeout = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise Refused(
            408,
            f"the body did not arrive within {timeout:g} s (MS_INGEST_BODY_TIMEOUT_S); nothing was written",
            close=True,
        ) from None
    try:  # framing and judging run in a thread: a full body never holds the loop
        return await asyncio.to_thread(body.items, raw, request.content_type)
    except body.TooMany as exc:
        raise Refused(413, f"{exc} (at most {body.MAX_ITEMS}); nothing was written") from None
    except body.BadBody as exc:
        raise Refused(400, str(exc)) from None


async def _answer(request: web.Request, intake: Intake) -> web.Response:
    """Write what was accepted and the refused records; answer once Kafka acknowledged them."""
    if intake.forbidden:
        tenants = ", ".join(sorted(intake.producer.tenants or ()))
        return _json(
            403,
            listed(
                {
                    "error": f"this producer's token is for the events of {tenants} only; nothing was written",
                    "indexes": intake.forbidden,
                },
                "indexes",
            ),
        )
    writer, name = request.app[WRITER], request["producer"]
    try:
        limits: Limits = await writer.limits()
        await asyncio.to_thread(
            intake.fit,
            lambda event: limits.too_large(event, name),
            lambda value, reason: limits.refusal_fits(value, reason, name),
        )
        await writer.write(intake.events, intake.refusals, name)
    except Unavailable as exc:
        log.warning("%s by %s: 503: %s", shown(request), name, exc)
        return json_error(
            503,
            f"{exc}: nothing is confirmed, send the request again (some of it may have been "
            "written; the stream counts a repeated event_id once)",
            **{"Retry-After": RETRY_AFTER_S},
        )
    accepted = len(intake.events)
    request.app[METRICS].took(name, accepted, len(intake.refusals))
    return _json(202 if accepted else 422, listed({"accepted": accepted, "rejected": intake.rejected}, "rejected"))


async def post_events(request: web.Request) -> web.Response:
    if ids.given(request.query, request.headers):
        raise Refused(400, "POST /v1/events takes no ids: the events carry theirs (ids are for /v1/usage/{format})")
    items = await _items(request)
    intake = Intake(f"meterstream ingest POST /v1/events by {request['producer']}", request["scope"])

    def judge() -> None:
        for index, raw in items:
            intake.event(index, raw)

    await asyncio.to_thread(judge)
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

    def judge() -> None:
        for index, raw in items:
            intake.payload(index, fmt, raw, given)

    await asyncio.to_thread(judge)
    return await _answer(request, intake)


async def health(request: web.Request) -> web.Response:
    return _json(200, {"ok": True})


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(request.app[REGISTRY]), headers={"Content-Type": metrics.CONTENT_TYPE})


@web.middleware
async def count_answers(request: web.Request, handler: Any) -> Any:
    """Every answer counted by its status class (outside the guard: its refusals too)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        request.app[METRICS].answered(exc.status)
        raise
    except Exception:
        request.app[METRICS].answered(500)
        raise
    request.app[METRICS].answered(response.status)
    return response


class AccessLog(AbstractAccessLogger):
    """One line a request: who, what, the status, how long (never a header or the body). `who`:
    the request key holding the token's name."""

    who = "producer"

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %d %.3fs",
            request.remote,
            request.get(self.who, "-"),
            request.method,
            shown(request),
            response.status,
            time,
        )


class OneLine(logging.Filter):
    """For aiohttp's server log: a request it could not parse (a bad request line, a control
    character in the path, a line too long) is one line, with the reason's first line escaped
    and cut, not a traceback quoting the request."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            why = (str(exc.message).strip().splitlines() or [""])[0][:MAX_SHOWN_PATH]
            said = record.getMessage()
            record.msg, record.args = (
                "%s: %d %s: %s",
                (said, exc.code, type(exc).__name__, why.encode("unicode_escape").decode("ascii")),
            )
            record.exc_info, record.exc_text = None, None
        return True


def make_app(settings: Settings, tokens: TokensFile) -> web.Application:
    middleware = guard(
        hosts=allowed_hosts(settings.ingest_bind, settings.ingest_allowed_hosts),
        bearer=producer_bearer(tokens),
        post_types=body.CONTENT_TYPES,
        body_limit=BodyLimit(settings.ingest_max_bytes, "MS_INGEST_MAX_BYTES"),
        aiohttp_errors_as_json=True,
        owner="the ingest",
        log=log,
        logged=lambda request: f"{request.method} {shown(request)}",
    )
    app = web.Application(middlewares=[count_answers, middleware], client_max_size=settings.ingest_max_bytes)
    app[WRITER] = Writer(settings)
    app[METRICS] = metrics.IngestMetrics()
    app[REGISTRY] = metrics.registry([app[METRICS]])
    app[BODY_TIMEOUT] = settings.ingest_body_timeout_s
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/v1/events", post_events)
    app.router.add_post("/v1/usage/{format}", post_usage)

    async def close_writer(app: web.Application) -> None:
        await asyncio.to_thread(app[WRITER].close)

    app.on_cleanup.append(close_writer)
    return app


def serve(settings: Settings, tokens: TokensFile) -> None:
    """Run until SIGINT or SIGTERM (then the Kafka client sends what it holds, and closes).
    aiohttp's keep-alive timer runs from a connection's start and from each answer, and closes a
    connection still waiting for a request's headers when it fires: MS_INGEST_HEADER_TIMEOUT_S
    bounds both how long the headers may take and how long a connection may idle."""
    logging.getLogger("aiohttp.server").addFilter(OneLine())
    web.run_app(
        make_app(settings, tokens),
        host=settings.ingest_bind,
        port=settings.ingest_port,
        access_log_class=AccessLog,
        keepalive_timeout=settings.ingest_header_timeout_s,
        print=lambda text: log.info(" ".join(text.split())),
    )
