"""`meterstream api`: the usage API for products (streams/api/), and its read tokens."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import click

from schemas.errors import Unavailable
from streams.settings import Settings

TOKENS_FILE = click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The read tokens' hashes (MS_API_TOKENS_FILE; default $MS_DATA_DIR/api-tokens).",
)


@click.group("api", invoke_without_command=True)
@click.option("--bind", default=None, help="Address to listen on (MS_API_BIND; default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (MS_API_PORT; default 6071).")
@TOKENS_FILE
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
def api_group(ctx: click.Context, bind: str | None, port: int | None, tokens_file: Path | None, loglevel: str) -> None:
    """Run the usage API: GET /v1/usage, cost, tokens or events of a tenant, grouped by user,
    model or label, per window (OpenMeter's meter query; docs/usage-api.md). Every request but
    GET /health needs a read token, which reads only its tenants (`api token add NAME --tenant T`)."""
    if ctx.invoked_subcommand is not None:
        return
    from streams.api.server import serve
    from streams.api.tokens import API, check_scoped
    from streams.ingest import tokens

    given = {"api_bind": bind, "api_port": port, "api_tokens_file": tokens_file}
    settings = ctx.obj.model_copy(update={k: v for k, v in given.items() if v is not None})
    accepted = tokens.load(settings.api_tokens, API)
    check_scoped(settings.api_tokens)
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(settings, tokens.TokensFile(settings.api_tokens, accepted, API))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise Unavailable(
            f"{settings.api_bind}:{settings.api_port} is in use: stop what listens there, or give the API "
            "another port (--port or MS_API_PORT)"
        ) from None


@api_group.group("token")
def token_group() -> None:
    """Read tokens of the usage API, each limited to tenants (only their SHA-256 is stored)."""


@token_group.command("add")
@click.argument("name")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    required=True,
    help="A tenant whose usage the token reads (repeatable; at least one).",
)
@TOKENS_FILE
@click.pass_obj
def token_add(settings: Settings, name: str, tenants: tuple[str, ...], tokens_file: Path | None) -> None:
    """Make a read token NAME for the usage of the --tenant tenants, append its SHA-256 to the
    tokens file (mode 0600) and print the token, once: keep it now. A running API takes it within
    a second."""
    from streams.api.tokens import API
    from streams.ingest import tokens

    path = tokens_file or settings.api_tokens
    token = tokens.add(path, name, list(tenants), API)
    click.echo(token)
    click.echo(f"added a read token for {name} to {path} (its SHA-256 only); it is not shown again", err=True)


@token_group.command("list")
@TOKENS_FILE
@click.pass_obj
def token_list(settings: Settings, tokens_file: Path | None) -> None:
    """The read tokens: name, the tenants it reads, and the first 8 hex digits of its SHA-256
    (never the token)."""
    from streams.api.tokens import API
    from streams.ingest import tokens

    for e in tokens.entries(tokens_file or settings.api_tokens, API):
        scope = ",".join(sorted(e.tenants)) if e.tenants else "no tenant (refused: add it again with --tenant)"
        click.echo(f"{e.name}\t{scope}\t{e.fingerprint}")


@token_group.command("revoke")
@click.argument("name")
@click.option("--hash", "fingerprint", default=None, help="Only the token whose hash starts so (from `token list`).")
@TOKENS_FILE
@click.pass_obj
def token_revoke(settings: Settings, name: str, fingerprint: str | None, tokens_file: Path | None) -> None:
    """Remove read token NAME from the tokens file (or only one of its tokens, with --hash). A
    running API refuses it within a second."""
    from streams.api.tokens import API
    from streams.ingest import tokens

    path = tokens_file or settings.api_tokens
    n = tokens.revoke(path, name, fingerprint, API)
    click.echo(f"revoked {n} token{'s' if n != 1 else ''} of {name} in {path}", err=True)
