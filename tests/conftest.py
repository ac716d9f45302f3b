"""Session-scoped real services for the integration tests.

Kafka: MS_TEST_KAFKA_BOOTSTRAP if set; else a testcontainers Kafka when a Docker engine
answers; else the project's own broker (ops/kafka/kafka.sh) in a temporary data directory on a
free port. ClickHouse: MS_TEST_CLICKHOUSE_URL (a server) if set; else a testcontainers
ClickHouse when Docker answers; else the embedded engine (chDB) in a temporary directory.
Each test gets its own ClickHouse database, so tests never see each other's rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.harness.stack import free_port
from streams.settings import REPO_ROOT, Settings


def docker_answers() -> bool:
    if os.environ.get("MS_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@dataclass
class KafkaService:
    bootstrap: str
    kind: str


@dataclass
class ClickHouseService:
    kind: str  # "chdb" or "server"
    url: str | None
    data_dir: Path

    def settings(self, database: str, **extra: object) -> Settings:
        kw: dict[str, object] = {"data_dir": self.data_dir, "clickhouse_database": database}
        if self.url:
            kw["clickhouse_url"] = self.url
        kw.update(extra)
        return Settings(**kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    external = os.environ.get("MS_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield KafkaService(external, "external")
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kc:
            yield KafkaService(kc.get_bootstrap_server(), "testcontainers")
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ms-test-kafka-"))
    port = free_port()
    env = dict(
        os.environ, MS_DATA_DIR=str(data_dir), MS_KAFKA_PORT=str(port), MS_KAFKA_CONTROLLER_PORT=str(free_port())
    )
    script = REPO_ROOT / "ops" / "kafka" / "kafka.sh"
    env.setdefault("MS_PYTHON", __import__("sys").executable)
    subprocess.run(["bash", str(script), "start"], env=env, check=True)
    try:
        yield KafkaService(f"127.0.0.1:{port}", "local")
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def clickhouse_service() -> Iterator[ClickHouseService]:
    data_dir = Path(tempfile.mkdtemp(prefix="ms-test-ch-"))
    url = os.environ.get("MS_TEST_CLICKHOUSE_URL")
    try:
        if url:
            yield ClickHouseService("server", url, data_dir)
        elif docker_answers():
            from testcontainers.clickhouse import ClickHouseContainer

            with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as ch:
                host, port = ch.get_container_host_ip(), ch.get_exposed_port(8123)
                yield ClickHouseService("server", f"http://{ch.username}:{ch.password}@{host}:{port}", data_dir)
        else:
            yield ClickHouseService("chdb", None, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def ch_settings(clickhouse_service: ClickHouseService, kafka_service: KafkaService) -> Settings:
    """Settings naming both real services and a fresh database for this test."""
    db = "t_" + uuid.uuid4().hex[:12]
    return clickhouse_service.settings(db, kafka_bootstrap=kafka_service.bootstrap)


@pytest.fixture
def store(ch_settings: Settings):
    from streams.storage import open_store

    with open_store(ch_settings) as s:
        yield s


@pytest.fixture
def topic(kafka_service: KafkaService) -> str:
    """A fresh topic with 3 partitions."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = "t-" + uuid.uuid4().hex[:10]
    admin = KafkaAdminClient(bootstrap_servers=kafka_service.bootstrap)
    admin.create_topics([NewTopic(name, 3, 1)])
    admin.close()
    return name


@pytest.fixture
def stack(kafka_service, clickhouse_service, tmp_path):
    """A whole stack (streams/harness/stack.py) on the session's broker and engine, stopped after the test."""
    from streams.harness.stack import Stack

    s = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    yield s
    s.stop()
