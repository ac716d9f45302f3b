"""The Faust app and which roles this process runs: rate (streams/rating/), sink
(streams/sink/), alerts (streams/alerts/); web endpoints in streams/web.py.

    billing_events --rate_events--> state table (per-partition dedup entries; changelog topic)
                               \\-> billing_events_dlq (rejections)
                                \\-> meterstream_sink (ledger rows, rejections)
                                      |--SinkConsumer--> ClickHouse (ledger, rollups, rejected_events, alerts)
                                      \\--AlertsConsumer--> alert log --> spend_alerts, webhooks
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import faust

import streams.aiokafka_records  # noqa: F401 - every aiokafka consumer here reads any header key
from streams import health as health_
from streams.alerts.role import AlertsConsumer
from streams.kafka_security import kafka_security
from streams.rating.agent import RatingRole, store_url
from streams.services import ensure_topics
from streams.settings import Settings, private_dir
from streams.sink.consumer import SinkConsumer
from streams.storage import open_store
from streams.web import install as install_web

log = logging.getLogger("meterstream.worker")
ROLES = ("all", "rate", "sink", "alerts")


def create_app(settings: Settings, role: str = "all") -> faust.App:
    """The worker of one role: `rate` (the rating agent, its state table), `sink` (ledger,
    windows and the alerts table into ClickHouse; it holds the store and serves analysts'
    reads), `alerts` (budgets and alert delivery), or `all` (the three in one process)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    # the sink and alerts roles join no rating consumer group: Faust app ids of their own
    app_id = settings.app_id if role in ("all", "rate") else f"{settings.app_id}-{role}-role"
    private_dir(settings.data_dir)
    datadir = settings.data_dir / "faust" / f"{app_id}-{settings.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    security = kafka_security(settings)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=store_url(settings),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        table_standby_replicas=0,
        processing_guarantee="at_least_once",  # exactness comes from the design, not from EOS
        producer_acks=-1,
        broker_commit_every=10_000,
        broker_max_poll_records=5000,
        consumer_max_fetch_size=16 * 1024 * 1024,
        stream_buffer_maxsize=2 * settings.agent_batch,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s, not 60
        broker_heartbeat_interval=3.0,
        web_enabled=True,
        web_bind=settings.web_bind,
        web_host=settings.web_bind if settings.web_bind not in ("0.0.0.0", "::") else "127.0.0.1",
        web_port=settings.web_port,
        web_router_enabled=False,  # Faust's own pages would expose the dedup state
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_in_thread=False,
        datadir=str(datadir),
        **security.faust(),
    )
    app.meterstream_stats = defaultdict(int)  # type: ignore[attr-defined]
    stats = app.meterstream_stats  # type: ignore[attr-defined]
    rating = RatingRole(app, settings, stats) if role in ("all", "rate") else None
    sink = add_sink(app, settings, security) if role in ("all", "sink") else None
    alerts = add_alerts(app, settings, security, sink) if role in ("all", "alerts") else None
    health = add_health(app, settings, security, rating, sink, alerts)
    install_web(app, settings, stats, store=sink, statuses=(rating, sink, alerts), faults=sink, health=health)
    add_log_lines(app, settings, role, stats, rating)
    return app


def add_log_lines(app: faust.App, settings: Settings, role: str, stats: dict[str, int], rating: Any) -> None:
    """One start-up line naming what this process is, and a progress line a minute (streams/logs.py)."""
    catalog = rating.rater.versions.base.content_hash if rating is not None else "-"
    webhooks = ", ".join(t.label for t in settings.webhook_targets) or "none"
    store = "ClickHouse server" if settings.clickhouse_url else f"chDB at {settings.chdb_path}"

    @app.task
    async def _started() -> None:
        log.info(
            "meterstream worker, roles %s: web %s:%d, Kafka %s (topic %s), %s, catalog %s, webhooks %s",
            role,
            settings.web_bind,
            settings.web_port,
            settings.bootstrap,
            settings.events_topic,
            store,
            catalog,
            webhooks,
        )

    last: dict[str, int] = {}

    @app.timer(interval=60.0)
    async def _progress() -> None:
        now = {k: stats.get(k, 0) for k in ("counted", "rejected", "duplicates", "forwarded")}
        d = {k: v - last.get(k, 0) for k, v in now.items()}
        last.update(now)
        log.info(
            "progress, last minute: %d counted (%.0f/s), %d rejected, %d duplicates, %d forwarded; since start: "
            "%d counted, %d rejected",
            d["counted"],
            d["counted"] / 60,
            d["rejected"],
            d["duplicates"],
            d["forwarded"],
            now["counted"],
            now["rejected"],
        )


def add_health(
    app: faust.App, settings: Settings, security: Any, rating: Any, sink: Any, alerts: Any
) -> health_.Health:
    """The probe of Kafka and of the roles behind /ready, /status's roles and the lag gauge."""
    roles: dict[str, tuple[health_.Group, health_.Role]] = {}
    for name, group, role_ in (
        ("rating", health_.rating_group(settings), rating),
        ("sink", health_.sink_group(settings), sink),
        ("alerts", health_.alerts_group(settings), alerts),
    ):
        if role_ is not None:
            roles[name] = (group, role_)
    health = health_.Health(settings.bootstrap, security, roles)

    @app.task
    async def probe_health() -> None:
        await health.run()

    return health


def add_sink(app: faust.App, settings: Settings, security: Any) -> SinkConsumer:
    """The sink consumer as a task of this app; it holds the store."""
    sink = SinkConsumer(
        settings.bootstrap,
        settings.sink_topic,
        f"{settings.app_id}-sink",
        lambda: open_store(settings),
        max_records=settings.sink_batch,
        alert_log_topic=settings.alert_log_topic,
        rollup_keep_ms=settings.allowed_lateness_hours * 3_600_000,
        security=security,
        one_owner=settings.clickhouse_url is None,
        stall_s=settings.ready_sink_stall_s,
        label_keys=settings.label_keys,
    )
    app.meterstream_sink = sink  # type: ignore[attr-defined]

    @app.task
    async def run_sink() -> None:
        await asyncio.to_thread(
            ensure_topics, settings, [settings.alert_log_topic]
        )  # deployments set up before it lack it
        await sink.run()

    return sink


def add_alerts(app: faust.App, settings: Settings, security: Any, sink: SinkConsumer | None) -> AlertsConsumer:
    """The alerts consumer as a task of this app. Its spend lookups run on the sink's store when
    the sink is in this process, on a ClickHouse server directly, else through the sink's web
    port (MS_WORKER_URL): it never opens the embedded engine itself."""
    from streams.alerts import spend

    if sink is not None:
        run_read = spend.on_store(sink.query)
    elif settings.clickhouse_url is not None:
        store_holder: list[Any] = []

        async def server_query(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            if not store_holder:
                store_holder.append(await asyncio.to_thread(open_store, settings))
            return await asyncio.to_thread(store_holder[0].query, sql, params)

        run_read = spend.on_store(server_query)
    else:
        from streams.analyst.reader import Reader

        run_read = spend.via_worker(Reader(settings, remote=True))
    alerts = AlertsConsumer(
        settings.bootstrap,
        settings.sink_topic,
        f"{settings.app_id}-alerts",
        f"{settings.app_id}-sink",
        budgets_topic=settings.budgets_topic,
        alerts_topic=settings.alerts_topic,
        alert_log_topic=settings.alert_log_topic,
        run_read=run_read,
        webhooks=settings.webhook_targets,
        webhook_secret=settings.alert_webhook_secret,
        webhook_attempts=settings.alert_webhook_attempts,
        webhook_timeout_s=settings.alert_webhook_timeout_s,
        webhook_retry_s=settings.alert_webhook_retry_s,
        max_records=settings.sink_batch,
        security=security,
        fault_exit_after_alert_outbox=settings.fault_exit_after_alert_outbox,
    )
    app.meterstream_alerts = alerts  # type: ignore[attr-defined]

    @app.task
    async def run_alerts() -> None:
        await asyncio.to_thread(ensure_topics, settings, [settings.alert_log_topic])
        await alerts.run()

    return alerts
