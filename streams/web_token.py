"""Secrets the workers and the CLI on one machine share: the bearer token of the workers' web
endpoints, the key catalog records are signed with, and the key of adjustment records
(schemas/adjustment.py).

Each is its setting when set (`MS_WEB_TOKEN`, `MS_CATALOG_KEY`, `MS_ADJUST_KEY`); otherwise a random secret the
first worker writes into `$MS_DATA_DIR/<name>` (mode 0600), which the CLI on the same machine
and account reads. Workers on several machines need the setting, the same on each."""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from schemas.errors import ConfigurationError
from streams.settings import Settings, private_dir


class TokenMissing(ConfigurationError):
    pass


@dataclass(frozen=True)
class SharedSecret:
    """One of the secrets: its file in the data directory, the Settings field that sets it
    instead (its environment variable: MS_ and the field's name), and what messages call it."""

    file: str
    setting: str
    what: str

    @property
    def env(self) -> str:
        return "MS_" + self.setting.upper()


WEB_TOKEN = SharedSecret(file="web-token", setting="web_token", what="web token")
CATALOG_KEY = SharedSecret(file="catalog-key", setting="catalog_key", what="catalog key")
ADJUST_KEY = SharedSecret(file="adjust-key", setting="adjust_key", what="adjustment key")


def token_path(settings: Settings, which: SharedSecret = WEB_TOKEN) -> Path:
    return settings.data_dir / which.file


def ensure_token(settings: Settings, which: SharedSecret = WEB_TOKEN) -> SecretStr:
    """The secret: the configured one, or the one in the data directory (made if absent)."""
    configured = getattr(settings, which.setting)
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


def read_token(settings: Settings, which: SharedSecret = WEB_TOKEN) -> SecretStr:
    what, env = which.what, which.env
    configured = getattr(settings, which.setting)
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
