"""`meterstream ingest`: the HTTP ingest (streams/ingest/), and its producers' tokens."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import click

from schemas.errors import Unavailable
from streams.settings import Settings


def _default(name: str) -> str:
    """A setting's default as the help says it (Settings holds it)."""
    value = Settings.model_fields[name].default
    return f"{value // 2**20} MiB" if isinstance(value, int) and value >= 2**20 and value % 2**20 == 0 else str(value)


TOKENS_FILE = click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The producers' token hashes (MS_INGEST_TOKENS_FILE; default $MS_DATA_DIR/ingest-tokens).",
)


@click.group("ingest", invoke_without_command=True)
@click.option("--bind", default=None, help=f"Address to listen on (MS_INGEST_BIND; default {_default('ingest_bind')}).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Port (MS_INGEST_PORT; default {_default('ingest_port')}).",
)
@TOKENS_FILE
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=None,
    help=f"The largest request body (MS_INGEST_MAX_BYTES; default {_default('ingest_max_bytes')}).",
)
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
def ingest_group(
    ctx: click.Context,
    bind: str | None,
    port: int | None,
    tokens_file: Path | None,
    max_bytes: int | None,
    loglevel: str,
) -> None:
    """Run the HTTP ingest: billing events (POST /v1/events) and provider payloads (POST
    /v1/usage/FORMAT) into Kafka, each validated first, answered 202 only once Kafka acknowledged
    them. Every request but GET /health needs a producer's token (`ingest token add NAME`)."""
    if ctx.invoked_subcommand is not None:
        return
    from streams.ingest import tokens
    from streams.ingest.server import serve

    given = {"ingest_bind": bind, "ingest_port": port, "ingest_tokens_file": tokens_file, "ingest_max_bytes": max_bytes}
    settings = ctx.obj.model_copy(update={k: v for k, v in given.items() if v is not None})
    accepted = tokens.load(settings.ingest_tokens)
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(max(logging.getLogger().level, logging.WARNING))  # its INFO: every connection
    try:
        serve(settings, tokens.TokensFile(settings.ingest_tokens, accepted))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise Unavailable(
            f"{settings.ingest_bind}:{settings.ingest_port} is in use: stop what listens there, or give the ingest "
            "another port (--port or MS_INGEST_PORT)"
        ) from None


@ingest_group.group("token")
def token_group() -> None:
    """Producers' tokens of the HTTP ingest (only their SHA-256 is stored)."""


@token_group.command("add")
@click.argument("name")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Limit the token to this tenant's events (repeatable); without it, any tenant's.",
)
@TOKENS_FILE
@click.pass_obj
def token_add(settings: Settings, name: str, tenants: tuple[str, ...], tokens_file: Path | None) -> None:
    """Make a token for producer NAME, append its SHA-256 to the tokens file (mode 0600) and print
    the token, once: keep it now. A running ingest takes it within a second."""
    from streams.ingest import tokens

    path = tokens_file or settings.ingest_tokens
    token = tokens.add(path, name, list(tenants) or None)
    click.echo(token)
    click.echo(f"added a token for {name} to {path} (its SHA-256 only); it is not shown again", err=True)


@token_group.command("list")
@TOKENS_FILE
@click.pass_obj
def token_list(settings: Settings, tokens_file: Path | None) -> None:
    """The producers that have tokens: name, the tenants a token is limited to, and the first 8
    hex digits of its SHA-256 (never the token)."""
    from streams.ingest import tokens

    for e in tokens.entries(tokens_file or settings.ingest_tokens):
        scope = ",".join(sorted(e.tenants)) if e.tenants is not None else "any tenant"
        click.echo(f"{e.name}\t{scope}\t{e.fingerprint}")


@token_group.command("revoke")
@click.argument("name")
@click.option("--hash", "fingerprint", default=None, help="Only the token whose hash starts so (from `token list`).")
@TOKENS_FILE
@click.pass_obj
def token_revoke(settings: Settings, name: str, fingerprint: str | None, tokens_file: Path | None) -> None:
    """Remove producer NAME's tokens from the tokens file (or only one, with --hash). A running
    ingest refuses them within a second."""
    from streams.ingest import tokens

    path = tokens_file or settings.ingest_tokens
    n = tokens.revoke(path, name, fingerprint)
    click.echo(f"revoked {n} token{'s' if n != 1 else ''} of {name} in {path}", err=True)
