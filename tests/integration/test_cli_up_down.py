"""`meterstream up` then `down` on a second, separate stack: no process is left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration


def kafka_pids(data_dir: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"{data_dir}/kafka/server.properties"], capture_output=True, text=True)
    return out.stdout.split()


def test_up_then_down_leaves_nothing_running(tmp_path, kafka_service):
    (tmp_path / "stack2").mkdir(mode=0o755)
    (tmp_path / "stack2").chmod(0o755)  # as a user's umask would leave it
    data_dir = str(tmp_path / "stack2")
    env = dict(
        os.environ, MS_DATA_DIR=data_dir, MS_KAFKA_PORT=str(free_port()), MS_KAFKA_CONTROLLER_PORT=str(free_port())
    )
    env.pop("MS_KAFKA_BOOTSTRAP", None)
    env.pop("MS_CLICKHOUSE_URL", None)
    cli = [sys.executable, "-m", "streams.cli"]
    up = subprocess.run(cli + ["up"], env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    assert "0001_ledger.sql" in up.stderr
    assert len(kafka_pids(data_dir)) == 1
    for d in ("", "kafka"):  # the broker's segments and the engine's files: this user's only
        assert os.stat(os.path.join(data_dir, d)).st_mode & 0o777 == 0o700, d
    status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True)
    assert "(running)" in status.stdout
    down = subprocess.run(cli + ["down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert kafka_pids(data_dir) == []
    # the stack under test (the session's broker) is still up: stacks do not collide
    from kafka import KafkaAdminClient

    KafkaAdminClient(bootstrap_servers=kafka_service.bootstrap).close()
