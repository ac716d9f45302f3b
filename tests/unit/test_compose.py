"""docker-compose.yml cannot run here (no Docker engine); check its wiring instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_services_and_volumes():
    services = COMPOSE["services"]
    assert {"kafka", "clickhouse", "worker"} <= set(services)
    for name in ("kafka", "clickhouse"):
        assert "healthcheck" in services[name]
    declared = set(COMPOSE["volumes"])
    for svc in services.values():
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in declared, vol
    deps = services["worker"]["depends_on"]
    assert deps == {"kafka": {"condition": "service_healthy"}, "clickhouse": {"condition": "service_healthy"}}


def test_worker_environment_is_what_the_code_reads():
    env = COMPOSE["services"]["worker"]["environment"]
    fields = set(Settings.model_fields)
    for key in env:
        assert key.startswith("MS_") and key[3:].lower() in fields, f"{key} is not a setting"
    host, port = env["MS_KAFKA_BOOTSTRAP"].split(":")
    kafka_env = COMPOSE["services"]["kafka"]["environment"]
    assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    ch_env = COMPOSE["services"]["clickhouse"]["environment"]
    assert env["MS_CLICKHOUSE_DATABASE"] == ch_env["CLICKHOUSE_DB"]
    assert f"//{ch_env['CLICKHOUSE_USER']}:" in env["MS_CLICKHOUSE_URL"]
    assert "@clickhouse:8123" in env["MS_CLICKHOUSE_URL"]
    assert "PASSWORD}" in env["MS_CLICKHOUSE_URL"]  # the secret comes from the environment


def test_worker_image_builds_from_the_repo():
    build = COMPOSE["services"]["worker"]["build"]
    assert (REPO_ROOT / build["dockerfile"]).is_file()
    assert Path(REPO_ROOT / build["context"]).resolve() == REPO_ROOT


def _published(port_spec: str) -> tuple[str | None, str, str]:
    """ "host_ip:host_port:container_port" (or shorter) as (host_ip, host_port, container_port)."""
    parts = str(port_spec).split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, parts[0], parts[0]


def test_every_published_port_binds_to_loopback():
    published = [(name, p) for name, svc in COMPOSE["services"].items() for p in svc.get("ports", [])]
    assert ("clickhouse", "127.0.0.1:8123:8123") in published
    for name, spec in published:
        assert not isinstance(spec, dict), f"{name}: use the short 'IP:host:container' form"
        host_ip, _, _ = _published(spec)
        assert host_ip == "127.0.0.1", f"{name} publishes {spec} on every interface of the host"


def test_analyst_user_password_comes_from_the_environment():
    env = COMPOSE["services"]["worker"]["environment"]
    assert env["MS_CLICKHOUSE_ANALYST_USER"] == "meterstream_analyst"
    assert env["MS_CLICKHOUSE_ANALYST_PASSWORD"].startswith("${CLICKHOUSE_ANALYST_PASSWORD")
    # the server lets the migrating user manage access (CREATE ROLE / USER)
    assert COMPOSE["services"]["clickhouse"]["environment"]["CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"] == "1"
    assert "MS_ALERT_WEBHOOKS" not in env or "MS_ALERT_WEBHOOK_SECRET" in env


def test_kafka_keeps_its_log_in_the_mounted_volume():
    """Without KAFKA_LOG_DIRS the image writes to its default directory, outside the volume: topics,
    offsets, budgets and dedup state would be lost on `docker compose down && up`."""
    kafka = COMPOSE["services"]["kafka"]
    mounts = {v.split(":", 1)[1] for v in kafka["volumes"]}
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in mounts
