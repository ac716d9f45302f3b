"""A real Prometheus (Debian's `prometheus` package: ops/prometheus/install.sh) scrapes a worker and
the HTTP ingest of a running pipeline, with the bearer tokens, and what it stored equals what the
pipeline did: the events counted, rejected (by reason class) and dropped as duplicates, the
events the ingest accepted and the items it refused."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.harness.generate import generate
from streams.harness.stack import Stack, free_port
from tests.integration.test_ingest import Ingest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is not installed (ops/prometheus/install.sh)"
    ),
]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class Prometheus:
    """`prometheus` on 127.0.0.1, its data in `tmp`, scraping every second."""

    def __init__(self, tmp: Path, jobs: dict[str, tuple[int, str]]) -> None:
        self.port = free_port()
        scrape = []
        for job, (port, token) in jobs.items():
            secret = tmp / f"{job}.token"
            secret.write_text(token)
            secret.chmod(0o600)
            scrape.append(
                {
                    "job_name": job,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "authorization": {"type": "Bearer", "credentials_file": str(secret)},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            )
        config = tmp / "prometheus.yml"
        config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape}))  # YAML
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def query_range(self, promql: str, start: float, end: float, step: float) -> tuple[str, list[dict[str, Any]]]:
        """(resultType, result) of a range query, as Grafana asks for a graph (unix seconds)."""
        args = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        url = f"http://127.0.0.1:{self.port}/api/v1/query_range?" + urllib.parse.urlencode(args)
        with urllib.request.urlopen(url, timeout=30) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]["resultType"], doc["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The query's one value, or None when it has no series."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(prom: Prometheus, want: dict[str, float], timeout: float = 60) -> dict[str, float | None]:
    """Query until every expression has its wanted value (the next scrapes catch up); the last answers."""
    deadline = time.monotonic() + timeout
    while True:
        got = {q: prom.value(q) for q in want}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(1)


def test_prometheus_scrapes_the_worker_and_the_ingest_and_stores_what_the_pipeline_did(stack: Stack, tmp_path):
    lines = [line for _, line in generate(1600, seed=41, now=NOW, duplicate_rate=0.05, bad=44)]
    by_kafka, by_http = lines[:1200], lines[1200:]
    port = stack.start_worker(env={"MS_METRICS_SPEND": "1"})  # the opt-in spend counters too
    stack.wait_for_progress(port, 0)  # listening, its token written
    server = Ingest(stack.env, tmp_path)
    prom = Prometheus(tmp_path, {"worker": (port, stack.token()), "ingest": (server.port, server.token)})
    try:
        assert wait_for(prom, {'up{job="worker"}': 1, 'up{job="ingest"}': 1}) == {
            'up{job="worker"}': 1,
            'up{job="ingest"}': 1,
        }, prom.log.read_text()[-3000:]
        for where in (port, server.port):  # not without the token, nor with another
            for headers in ({}, {"Authorization": "Bearer " + "x" * 32}):
                req = urllib.request.Request(f"http://127.0.0.1:{where}/metrics", headers=headers)
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(req, timeout=10)
                assert refused.value.code == 401
        stack.produce(by_kafka)
        status, doc = server.post("/v1/events", b"\n".join(by_http))
        assert status == 202
        refused = {r["index"] for r in doc["rejected"]}
        accepted = [line for i, line in enumerate(by_http) if i not in refused]
        assert refused and doc["accepted"] == len(accepted)
        stack.produced.extend(accepted)  # what the ingest wrote is counted by the worker as well
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        exp.rejected += len(refused)  # refused records: rejected by the rater, as "refused"
        assert exp.counted > 0 and exp.duplicates > 0 and exp.rejected > len(refused)
        stack.wait_until_exact(exp, timeout=240)

        want = {
            "sum(meterstream_events_counted_total)": float(exp.counted),
            "sum(meterstream_events_rejected_total)": float(exp.rejected),
            "sum(meterstream_events_duplicates_total)": float(exp.duplicates),
            'sum(meterstream_events_rejected_total{reason="refused"})': float(len(refused)),
            'sum(meterstream_events_rejected_total{reason="other"})': 0.0,  # every generated reason has its class
            'sum(meterstream_ingest_events_accepted_total{producer="gateway"})': float(len(accepted)),
            "sum(meterstream_ingest_items_refused_total)": float(len(refused)),
            "sum(meterstream_worker_recoveries_total)": 0.0,
        }
        got = wait_for(prom, want)
        assert got == want
        stats = stack.health(port)["stats"]  # /status and the metrics: one source
        assert (stats["counted"], stats["rejected"]) == (exp.counted, exp.rejected)
        # the sink wrote at least every counted row (a retried batch may write some again); the
        # scrape after its last batch may still be due
        ledger = 'sum(meterstream_sink_rows_written_total{table="ledger"})'
        deadline = time.monotonic() + 30
        while (prom.value(ledger) or 0) < exp.counted and time.monotonic() < deadline:
            time.sleep(1)
        assert (prom.value(ledger) or 0) >= exp.counted
        assert (prom.value("sum(meterstream_sink_batch_write_seconds_count)") or 0) >= 1
        assert prom.value("sum(meterstream_sink_store_errors_total)") == 0
        # the POST and Prometheus's own scrapes; nothing answered 5xx
        assert (prom.value('sum(meterstream_ingest_requests_total{code="2xx"})') or 0) >= 2
        assert prom.value('sum(meterstream_ingest_requests_total{code="5xx"})') == 0
        assert prom.value('count(meterstream_catalog_info{job="worker"})') == 1
        # spend per tenant and currency: the exact totals, in millionths rounded down once
        spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for (window, _, tenant, _, currency), (cost, _) in exp.by_user.items():
            if window == "total":
                spend[(tenant, currency)] += cost
        scraped = {
            (r["metric"]["tenant"], r["metric"]["currency"]): int(r["value"][1])
            for r in prom.query("meterstream_spend_micros_total")
        }
        assert scraped == {k: int(v * 1_000_000) for k, v in spend.items() if v}
        assert len(scraped) >= 2  # more than one tenant or currency: the labels are read, not assumed
        # the consumer lag of each group the worker's roles read, from Kafka: nothing waits now
        lag = wait_for(prom, {"sum(meterstream_consumer_lag)": 0.0, "count(meterstream_consumer_lag)": 13.0})
        assert lag == {"sum(meterstream_consumer_lag)": 0.0, "count(meterstream_consumer_lag)": 13.0}
        assert prom.value('meterstream_ready{job="worker"}') == 1
        assert (prom.value('process_resident_memory_bytes{job="worker"}') or 0) > 0
        # the rejected classes are an allow-list: no raw reason became a label
        classes = {r["metric"]["reason"] for r in prom.query("meterstream_events_rejected_total")}
        assert classes <= {
            "invalid",
            "duplicate_key",
            "unknown_model",
            "pricing",
            "too_late",
            "refused",
            "unreadable",
            "catalog",
            "batch",
            "internal",
            "other",
        }
    finally:
        prom.stop()
        server.stop()
