"""Prometheus metrics: `GET /metrics` on the worker's web port (streams/web.py) and on the ingest
(streams/ingest/server.py), behind the same bearer token as every endpoint but /health.

Each process renders its own registry (prometheus_client's `CollectorRegistry`, never the global
default) in Prometheus's text format. A role keeps its instruments in a `Collector` of its own
(`RatingMetrics`, `SinkMetrics`, `AlertMetrics`, `IngestMetrics`), registered by the process
that runs it, so two workers in one test process never share a counter.

The worker's counters and its /status `stats` are one source: `RatingMetrics` reads
counted, duplicates and forwarded from the `stats` dict at scrape time, and `rejected` counts a
rejection into `stats["rejected"]` and into its reason class in one call, so the classes sum to it.

No label comes from untrusted input: a rejection's reason text is mapped onto the fixed
`REJECT_CLASSES` (`reject_class`); producers are labelled by the names an operator gave their
tokens (tokens.py), never by what a request says; no secret. Tenants and money only when an
operator asks (MS_METRICS_SPEND=1, `SpendMetrics`): the first MS_METRICS_SPEND_TENANTS tenants
seen get a series each, the rest one `_other` series, so a flood of tenant ids cannot flood
Prometheus."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.recovery import recoveries

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what Prometheus 2.x and 3.x both read

# The classes a rejection's reason falls in (its label `reason`): a fixed allow-list.
REJECT_CLASSES = (
    "invalid",  # not JSON, over the size limit, a field missing or of the wrong type
    "duplicate_key",  # a key repeated in a JSON object
    "unknown_model",  # a model or provider the catalog does not know
    "pricing",  # known, but not priced as asked (region, mode, nothing to price …)
    "too_late",  # behind the partition's stream time by more than the allowed lateness
    "refused",  # refused by its producer (the ingest, `meterstream produce --format`)
    "unreadable",  # a Kafka record whose headers cannot be read, or a tombstone
    "catalog",  # a catalog record refused
    "batch",  # a batch record that cannot be split
    "internal",  # a fault of pricing on this input (kept to be sent again)
    "other",
)
_PREFIXES: tuple[tuple[str, str], ...] = (  # first match wins; checked on the reason as written
    ("meterstream ingest ", "refused"),
    ("not converted (", "refused"),
    ("refused by its producer", "refused"),
    ("unreadable record", "unreadable"),
    ("a record without a value", "unreadable"),
    ("catalog defect", "pricing"),
    ("catalog", "catalog"),
    ("batch record", "batch"),
    ("too_late", "too_late"),
    ("internal error while pricing", "internal"),
    ("not JSON", "invalid"),
    ("event is ", "invalid"),
    ("unknown model", "unknown_model"),
    ("unknown provider", "unknown_model"),
    ("unknown region", "pricing"),
    ("nothing to price", "pricing"),
    ("cost ", "pricing"),
    # an event's own checks (schemas/), without a field's name before them
    ("ts ", "invalid"),
    ("usage ", "invalid"),
    ("reasoning_tokens ", "invalid"),
    ("dedicated needs ", "invalid"),
    ("training needs ", "invalid"),
    ("guardrail policies ", "invalid"),
    ("negative zero ", "invalid"),
    ("a positive exponent ", "invalid"),
    ("at most ", "invalid"),
    ("too many digits", "invalid"),
    ("must not contain ", "invalid"),
)
_PRICING_WORDS = (
    "has no price",
    "is not offered",
    "does not offer",
    "has no tokenizer",
    "is priced by region",
    "prices ",
    "cross-region profile",
)


def reject_class(reason: str) -> str:
    """The class of a rejection's reason, one of REJECT_CLASSES (never the text itself)."""
    for prefix, cls in _PREFIXES:
        if reason.startswith(prefix):
            return cls
    if reason.endswith("duplicate key in a JSON object"):
        return "duplicate_key"
    if any(word in reason for word in _PRICING_WORDS):
        return "pricing"
    if ": " in reason:  # a validation error: "usage.input_tokens: Input should be …"
        return "invalid"
    return "other"


class RoleMetrics(Collector):
    """A role's instruments, in no registry until a process registers the role."""

    def __init__(self) -> None:
        self._instruments: list[Any] = []

    def _own(self, instrument: Any) -> Any:
        self._instruments.append(instrument)
        return instrument

    def families(self) -> Iterable[Metric]:
        """Families computed at scrape time (none by default)."""
        return ()

    def collect(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            yield from instrument.collect()
        yield from self.families()


class RatingMetrics(RoleMetrics):
    """The rating role: events in, counted, rejected by class, duplicates, forwarded; the catalog
    versions in force. `versions()`: (this worker's own catalog, {partition: version in force})."""

    def __init__(self, stats: dict[str, int], versions: Callable[[], tuple[str, Mapping[int, str]]]) -> None:
        super().__init__()
        self.stats, self.versions = stats, versions
        self.by_class = dict.fromkeys(REJECT_CLASSES, 0)
        self.records_in = self._own(
            Counter("meterstream_records_in", "Kafka records of the events topic taken by the rater", registry=None)
        )
        self.events_in = self._own(
            Counter(
                "meterstream_events_in",
                "events judged by the rater (counted, rejected, duplicate or forwarded; a forwarded event "
                "is judged again on its canonical partition)",
                registry=None,
            )
        )

    def rejected(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count rejections: into stats["rejected"] and each into its reason's class."""
        n = 0
        for row in rows:
            self.by_class[reject_class(str(row.get("reason", "")))] += 1
            n += 1
        self.stats["rejected"] += n

    def families(self) -> Iterable[Metric]:
        stats = self.stats
        for name, key, doc in (
            ("meterstream_events_counted", "counted", "events priced and counted into the ledger"),
            ("meterstream_events_duplicates", "duplicates", "events dropped as duplicates of a counted event"),
            ("meterstream_events_forwarded", "forwarded", "events forwarded to their canonical partition"),
        ):
            yield CounterMetricFamily(name, doc, value=stats.get(key, 0))
        rejected = CounterMetricFamily(
            "meterstream_events_rejected",
            "events rejected (to the dead-letter topic), by reason class",
            labels=["reason"],
        )
        for cls, n in self.by_class.items():
            rejected.add_metric([cls], n)
        yield rejected
        own, current = self.versions()
        yield InfoMetricFamily(
            "meterstream_catalog", "the catalog this worker was started with", value={"version": own}
        )
        partitions = InfoMetricFamily(
            "meterstream_catalog_partition",
            "the catalog version in force on each partition rated here",
            labels=["partition"],
        )
        for p, version in sorted(current.items()):
            partitions.add_metric([str(p)], {"version": version})
        yield partitions


OTHER_TENANTS = "_other"
MICROS = Decimal("1e6")


class SpendMetrics(Collector):
    """Spend counted by the rater, per tenant and currency: `meterstream_spend_micros_total`, the
    exact running total (Decimal) shown in whole millionths of the currency, rounded down (a
    Prometheus sample is a float: integers below 2**53 are exact, i.e. up to 9 billion units).
    Counts what this process rated: after a recovery it may count a replayed event again; the
    ledger in ClickHouse is the bill."""

    def __init__(self, max_tenants: int) -> None:
        self.max_tenants = max_tenants
        self.totals: dict[tuple[str, str], Decimal] = {}
        self.tenants: set[str] = set()

    def counted(self, rows: Iterable[Mapping[str, Any]]) -> None:
        totals, tenants = self.totals, self.tenants
        for row in rows:
            tenant = row["tenant_id"]
            if tenant not in tenants:
                if len(tenants) >= self.max_tenants:
                    tenant = OTHER_TENANTS
                else:
                    tenants.add(tenant)
            key = (tenant, row["currency"])
            totals[key] = totals.get(key, Decimal(0)) + Decimal(row["cost"])

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "meterstream_spend_micros",
            "spend rated, in millionths of the currency (rounded down), by tenant and currency "
            f"(past {self.max_tenants} tenants: tenant={OTHER_TENANTS})",
            labels=["tenant", "currency"],
        )
        for (tenant, currency), cost in sorted(self.totals.items()):
            family.add_metric([tenant, currency], int((cost * MICROS).to_integral_value(rounding=ROUND_FLOOR)))
        yield family


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SINK_TABLES = ("ledger", "rejected_events", "alerts")


class SinkMetrics(RoleMetrics):
    """The sink: records and rows written, batch write latency, store errors and retries.
    `records_written()`: the sink records written (the count /status shows as sink_rows)."""

    def __init__(self, records_written: Callable[[], int]) -> None:
        super().__init__()
        self.records_written = records_written
        self.rows = self._own(
            Counter("meterstream_sink_rows_written", "rows written to the store, by table", ["table"], registry=None)
        )
        for table in SINK_TABLES:
            self.rows.labels(table)
        self.write_seconds = self._own(
            Histogram(
                "meterstream_sink_batch_write_seconds",
                "time to write one batch to the store (written batches)",
                buckets=LATENCY_BUCKETS,
                registry=None,
            )
        )
        self.store_errors = self._own(
            Counter("meterstream_sink_store_errors", "batch writes the store failed", registry=None)
        )
        self.retries = self._own(Counter("meterstream_sink_write_retries", "batch writes tried again", registry=None))
        self.last_write = self._own(
            Gauge("meterstream_sink_last_write_timestamp_seconds", "when a batch was last written", registry=None)
        )

    def written(self, rows: Mapping[str, int], seconds: float) -> None:
        for table, n in rows.items():
            self.rows.labels(table if table in SINK_TABLES else "other").inc(n)
        self.write_seconds.observe(seconds)
        self.last_write.set(time.time())

    def families(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "meterstream_sink_records_written", "sink records written to the store", value=self.records_written()
        )


class AlertMetrics(RoleMetrics):
    """The alerts role: alerts fired (written to the alert log), published (to the spend_alerts
    topic), webhook deliveries by outcome and each webhook attempt's latency."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = self._own(
            Counter("meterstream_alerts_fired", "alerts fired (written to the alert log)", registry=None)
        )
        self.published = self._own(
            Counter("meterstream_alerts_published", "alerts written to the spend_alerts topic", registry=None)
        )
        self.webhooks = self._own(
            Counter(
                "meterstream_alert_webhook_deliveries",
                "webhook deliveries of an alert, by outcome (delivered, failed: after every attempt)",
                ["outcome"],
                registry=None,
            )
        )
        for outcome in ("delivered", "failed"):
            self.webhooks.labels(outcome)
        self.webhook_seconds = self._own(
            Histogram(
                "meterstream_alert_webhook_seconds",
                "time of one webhook POST attempt (answered or not)",
                buckets=LATENCY_BUCKETS,
                registry=None,
            )
        )


STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


class IngestMetrics(RoleMetrics):
    """The HTTP ingest: requests by status class, events accepted (by producer: the names of
    the tokens file, an operator's allow-list), items refused."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = self._own(
            Counter("meterstream_ingest_requests", "requests answered, by status class", ["code"], registry=None)
        )
        for code in STATUS_CLASSES:
            self.requests.labels(code)
        self.accepted = self._own(
            Counter(
                "meterstream_ingest_events_accepted",
                "events accepted (acknowledged by Kafka), by producer (its token's name)",
                ["producer"],
                registry=None,
            )
        )
        self.refused = self._own(
            Counter("meterstream_ingest_items_refused", "items refused (written as refused records)", registry=None)
        )
        self.last_accepted = self._own(
            Gauge(
                "meterstream_ingest_last_accepted_timestamp_seconds",
                "when a producer's events were last accepted",
                ["producer"],
                registry=None,
            )
        )

    def answered(self, status: int) -> None:
        self.requests.labels(f"{status // 100}xx" if 200 <= status < 600 else "5xx").inc()

    def took(self, producer: str, accepted: int, refused: int) -> None:
        if accepted:
            self.accepted.labels(producer).inc(accepted)
            self.last_accepted.labels(producer).set(time.time())
        self.refused.inc(refused)


class RecoveryMetrics(Collector):
    """streams/recovery.py's counters, kept across the in-place restarts (in the environment)."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "meterstream_worker_recoveries",
            "times this worker recovered by restarting in place since it was started",
            value=int(str(recoveries()["count"])),
        )


def registry(collectors: Sequence[Any], *, process: bool = True) -> CollectorRegistry:
    """A process's own registry: the given roles' collectors (None, or an object without
    metrics, skipped), and the process's CPU, memory and file descriptors."""
    reg = CollectorRegistry()
    if process:
        ProcessCollector(registry=reg)
    for collector in collectors:
        if callable(getattr(collector, "collect", None)):
            reg.register(collector)
    return reg


def render(reg: CollectorRegistry) -> bytes:
    """The registry in Prometheus's text format (0.0.4)."""
    return generate_latest(reg)
