"""The bearer token of the workers' web endpoints.

`MS_WEB_TOKEN` when set; otherwise a random token the first worker writes into
`$MS_DATA_DIR/web-token` (mode 0600), which the CLI on the same machine and account reads."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from streams.settings import Settings


class TokenMissing(RuntimeError):
    pass


def token_path(settings: Settings) -> Path:
    return settings.data_dir / "web-token"


def ensure_token(settings: Settings) -> SecretStr:
    """The worker's token: the configured one, or the one in the data directory (made if absent)."""
    if settings.web_token is not None:
        return settings.web_token
    path = token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return read_token(settings)


def read_token(settings: Settings) -> SecretStr:
    if settings.web_token is not None:
        return settings.web_token
    path = token_path(settings)
    try:
        if path.stat().st_mode & 0o077:
            raise TokenMissing(f"{path} is readable by others: chmod 600 it (or set MS_WEB_TOKEN)")
        token = path.read_text().strip()
    except FileNotFoundError:
        raise TokenMissing(f"no web token: set MS_WEB_TOKEN, or run where a worker wrote {path}") from None
    if len(token) < 16:
        raise TokenMissing(f"the web token in {path} is too short (at least 16 characters)")
    return SecretStr(token)
