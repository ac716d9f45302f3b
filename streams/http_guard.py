"""The guard in front of meterstream's two HTTP ports: the worker's web port (streams/web.py) and
the HTTP ingest (streams/ingest/server.py).

One aiohttp middleware, the same checks in the same order for both:

1. the Host header must name this machine (loopback, the port's bind address, or one of its
   MS_*_ALLOWED_HOSTS): else 421, against DNS rebinding;
2. with a route allow-list, any other path is 404 before anything else is looked at;
3. every request but `GET`/`HEAD` of an open path (/health) carries `Authorization: Bearer
   <token>`: else 401 with a `WWW-Authenticate` challenge;
4. a POST has one of the port's content types (no cross-site form or text/plain posts): else
   415; with a body limit, a declared length over it is 413 before the body is read;
5. every refusal and failure is one line of JSON, `{"error": "..."}`; a handler refuses a
   request by raising `Refused`; anything else it raises is logged and answered 500.

What differs between the ports is given (`guard`'s parameters): how a token is checked and what
it yields (`Bearer`), which paths need no token, which content types a POST may have, the body
limit, and whether aiohttp's own errors (no such route, method) are answered as JSON too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from schemas.errors import InputRejected

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_BINDS = ("0.0.0.0", "::")


MAX_SHOWN_PATH = 200  # characters of a request's path the log shows


def shown(request: web.BaseRequest) -> str:
    """The request's path as sent (never decoded: no %0a becomes a line break), every character
    that is not printable ASCII and every backslash escaped, cut to MAX_SHOWN_PATH characters:
    a log line it is in is one line, and says only what it says."""
    raw = request.raw_path
    text = raw[:MAX_SHOWN_PATH].encode("unicode_escape").decode("ascii")
    return text + (f"...({len(raw)} characters)" if len(raw) > MAX_SHOWN_PATH else "")


def host_name(host: str) -> str:
    """The name of a Host header, without its port."""
    if host.startswith("["):  # [::1]:6066
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_hosts(bind: str, allowed: str) -> frozenset[str]:
    """The names a port's Host header may give: loopback, `allowed` (comma-separated, as in
    MS_WEB_ALLOWED_HOSTS) and the address the port is bound to, unless that is a wildcard."""
    hosts = LOOPBACK_HOSTS | {h.strip().lower() for h in allowed.split(",") if h.strip()}
    if bind not in WILDCARD_BINDS:
        hosts |= {bind.lower()}
    return frozenset(hosts)


class Refused(InputRejected):
    """A request answered with this status and one line of reason; `close`: and the connection
    closed (what is left of its body is not waited for)."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def json_error(status: int, message: str, *, charset: str | None = None, **headers: str) -> web.Response:
    """`{"error": message}` as one line of JSON."""
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message}),
        content_type="application/json",
        charset=charset,
        headers=headers or None,
    )


@dataclass(frozen=True)
class Bearer:
    """How a port checks `Authorization: Bearer <token>`. `check(token)` is who the token is
    (anything but None: a producer, True) or None; `admit(request, who)` keeps what the handlers
    need of it. A request without a good token is answered 401 `required` (or `invalid`, when
    given, if it sent a token that is not one: neither says which tokens exist), challenged with
    `Bearer realm="REALM"` and, with `say_invalid`, `error="invalid_token"` when it gave an
    Authorization header at all."""

    realm: str
    required: str
    check: Callable[[str], Any]
    say_invalid: bool = False
    admit: Callable[[web.Request, Any], None] | None = None
    invalid: str | None = None

    def refusal(self, given: str) -> str:
        return self.invalid if self.invalid is not None and given else self.required

    def challenge(self, given: str) -> str:
        return f'Bearer realm="{self.realm}"' + (', error="invalid_token"' if self.say_invalid and given else "")


@dataclass(frozen=True)
class BodyLimit:
    """At most `max_bytes` in a request's body (`setting`: where they are set)."""

    max_bytes: int
    setting: str

    @property
    def message(self) -> str:
        return f"the body is over {self.max_bytes} bytes ({self.setting})"


def guard(
    *,
    hosts: frozenset[str],
    bearer: Bearer,
    post_types: Collection[str],
    owner: str,
    log: logging.Logger,
    logged: Callable[[web.Request], str],
    routes: Callable[[str], bool] | None = None,
    open_paths: Collection[str] = ("/health",),
    body_limit: BodyLimit | None = None,
    aiohttp_errors_as_json: bool = False,
    charset: str | None = None,
) -> Any:
    """aiohttp middleware: Host check, route allow-list, bearer token, content type and body
    size, clean errors (the module's docstring). `owner`: whose log a 500 points to ("the
    worker"); `logged(request)`: how a failed request is named in that log; `routes`: the paths
    that exist (None: the app's router alone says); `aiohttp_errors_as_json`: aiohttp's own
    errors (404 no route, 405 with its Allow header) answered as JSON, else passed on as they
    are; `charset`: of the errors' Content-Type."""
    send_types = f"send Content-Type: {', '.join(sorted(post_types))}"

    def error(status: int, message: str, **headers: str) -> web.Response:
        return json_error(status, message, charset=charset, **headers)

    def refusal(request: web.Request) -> web.Response | None:
        if host_name(request.host or "").lower() not in hosts:
            return error(421, "unknown Host header")
        if routes is not None and not routes(request.path):
            return error(404, "no such endpoint")
        if request.path in open_paths and request.method in ("GET", "HEAD"):
            return None
        given = request.headers.get("Authorization", "")
        who = bearer.check(given[7:].strip()) if given.startswith("Bearer ") else None
        if who is None:
            return error(401, bearer.refusal(given), **{"WWW-Authenticate": bearer.challenge(given)})
        if bearer.admit is not None:
            bearer.admit(request, who)
        if request.method == "POST":
            if request.content_type not in post_types:
                return error(415, send_types)
            if (
                body_limit is not None
                and request.content_length is not None
                and request.content_length > body_limit.max_bytes
            ):
                return error(413, body_limit.message)
        return None

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        refused = refusal(request)
        if refused is not None:
            return refused  # a body it carries is not read: aiohttp discards it (for at most 10 s)
        try:
            return await handler(request)
        except Refused as exc:
            response = error(exc.status, str(exc))
            if exc.close:
                response.force_close()
            return response
        except web.HTTPException as exc:
            if body_limit is not None and isinstance(exc, web.HTTPRequestEntityTooLarge):
                return error(413, body_limit.message)  # no Content-Length: refused once the limit is read
            if not aiohttp_errors_as_json:
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return error(exc.status, exc.reason, **allow)
        except Exception:
            log.exception("%s failed", logged(request))
            return error(500, f"internal error (see {owner}'s log)")

    return middleware
