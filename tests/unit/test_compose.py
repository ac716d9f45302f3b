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
            source = vol.split(":")[0]
            if source.startswith("./"):  # a file of this repository, mounted read-only
                assert (REPO_ROOT / source).exists() and vol.endswith(":ro"), vol
            else:
                assert source in declared, vol
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
    assert ("grafana", "127.0.0.1:3000:3000") in published
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


def test_grafana_has_no_default_password_and_reads_the_provisioned_files():
    """The admin password and the ClickHouse user's come from the environment, with no default
    (`${VAR:?…}`: compose refuses to start without them); the plugin is installed; the
    provisioning and dashboards are mounted read-only where the provisioning files expect them;
    every $VAR those files read is given to the service."""
    import re

    grafana = COMPOSE["services"]["grafana"]
    env = grafana["environment"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert env["GF_INSTALL_PLUGINS"].split()[0] == "grafana-clickhouse-datasource"
    for key in ("GF_SECURITY_ADMIN_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[key]), (
            f"{key} must come from the environment, with no default"
        )
    assert not any("PASSWORD" in k and ":-" in str(v) for k, v in env.items())
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./ops/grafana/provisioning"
    provider = yaml.safe_load((REPO_ROOT / "ops/grafana/provisioning/dashboards/meterstream.yml").read_text())
    assert mounts[provider["providers"][0]["options"]["path"]] == "./ops/grafana/dashboards"
    datasources = (REPO_ROOT / "ops/grafana/provisioning/datasources/meterstream.yml").read_text()
    values = "\n".join(line for line in datasources.splitlines() if not line.lstrip().startswith("#"))
    assert "$CLICKHOUSE_GRAFANA_PASSWORD" in values
    for var in set(re.findall(r"\$\{?([A-Z_]+)", values)):
        assert var in env, f"the datasource provisioning reads ${var}, which the grafana service does not set"
    # the ClickHouse user Grafana logs in as: its file mounted into the server, its password from there too
    ch = COMPOSE["services"]["clickhouse"]
    assert (
        "./ops/grafana/clickhouse/grafana-user.xml:/etc/clickhouse-server/users.d/grafana-user.xml:ro" in ch["volumes"]
    )
    assert ch["environment"]["CLICKHOUSE_GRAFANA_PASSWORD"] == env["CLICKHOUSE_GRAFANA_PASSWORD"]
    assert grafana["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
