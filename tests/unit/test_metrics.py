"""streams/metrics.py: what /metrics renders, and the classes a rejection's reason falls in."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pricing import load_catalog
from pricing.rating import Rejection, rate
from streams import metrics
from streams.harness.generate import BAD_KINDS, generate
from streams.rating.agent import TOMBSTONE

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def samples(reg) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, as Prometheus would read the text."""
    text = metrics.render(reg).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_generated_bad_event_has_a_class_of_its_own_not_other():
    catalog = load_catalog()
    classes: dict[str, set[str]] = defaultdict(set)
    for kind, line in generate(300, seed=5, now=NOW, bad=3 * len(BAD_KINDS)):
        if kind.startswith("bad:"):
            result = rate(line, catalog, now=NOW)
            assert isinstance(result, Rejection), kind
            classes[kind].add(metrics.reject_class(result.reason))
    assert {k: c for k, c in classes.items() if "other" in c} == {}
    assert classes["bad:not_json"] == {"invalid"} and classes["bad:unknown_model"] == {"unknown_model"}
    assert classes["bad:wrong_region"] == {"pricing"} and classes["bad:missing_tenant"] == {"invalid"}


def test_reasons_of_the_stream_and_of_producers_fall_in_their_classes():
    cases = {
        "too_late: event time is 4000 minutes behind this partition's stream time": "too_late",
        "tenant_id: duplicate key in a JSON object": "duplicate_key",
        "meterstream ingest POST /v1/events by gw, index 3: unknown model 'x'": "refused",
        "not converted (openai), line 4: no usage": "refused",
        "refused by its producer": "refused",
        "unreadable record: a header key is not UTF-8": "unreadable",
        TOMBSTONE: "unreadable",
        "catalog record refused: this rater has no catalog key (MS_CATALOG_KEY)": "catalog",
        "catalog defect: 2 prices match gpt-4o input": "pricing",
        "batch record holds no events": "batch",
        "internal error while pricing this event (KeyError); kept to be sent again once fixed": "internal",
        "event is 2000000 bytes, over the 1048576-byte limit": "invalid",
        "something nobody wrote yet": "other",
    }
    assert {reason: metrics.reject_class(reason) for reason in cases} == cases
    assert set(cases.values()) <= set(metrics.REJECT_CLASSES)


def test_the_rating_counters_are_the_workers_stats_and_the_classes_sum_to_rejected():
    stats: defaultdict[str, int] = defaultdict(int)
    rating = metrics.RatingMetrics(stats, lambda: ("v-own", {1: "v-own", 0: "v-new"}))
    reg = metrics.registry([rating], process=False)
    stats["counted"] += 7
    stats["duplicates"] += 2
    stats["forwarded"] += 3
    rating.rejected([{"reason": "not JSON: x"}, {"reason": "unknown model 'a' for provider 'b'"}])
    rating.rejected([{"reason": "not JSON: y"}, {"reason": "a reason with secret-tenant-42 in it!"}])
    got = samples(reg)
    assert stats["rejected"] == 4
    assert got[("meterstream_events_counted_total", ())] == 7
    assert got[("meterstream_events_duplicates_total", ())] == 2
    assert got[("meterstream_events_forwarded_total", ())] == 3
    rejected = {labels[0][1]: v for (name, labels), v in got.items() if name == "meterstream_events_rejected_total"}
    assert set(rejected) == set(metrics.REJECT_CLASSES)  # every class, zeros too; no raw reason
    assert (rejected["invalid"], rejected["unknown_model"], rejected["other"]) == (2, 1, 1)
    assert sum(rejected.values()) == stats["rejected"]
    assert got[("meterstream_catalog_info", (("version", "v-own"),))] == 1
    assert got[("meterstream_catalog_partition_info", (("partition", "0"), ("version", "v-new")))] == 1
    assert "secret-tenant-42" not in metrics.render(reg).decode()


def test_two_workers_in_one_process_keep_their_own_counters():
    one, two = defaultdict(int), defaultdict(int)
    a = metrics.registry([metrics.RatingMetrics(one, lambda: ("v", {})), metrics.SinkMetrics(lambda: 0)])
    b = metrics.registry([metrics.RatingMetrics(two, lambda: ("v", {})), metrics.SinkMetrics(lambda: 5)])
    one["counted"] = 10
    assert samples(a)[("meterstream_events_counted_total", ())] == 10
    assert samples(b)[("meterstream_events_counted_total", ())] == 0
    assert samples(b)[("meterstream_sink_records_written_total", ())] == 5
    assert ("process_cpu_seconds_total", ()) in samples(a)  # the process collector, per registry


def test_sink_and_alert_instruments():
    sink, alerts = metrics.SinkMetrics(lambda: 3), metrics.AlertMetrics()
    reg = metrics.registry([sink, alerts], process=False)
    sink.written({"ledger": 40, "rejected_events": 2}, 0.03)
    sink.store_errors.inc()
    sink.retries.inc()
    alerts.fired.inc(2)
    alerts.webhooks.labels("failed").inc()
    alerts.webhook_seconds.observe(0.2)
    got = samples(reg)
    assert got[("meterstream_sink_rows_written_total", (("table", "ledger"),))] == 40
    assert got[("meterstream_sink_rows_written_total", (("table", "alerts"),))] == 0
    assert got[("meterstream_sink_batch_write_seconds_count", ())] == 1
    assert got[("meterstream_sink_batch_write_seconds_bucket", (("le", "0.05"),))] == 1
    assert got[("meterstream_sink_batch_write_seconds_bucket", (("le", "0.025"),))] == 0
    assert got[("meterstream_sink_store_errors_total", ())] == got[("meterstream_sink_write_retries_total", ())] == 1
    assert got[("meterstream_alerts_fired_total", ())] == 2
    assert got[("meterstream_alert_webhook_deliveries_total", (("outcome", "failed"),))] == 1
    assert got[("meterstream_alert_webhook_deliveries_total", (("outcome", "delivered"),))] == 0
    assert got[("meterstream_alert_webhook_seconds_count", ())] == 1


def test_spend_per_tenant_is_exact_rounded_down_once_and_capped():
    spend = metrics.SpendMetrics(max_tenants=2)
    reg = metrics.registry([spend], process=False)
    rows = [
        {"tenant_id": "acme", "currency": "USD", "cost": "0.000000400000"},
        {"tenant_id": "acme", "currency": "USD", "cost": "0.000000700000"},  # 1.1 millionths together
        {"tenant_id": "acme", "currency": "CNY", "cost": "2.500000000001"},
        {"tenant_id": "beta", "currency": "USD", "cost": "1"},
        {"tenant_id": "gamma", "currency": "USD", "cost": "0.25"},  # past the cap of 2 tenants
        {"tenant_id": "delta", "currency": "USD", "cost": "0.5"},
    ]
    spend.counted(rows)
    got = {labels: v for (name, labels), v in samples(reg).items() if name == "meterstream_spend_micros_total"}
    assert got == {
        (("currency", "USD"), ("tenant", "acme")): 1,  # the running total rounded down, not each event (0 + 0)
        (("currency", "CNY"), ("tenant", "acme")): 2_500_000,
        (("currency", "USD"), ("tenant", "beta")): 1_000_000,
        (("currency", "USD"), ("tenant", "_other")): 750_000,
    }


def test_recoveries_come_from_the_environment(monkeypatch):
    from streams.recovery import COUNT_ENV

    monkeypatch.setenv(COUNT_ENV, "3")
    assert samples(metrics.registry([metrics.RecoveryMetrics()], process=False)) == {
        ("meterstream_worker_recoveries_total", ()): 3
    }


def test_the_ingests_metrics_need_a_token_and_count_answers_by_class(tmp_path: Path):
    from aiohttp.test_utils import TestClient, TestServer

    from streams.ingest import tokens
    from streams.ingest.server import make_app
    from streams.settings import Settings

    path = tmp_path / "tokens"
    token = tokens.add(path, "gateway")
    app = make_app(Settings(data_dir=tmp_path / "data"), tokens.TokensFile(path, tokens.load(path)))

    async def run() -> tuple[int, int, str, str]:
        async with TestClient(TestServer(app)) as client:
            health = await client.get("/health")
            refused = await client.get("/metrics")
            bad = await client.post(
                "/v1/events",
                data=b"{not json",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
            )
            assert bad.status == 415
            ok = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            return refused.status, ok.status, ok.headers["Content-Type"], await ok.text() + str(health.status)

    refused, status, ctype, text = asyncio.run(run())
    assert (refused, status) == (401, 200)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text[: -len("200")])
        for s in family.samples
    }
    assert got[("meterstream_ingest_requests_total", (("code", "2xx"),))] == 1  # /health
    assert got[("meterstream_ingest_requests_total", (("code", "4xx"),))] == 2  # 401 and 415
    assert token not in text
