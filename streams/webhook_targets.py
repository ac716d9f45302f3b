"""Which alert webhook URLs meterstream accepts (MS_ALERT_WEBHOOKS), and how a URL is named
where it may be seen. The settings check them at startup (streams/settings.py); the alerts role
delivers to them (streams/alerts/delivery.py, signing in streams/alerts/webhooks.py).

A webhook URL often carries its credential in its path (Slack's incoming webhooks do), so it is a
secret: it is kept in a ``SecretStr`` and never stored, printed or logged. Wherever a webhook has
to be named (``alerts.webhook_status``, ``meterstream alerts``, log lines) it is named by its
``label``: host (and port, if given) plus the first 8 hex digits of the SHA-256 of the full URL,
e.g. ``hooks.slack.com#3f2a9c1b``."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from schemas.errors import ConfigurationError

LOOPBACK_NAMES = {"localhost"}


class WebhookConfigError(ConfigurationError):
    """A webhook setting meterstream refuses. Its message names webhooks by label only.

    Deliberately not a ValueError: pydantic would wrap a ValueError raised in a validator and
    print the input (the secret URLs) beside it."""


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
                "(127.0.0.0/8, ::1, localhost); use https://"
            )
        return cls(SecretStr(url), label)


def parse_webhooks(value: str | SecretStr | None, setting: str = "MS_ALERT_WEBHOOKS") -> list[WebhookTarget]:
    """The comma-separated URLs of a setting, each checked (WebhookConfigError if refused)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    return [WebhookTarget.parse(u, f"{setting} entry {i}") for i, u in enumerate(urls, 1)]
