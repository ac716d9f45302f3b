"""Alert webhooks: how each body is signed (and verified, by receivers and tests). Which URLs
are allowed and how a URL is named where it may be seen (its label, never the URL: a secret) is
streams/webhook_targets.py, which the settings check at startup; its names are re-exported here.

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
import time

from pydantic import SecretStr

from streams.webhook_targets import WebhookConfigError, WebhookTarget, parse_webhooks, url_label

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookConfigError",
    "WebhookTarget",
    "parse_webhooks",
    "sign",
    "signed_headers",
    "url_label",
    "verify_signature",
]

TIMESTAMP_HEADER = "Meterstream-Timestamp"
SIGNATURE_HEADER = "Meterstream-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_S = 300


def _bytes(value: str | bytes | SecretStr) -> bytes:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.encode() if isinstance(value, str) else bytes(value)


def sign(secret: str | bytes | SecretStr, timestamp: int | str, body: str | bytes) -> str:
    """The ``Meterstream-Signature`` value: ``v1=`` + hex HMAC-SHA256(secret, "{timestamp}.{body}")."""
    mac = hmac.new(_bytes(secret), f"{timestamp}.".encode() + _bytes(body), hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(
    secret: str | bytes | SecretStr, body: bytes, idempotency_key: str, now: float | None = None
) -> dict[str, str]:
    """The headers of one delivery attempt (signed afresh at each attempt)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body), IDEMPOTENCY_HEADER: idempotency_key}


def verify_signature(
    secret: str | bytes | SecretStr,
    timestamp: str | int | None,
    body: str | bytes,
    header: str | None,
    tolerance_s: float | None = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
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
