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
