"""Alert webhooks: which URLs are allowed, how a URL is named where it may be seen, and how each
body is signed (and verified, by receivers and tests).

A webhook URL often carries its credential in its path (Slack's incoming webhooks do), so it is a
secret: it is kept in a ``SecretStr`` and never stored, printed or logged. Wherever a webhook has
to be named (``alerts.webhook_status``, ``meterstream alerts``, log lines) it is named by its
``label``: host (and port, if given) plus the first 8 hex digits of the SHA-256 of the full URL,
e.g. ``hooks.slack.com#3f2a9c1b``.

Signature scheme (as Stripe and Lago sign theirs). Each POST carries::

    Meterstream-Timestamp: <unix seconds>
    Meterstream-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    Idempotency-Key: <the alert's idempotency key: budget|period|threshold>

where ``body`` is the exact bytes of the request body. Receivers recompute the HMAC with the
shared secret (``MS_ALERT_WEBHOOK_SECRET``), compare in constant time, and reject timestamps more
than 5 minutes away from their clock (a replayed request). :func:`verify_signature` does all of
that. The header may hold several comma-separated ``v1=`` values (e.g. while rotating secrets);
one match is enough."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

TIMESTAMP_HEADER = "Meterstream-Timestamp"
SIGNATURE_HEADER = "Meterstream-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_S = 300
LOOPBACK_NAMES = {"localhost"}


class WebhookConfigError(Exception):
    """A webhook setting meterstream refuses. Its message names webhooks by label only.

    Deliberately not a ValueError: pydantic would wrap a ValueError raised in a validator and
    print the input (the secret URLs) beside it."""


def _bytes(value: str | bytes | SecretStr) -> bytes:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.encode() if isinstance(value, str) else bytes(value)


def url_label(url: str) -> str:
    """``host[:port]#<first 8 hex of sha256(url)>``: names a webhook without revealing it."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed port
        host, port = parts.hostname, None
    name = host or "?"
    if ":" in name:
        name = f"[{name}]"
    if port:
        name = f"{name}:{port}"
    return f"{name}#{digest}"


def is_loopback_host(host: str) -> bool:
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


@dataclass(frozen=True)
class WebhookTarget:
    """One webhook: its URL (a secret) and the label that names it everywhere else."""

    url: SecretStr
    label: str

    @classmethod
    def parse(cls, url: str, where: str = "a webhook URL") -> WebhookTarget:
        """Check one URL: ``https://``, or ``http://`` to a loopback host only (for tests)."""
        label = url_label(url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            host, _ = parts.hostname, parts.port
        except ValueError:
            raise WebhookConfigError(f"{where} ({label}) has an invalid port") from None
        if scheme not in ("http", "https") or not host:
            raise WebhookConfigError(f"{where} ({label}) is not an https:// URL")
        if scheme == "http" and not is_loopback_host(host):
            raise WebhookConfigError(
                f"{where} ({label}) uses plain http://, allowed only to a loopback host "
                "(127.0.0.0/8, ::1, localhost); use https://")
        return cls(SecretStr(url), label)


def parse_webhooks(value: str | SecretStr | None, setting: str = "MS_ALERT_WEBHOOKS") -> list[WebhookTarget]:
    """The comma-separated URLs of a setting, each checked (WebhookConfigError if refused)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    return [WebhookTarget.parse(u, f"{setting} entry {i}") for i, u in enumerate(urls, 1)]


def sign(secret: str | bytes | SecretStr, timestamp: int | str, body: str | bytes) -> str:
    """The ``Meterstream-Signature`` value: ``v1=`` + hex HMAC-SHA256(secret, "{timestamp}.{body}")."""
    mac = hmac.new(_bytes(secret), f"{timestamp}.".encode() + _bytes(body), hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str | bytes | SecretStr, body: bytes, idempotency_key: str,
                   now: float | None = None) -> dict[str, str]:
    """The headers of one delivery attempt (signed afresh at each attempt)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body), IDEMPOTENCY_HEADER: idempotency_key}


def verify_signature(secret: str | bytes | SecretStr, timestamp: str | int | None, body: str | bytes,
                     header: str | None, tolerance_s: float | None = DEFAULT_TOLERANCE_S, *,
                     now: float | None = None) -> bool:
    """True if ``header`` (the Meterstream-Signature value) signs ``timestamp`` and ``body``
    with ``secret``, and the timestamp is within ``tolerance_s`` of now (None: no time check).

    ``body`` must be the raw request body, byte for byte (not a re-serialised parse of it)."""
    if timestamp is None or not header:
        return False
    ts = str(timestamp).strip()
    if not ts.isascii() or not ts.isdigit():
        return False
    if tolerance_s is not None and abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    found = False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("v1=") and hmac.compare_digest(candidate.encode(), expected.encode()):
            found = True
    return found
