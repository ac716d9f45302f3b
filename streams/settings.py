"""Settings from environment variables, all prefixed ``MS_`` (documented in docs/operations.md, "Settings")."""

from __future__ import annotations

import os
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.webhook_targets import WebhookConfigError, WebhookTarget, parse_webhooks

REPO_ROOT = Path(__file__).resolve().parent.parent
# the ops/ files the package needs, as installed: links to ops/ in a checkout, files in a wheel
OPS_DATA = Path(__file__).parent / "ops-data"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "meterstream"


def private_dir(path: Path) -> Path:
    """`path`, made with its parents, closed to every user but this one (mode 0700, as
    PostgreSQL requires of its data directory): the data directory holds the broker's segments,
    the engine's files and the secrets."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


# A cluster name as ClickHouse takes it in SQL (streams/storage/cluster.py checks the same rule).
CLUSTER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")
LABEL_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")  # schemas/billing_event.py LabelKey
MAX_ROLLUP_LABELS = 4  # label keys the sink rolls up (each adds a rollup row per event and window)

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Every setting, grouped by the role that uses it. Its environment variable is MS_ and the
    field's name in capitals (MS_SINK_BATCH: sink_batch), and its one default is here: code takes
    it from a Settings object, by this name, and passes it on by the same name."""

    # hide_input_in_errors: a validation error never echoes a value (passwords, URLs with them)
    model_config = SettingsConfigDict(env_prefix="MS_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(default_factory=default_data_dir)  # state, secrets, the local broker's data
    log_format: Literal["text", "json"] = "text"  # a worker's log lines (streams/logs.py)

    # -- kafka: the broker, its clients' security, the topics, and the worker's group --------------
    # Unset bootstrap: the local broker of ops/kafka/kafka.sh on 127.0.0.1:kafka_port.
    kafka_bootstrap: str | None = None
    kafka_port: int = 9092
    kafka_controller_port: int | None = None
    # Kafka client security, for every client (streams/kafka_security.py builds their arguments).
    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = None  # unset: the system's CAs
    kafka_ssl_certfile: FilePath | None = None  # a client certificate (mTLS), PEM
    kafka_ssl_keyfile: FilePath | None = None  # its unencrypted private key, PEM (unset: in the certfile)
    kafka_sasl_ssl_port: int | None = None  # the local broker's SASL_SSL listener (ops/kafka/kafka.sh)
    events_topic: str = "billing_events"
    dead_letter_topic: str = "billing_events_dlq"
    sink_topic: str = "meterstream_sink"
    budgets_topic: str = "meterstream_budgets"
    alerts_topic: str = "spend_alerts"
    alert_log_topic: str = "meterstream_alert_log"  # the alerts role's outbox (streams/alerts/outbox.py)
    catalog_status_topic: str = "meterstream_catalog_status"  # each rater's catalog versions (compacted)
    topic_partitions: int = 4
    topic_replication: int = 1
    app_id: str = "meterstream"  # the Faust app id, and the prefix of every consumer group

    # -- clickhouse: unset URL: the embedded engine (chDB) in data_dir/chdb -----------------------
    clickhouse_url: SecretStr | None = None
    clickhouse_database: str = "meterstream"
    # A cluster of the server's remote_servers (a server only): migrations create replicated local
    # tables and Distributed ones over them, ON CLUSTER (streams/storage/cluster.py).
    clickhouse_cluster: str | None = None
    # A read-only analyst user on a ClickHouse server (created by `meterstream migrate` when the
    # password is set; the role meterstream_analyst is created on a server in any case).
    clickhouse_analyst_user: str = "meterstream_analyst"
    clickhouse_analyst_password: SecretStr | None = None

    # -- rating: catalogs, dedup, the rating state, the agent's takes -----------------------------
    # Pricing catalogs: a directory of catalog files; unset: the ones shipped in pricing/catalogs.
    catalog_dir: Path | None = None
    # The key catalog records are signed with (meterstream catalog publish; the raters check it).
    # Unset: one written to data_dir/catalog-key. A secret: never logged, printed or stored elsewhere.
    catalog_key: SecretStr | None = None
    adjust_key: SecretStr | None = (
        None  # seals adjustment records (schemas/adjustment.py); else $MS_DATA_DIR/adjust-key
    )
    catalog_status_interval_s: float = 30.0  # how often a rater reports its versions (and at every switch)
    allowed_lateness_hours: int = 48  # how late an event may come (the sink keeps its windows as long)
    dedup_retention_hours: int = 24
    # The rating state (dedup entries and their index): on disk in data_dir (RocksDB, memory
    # bounded by the cache and write buffers below, shared by its partitions) or in memory.
    state_store: Literal["rocksdb", "memory"] = "rocksdb"
    state_cache_mb: int = 128
    state_write_buffer_mb: int = 64
    agent_batch: int = 500  # input messages the rating agent takes at a time
    agent_batch_within_s: float = 0.25  # ... or what arrived within this time
    rate_slice_bytes: int = 4 * 1024 * 1024  # a take is rated and sent in slices of this much input

    # -- sink ---------------------------------------------------------------------------------------
    sink_batch: int = 64  # sink records (each up to 768 KiB of rows) written at a time

    # -- alerts: webhooks ---------------------------------------------------------------------------
    # Comma-separated webhook URLs (Slack-compatible incoming webhooks): secrets (a token in the
    # path), never stored, printed or logged; named by host and a short hash (streams/webhook_targets.py).
    alert_webhooks: SecretStr | None = None
    alert_webhook_secret: SecretStr | None = None  # HMAC-SHA256 key signing every webhook body
    alert_webhook_attempts: int = 5
    alert_webhook_timeout_s: float = 5.0
    alert_webhook_retry_s: float = Field(default=60.0, gt=0)  # failed deliveries are posted again this often
    # Fault injection, for tests only: the alerts role exits (137) right after writing an alert to
    # its outbox, before delivering it.
    fault_exit_after_alert_outbox: bool = False

    # Label keys whose values the sink rolls up per window like users and models (chargeback:
    # MS_ROLLUP_LABELS=app,team), at most MAX_ROLLUP_LABELS; read through the spend_by_label_* views.
    rollup_labels: str = ""

    # /metrics: spend per tenant and currency (meterstream_spend_micros), off by default; at most
    # this many tenants get a series of their own, the others are summed as tenant="_other".
    metrics_spend: bool = False
    metrics_spend_tenants: int = Field(default=100, ge=1, le=10_000)

    # GET /ready fails when the sink holding the sink partitions has written nothing for this long
    # while records wait for it (streams/health.py).
    ready_sink_stall_s: float = Field(default=120.0, gt=0)

    # -- web: each worker's web port (analysts' reads, status, re-rating) ---------------------------
    # Bind address, port, bearer token (unset: one written to data_dir/web-token), the Host names
    # it answers to besides loopback ones.
    web_bind: str = "127.0.0.1"
    web_port: int = 6066
    web_token: SecretStr | None = None
    web_allowed_hosts: str = ""
    # Endpoints that break things on purpose (/fault/...), for tests and chaos runs only.
    fault_injection: bool = False

    # -- ingest: the HTTP ingest (streams/ingest/) --------------------------------------------------
    # Bind address and port, the producers' token hashes (unset: data_dir/ingest-tokens), the
    # largest request body, how long a request waits for Kafka's acknowledgement, the Host names it
    # answers to besides loopback ones, how long a request's body may take to arrive, and its
    # headers (and a connection may idle between requests).
    ingest_bind: str = "127.0.0.1"
    ingest_port: int = 6070
    ingest_tokens_file: Path | None = None
    ingest_max_bytes: int = Field(default=1024 * 1024, ge=1)
    ingest_ack_timeout_s: float = Field(default=30.0, gt=0)
    ingest_allowed_hosts: str = ""
    ingest_body_timeout_s: float = Field(default=30.0, gt=0)
    ingest_header_timeout_s: float = Field(default=15.0, gt=0)

    # -- api: the usage API for products (streams/api/) -----------------------------------------------
    # Bind address and port, the read tokens' hashes (unset: data_dir/api-tokens), the Host names
    # it answers to besides loopback ones.
    api_bind: str = "127.0.0.1"
    api_port: int = 6071
    api_tokens_file: Path | None = None
    api_allowed_hosts: str = ""

    # -- analyst: reads, ad-hoc SQL and re-rating from the CLI ---------------------------------------
    # Analysts reach a worker's store through its web port when the embedded engine is locked
    # (unset: http://127.0.0.1:web_port; comma-separated: several workers).
    worker_url: str | None = None
    # Limits of analysts' ad-hoc SQL: result rows, time; what one analyst read may use
    # (Store.query_readonly): memory, rows and bytes read; on the embedded engine, whose one
    # statement at a time the sink shares, also a shorter time limit.
    sql_max_rows: int = Field(default=100_000, ge=1)
    sql_timeout_s: int = Field(default=30, ge=1)
    sql_max_memory_mb: int = Field(default=512, ge=1)
    sql_max_rows_read: int = Field(default=200_000_000, ge=1)
    sql_max_bytes_read: int = Field(default=20 * 1024**3, ge=1)
    sql_embedded_timeout_s: int = Field(default=5, ge=1)
    # Catalogs a worker may re-rate with, by name: the subdirectories of this directory
    # (unset: data_dir/catalogs).
    rerate_catalogs_dir: Path | None = None

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("rollup_labels")
    @classmethod
    def _label_keys(cls, v: str) -> str:
        keys = [k.strip() for k in v.split(",") if k.strip()]
        bad = [k for k in keys if not LABEL_KEY.fullmatch(k)]
        if bad:
            raise ValueError(f"label keys are 1-64 of A-Z a-z 0-9 _ . : / -, not {bad[0]!r}")
        if len(keys) > MAX_ROLLUP_LABELS:
            raise ValueError(f"at most {MAX_ROLLUP_LABELS} label keys are rolled up, not {len(keys)}")
        if len(set(keys)) != len(keys):
            raise ValueError("a label key is given twice")
        return ",".join(keys)

    @property
    def label_keys(self) -> tuple[str, ...]:
        """MS_ROLLUP_LABELS as a tuple (empty: no label rollups)."""
        return tuple(k for k in self.rollup_labels.split(",") if k)

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _unset_if_empty(cls, v: object) -> object:
        return None if v == "" else v

    @model_validator(mode="after")
    def _clickhouse_cluster(self) -> Settings:
        if self.clickhouse_cluster is None:
            return self
        if self.clickhouse_url is None:
            raise ValueError(
                "MS_CLICKHOUSE_CLUSTER needs a ClickHouse server (MS_CLICKHOUSE_URL): "
                "the embedded engine (chDB) has no cluster"
            )
        if not CLUSTER_NAME.fullmatch(self.clickhouse_cluster):
            raise ValueError(
                "MS_CLICKHOUSE_CLUSTER must be a cluster name: letters, digits, _ and -, starting with a letter or _"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"MS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "MS_KAFKA_SASL_USERNAME and MS_KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            raise ValueError(
                "MS_KAFKA_SASL_USERNAME/PASSWORD are set but MS_KAFKA_SECURITY_PROTOCOL="
                f"{self.kafka_security_protocol} sends no credentials (use SASL_SSL)"
            )
        if not tls and (self.kafka_ssl_cafile or self.kafka_ssl_certfile or self.kafka_ssl_keyfile):
            raise ValueError(
                "MS_KAFKA_SSL_* files are set but MS_KAFKA_SECURITY_PROTOCOL="
                f"{self.kafka_security_protocol} does not use TLS (use SSL or SASL_SSL)"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("MS_KAFKA_SSL_KEYFILE needs MS_KAFKA_SSL_CERTFILE")
        return self

    @property
    def local_kafka(self) -> bool:
        """True when meterstream starts its own broker (no external bootstrap given)."""
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        if self.kafka_security_protocol == "SASL_SSL" and self.kafka_sasl_ssl_port:
            return f"127.0.0.1:{self.kafka_sasl_ssl_port}"  # the local broker's SASL_SSL listener
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def sink_partitions(self) -> int:
        """As many as the events topic: sink records are keyed by their source partition, so one
        source partition's rows stay in order in one sink partition. With the embedded engine
        one sink process owns them all; with a server, sink processes share them."""
        return self.topic_partitions

    @model_validator(mode="after")
    def _check_webhooks(self) -> Settings:
        """Refuse, at startup, webhook URLs that are not https:// (plain http:// only to a loopback
        host) and webhooks without a signing secret. Raises WebhookConfigError (never a pydantic
        ValidationError, which would print the URLs)."""
        if parse_webhooks(self.alert_webhooks) and not (
            self.alert_webhook_secret and self.alert_webhook_secret.get_secret_value()
        ):
            raise WebhookConfigError(
                "MS_ALERT_WEBHOOKS is set but MS_ALERT_WEBHOOK_SECRET is not: webhooks are only sent "
                "signed (set a random secret shared with the receivers, or unset MS_ALERT_WEBHOOKS)"
            )
        return self

    @property
    def webhook_targets(self) -> list[WebhookTarget]:
        return parse_webhooks(self.alert_webhooks)

    @property
    def analyst_url(self) -> str:
        return self.worker_url or f"http://127.0.0.1:{self.web_port}"

    @property
    def rerate_catalogs(self) -> Path:
        return self.rerate_catalogs_dir or self.data_dir / "catalogs"

    @property
    def ingest_tokens(self) -> Path:
        return self.ingest_tokens_file or self.data_dir / "ingest-tokens"

    @property
    def api_tokens(self) -> Path:
        return self.api_tokens_file or self.data_dir / "api-tokens"

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "chdb"

    @cached_property
    def migrations_dir(self) -> Path:
        return OPS_DATA / "migrations"

    @property
    def kafka_script(self) -> Path:
        return OPS_DATA / "kafka" / "kafka.sh"

    def service_env(self) -> dict[str, str]:
        """Environment for ops/ scripts: the same settings, spelled as they read them."""
        env = dict(os.environ)
        env["MS_DATA_DIR"] = str(self.data_dir)
        env["MS_KAFKA_PORT"] = str(self.kafka_port)
        env.setdefault("MS_PYTHON", sys.executable)
        if self.kafka_controller_port:
            env["MS_KAFKA_CONTROLLER_PORT"] = str(self.kafka_controller_port)
        if self.kafka_sasl_ssl_port:
            env["MS_KAFKA_SASL_SSL_PORT"] = str(self.kafka_sasl_ssl_port)
        return env
