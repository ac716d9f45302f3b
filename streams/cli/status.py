"""`meterstream status`: what runs and how far behind it is.

It asks Kafka (each role's consumer group: committed offsets against the partitions' ends,
streams/health.py), each worker of MS_WORKER_URL (its /status, with the web token: ready or not
and why, the partitions each role holds, the last write, recoveries, the catalog version) and the
ingest (its liveness check). Every part that cannot be had is said as such; nothing here fails
the command but the settings."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import click

from streams import health
from streams.health import worker_status
from streams.kafka_security import kafka_security
from streams.settings import Settings


def ingest_answers(settings: Settings, timeout: float = 3.0) -> bool:
    host = "127.0.0.1" if settings.ingest_bind in ("0.0.0.0", "::") else settings.ingest_bind  # noqa: S104
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.ingest_port}/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def lag_lines(settings: Settings) -> list[str]:
    """Each role's lag, from Kafka."""
    groups = [health.rating_group(settings), health.sink_group(settings), health.alerts_group(settings)]
    try:
        lags = asyncio.run(health.lag_once(settings.bootstrap, kafka_security(settings), groups))
    except Exception as exc:  # noqa: BLE001 - said, not raised: the rest of the status still helps
        text = " ".join(str(exc).split()) or f"no answer within {health.PROBE_TIMEOUT_S:.0f} s"
        return [f"lag:        unknown (Kafka at {settings.bootstrap} cannot be reached: {text})"]
    rated, written = health.waiting(lags, settings)
    alerts = health.total(lags.get(health.alerts_group(settings).group_id, ()))
    return [
        f"lag:        {rated} events not yet rated, {written} sink records not yet written, "
        f"{alerts} not yet evaluated for alerts"
    ]


def role_lines(body: dict[str, Any]) -> list[str]:
    out = []
    for name, role in body.get("roles", {}).items():
        held = role.get("partitions")
        if held is None:
            where = "not joined yet"
        elif not held:
            where = "standing by (holds no partitions)"
        else:
            where = f"holds {len(held)} partition(s): {', '.join(held)}"
        line = f"  {name:<7} {where}; lag {role.get('lag_total', 0)}"
        if name == "sink" and body.get("last_write"):
            line += f"; last write {max(0.0, time.time() - float(body['last_write'])):.0f} s ago"
        out.append(line)
    catalog = body.get("catalog")
    if catalog:
        out.append(f"  catalog {catalog.get('own')}")
    recoveries = body.get("recoveries", {})
    if recoveries.get("count"):
        out.append(f"  recoveries {recoveries['count']} (last: {recoveries.get('last_reason', '?')})")
    return out


@click.command("status")
@click.pass_obj
def status_command(settings: Settings) -> None:
    """Say what is running, whether it is ready, and how far behind it is."""
    from streams import services
    from streams.web_token import TokenMissing, read_token

    click.echo(f"data dir:   {settings.data_dir}")
    if settings.local_kafka:
        state = "running" if services.kafka_running(settings) else "stopped"
        click.echo(f"kafka:      local broker {settings.bootstrap} ({state})")
    else:
        click.echo(f"kafka:      external {settings.bootstrap}")
    store = "server (MS_CLICKHOUSE_URL)" if settings.clickhouse_url else f"chDB at {settings.chdb_path}"
    click.echo(f"clickhouse: {store}")
    for line in lag_lines(settings):
        click.echo(line)
    try:
        token: str | None = read_token(settings).get_secret_value()
    except TokenMissing:
        token = None
    for url in [u.strip().rstrip("/") for u in settings.analyst_url.split(",") if u.strip()]:
        got = worker_status(url, token)
        if isinstance(got, str):
            click.echo(f"worker:     {url} {got}")
            continue
        problems = got.get("problems") or []
        state = "ready" if got.get("ready", True) and not problems else "NOT READY: " + "; ".join(problems)
        click.echo(f"worker:     {url} {state}")
        for line in role_lines(got):
            click.echo(line)
    where = f"{settings.ingest_bind}:{settings.ingest_port}"
    click.echo(f"ingest:     {where} " + ("answering" if ingest_answers(settings) else "not answering"))
