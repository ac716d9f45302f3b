"""Starting and stopping the local stack: the Kafka broker of ops/kafka/kafka.sh, topics,
and ClickHouse migrations."""

from __future__ import annotations

import logging
import subprocess

from schemas.errors import Unavailable
from streams.kafka_security import kafka_security
from streams.settings import Settings
from streams.storage import StoreError, open_store
from streams.storage.access import apply_analyst_access
from streams.storage.migrations import Migration, migrate

log = logging.getLogger("meterstream.migrate")


class ServiceError(Unavailable):
    pass


def _kafka_script(settings: Settings, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(settings.kafka_script), action],
        env=settings.service_env(),
        text=True,
        capture_output=action == "status",
        check=False,
    )


def kafka_up(settings: Settings) -> bool:
    """Start the local broker unless an external one is configured. True if one is local."""
    if not settings.local_kafka:
        return False
    if _kafka_script(settings, "start").returncode != 0:
        raise ServiceError(f"the local Kafka broker did not start; see {settings.data_dir}/kafka/logs/server.log")
    return True


def kafka_down(settings: Settings) -> None:
    if settings.local_kafka and _kafka_script(settings, "stop").returncode != 0:
        raise ServiceError("stopping the local Kafka broker failed")


def kafka_running(settings: Settings) -> bool:
    return settings.local_kafka and _kafka_script(settings, "status").returncode == 0


def kafka_reachable(settings: Settings) -> None:
    """Raise kafka-python's error (said in one line by the command line) unless a broker of
    MS_KAFKA_BOOTSTRAP answers within the bootstrap timeout (streams/kafka_security.py)."""
    from kafka.admin import KafkaAdminClient

    KafkaAdminClient(
        bootstrap_servers=settings.bootstrap, client_id="meterstream-probe", **kafka_security(settings).kafka_python()
    ).close()


class EngineHeld(Unavailable):
    """The embedded engine is held by a worker (one process per data directory)."""


def apply_migrations(settings: Settings, notes: list[str] | None = None) -> list[Migration]:
    """Apply the migrations, then the analyst role and user (on a server; chDB skips them).
    What the access step did is logged and appended to ``notes`` (never a password). When a
    worker holds the embedded engine, its /status says which migrations it lacks: none is a
    note ("current"), some an EngineHeld error that says what to do."""
    try:
        store = open_store(settings)
    except StoreError as exc:
        if settings.clickhouse_url is not None or "holding it" not in str(exc):
            raise
        note = migrations_via_worker(settings, exc)
        log.info("%s", note)
        if notes is not None:
            notes.append(note)
        return []
    with store:
        applied = migrate(store, settings.migrations_dir)
        note = apply_analyst_access(
            store, settings.clickhouse_database, settings.clickhouse_analyst_user, settings.clickhouse_analyst_password
        )
    log.info("%s", note)
    if notes is not None:
        notes.append(note)
    return applied


def migrations_via_worker(settings: Settings, held: StoreError) -> str:
    """What the worker holding the embedded engine says of the migrations (its /status)."""
    from streams.health import worker_status
    from streams.web_token import TokenMissing, read_token

    try:
        token: str | None = read_token(settings).get_secret_value()
    except TokenMissing:
        token = None
    asked = []
    for url in [u.strip().rstrip("/") for u in settings.analyst_url.split(",") if u.strip()]:
        got = worker_status(url, token)
        if isinstance(got, str):
            asked.append(f"{url} {got}")
            continue
        if "migrations_pending" not in got:
            asked.append(f"{url} does not hold the engine")
            continue
        missing = got["migrations_pending"]
        if not missing:
            return f"the worker at {url} holds the embedded engine; its migrations are current"
        raise EngineHeld(
            f"the worker at {url} holds the embedded engine and lacks migrations {', '.join(missing)}: "
            "stop it, run `meterstream migrate`, start it again"
        )
    raise EngineHeld(f"{held} and no worker said which migrations it has ({'; '.join(asked) or 'none asked'})")


def ensure_topics(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Create the pipeline's topics with explicit partition counts (no auto-creation)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = names or [
        settings.events_topic,
        settings.dead_letter_topic,
        settings.sink_topic,
        settings.budgets_topic,
        settings.alerts_topic,
        settings.alert_log_topic,
        settings.catalog_status_topic,
    ]
    compacted = {
        settings.budgets_topic,
        settings.alerts_topic,
        settings.alert_log_topic,
        settings.catalog_status_topic,
    }  # keyed: the latest per key is what counts
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap, client_id="meterstream-admin", **kafka_security(settings).kafka_python()
    )
    try:
        existing = set(admin.list_topics())
        created = []
        for name in wanted:
            if name in existing:
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            1 if name in compacted else settings.topic_partitions,
                            settings.topic_replication,
                            topic_configs={"cleanup.policy": "compact"}
                            if name in compacted
                            else {"retention.ms": str(7 * 86400_000)},
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
