"""Secrets the workers and the CLI on one machine share: the bearer token of the workers' web
endpoints, and the key catalog records are signed with.

Each is its setting when set (`MS_WEB_TOKEN`, `MS_CATALOG_KEY`); otherwise a random secret the
first worker writes into `$MS_DATA_DIR/<name>` (mode 0600), which the CLI on the same machine
and account reads. Workers on several machines need the setting, the same on each."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from pydantic import SecretStr

from streams.settings import Settings, private_dir


class TokenMissing(RuntimeError):
    pass


WEB_TOKEN = ("web-token", "web_token", "web token", "MS_WEB_TOKEN")
CATALOG_KEY = ("catalog-key", "catalog_key", "catalog key", "MS_CATALOG_KEY")


def token_path(settings: Settings, which: tuple[str, str, str, str] = WEB_TOKEN) -> Path:
    return settings.data_dir / which[0]


def ensure_token(settings: Settings, which: tuple[str, str, str, str] = WEB_TOKEN) -> SecretStr:
    """The secret: the configured one, or the one in the data directory (made if absent)."""
    configured = getattr(settings, which[1])
    if configured is not None:
        return configured
    path = token_path(settings, which)
    if not path.exists():
        private_dir(path.parent)
        # written whole under a temporary name, then linked into place: a worker starting at the
        # same moment sees no file or the whole secret, never a part of it
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: theirs is the one
        finally:
            os.unlink(tmp)
    return read_token(settings, which)


def read_token(settings: Settings, which: tuple[str, str, str, str] = WEB_TOKEN) -> SecretStr:
    _, attr, what, env = which
    configured = getattr(settings, attr)
    if configured is not None:
        return configured
    path = token_path(settings, which)
    try:
        if path.stat().st_mode & 0o077:
            raise TokenMissing(f"{path} is readable by others: chmod 600 it (or set {env})")
        token = path.read_text().strip()
    except FileNotFoundError:
        raise TokenMissing(f"no {what}: set {env}, or run where a worker wrote {path}") from None
    if len(token) < 16:
        raise TokenMissing(f"the {what} in {path} is too short (at least 16 characters)")
    return SecretStr(token)
