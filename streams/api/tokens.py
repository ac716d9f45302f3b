"""The usage API's read tokens: the ingest's tokens file form and functions
(streams/ingest/tokens.py), with the API's command names, each token limited to tenants."""

from __future__ import annotations

from pathlib import Path

from streams.ingest.tokens import Kind, TokenFileError, entries

API = Kind(command="meterstream api token", holder="token", log="meterstream.api")


def check_scoped(path: Path) -> None:
    """Refuse (TokenFileError) a tokens file that cannot be used or has a line naming no tenants."""
    unscoped = sorted({e.name for e in entries(path, API) if not e.tenants})
    if unscoped:
        raise TokenFileError(
            f"{path}: the tokens of {', '.join(unscoped)} name no tenants (tenants=T1,T2): an API token reads only "
            "its tenants' usage; revoke them (meterstream api token revoke NAME) and add them with --tenant"
        )
