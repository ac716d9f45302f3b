"""`meterstream rerate` while a worker holds the embedded engine: a closed period re-priced with
another catalog; ledger-backed rollups then equal the engine's totals under the new catalog."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from pricing import load_catalog
from pricing.catalog import SHIPPED_CATALOGS
from streams.harness.expected import as_rows, diff, expected_totals, normalize
from streams.harness.generate import generate
from streams.harness.stack import Stack

pytestmark = pytest.mark.integration


def test_rerate_a_closed_period_with_a_new_catalog(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    stack.env["MS_ALLOWED_LATENESS_HOURS"] = "1"
    stack.env["MS_DEDUP_RETENTION_HOURS"] = "1"
    try:
        # 40 days back: its calendar month (the widest window) is closed, as re-rating requires
        then = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=40)
        lines = [line for _, line in generate(1500, seed=21, now=then, duplicate_rate=0.05, bad=5)]
        stack.produce(lines)
        stack.start_worker()
        stack.wait_until_exact(stack.expected(then + dt.timedelta(days=40)))

        # a worker re-rates only with catalogs by name, from MS_RERATE_CATALOGS_DIR
        new_dir = Path(stack.env["MS_DATA_DIR"]) / "catalogs" / "v2"
        shutil.copytree(SHIPPED_CATALOGS, new_dir)
        path = new_dir / "openai-usd.yaml"
        text = path.read_text()
        assert text.count('price: "2.50"') >= 1
        path.write_text(text.replace('price: "2.50"', 'price: "3.10"'))  # GPT-4o input price rises
        new_catalog = load_catalog(new_dir)

        since, until = then - dt.timedelta(hours=2), then + dt.timedelta(hours=1)
        elsewhere = tmp_path / "catalog-elsewhere"
        shutil.copytree(new_dir, elsewhere)
        with pytest.raises(AssertionError, match="re-rates only with catalogs in"):
            stack.cli("rerate", "--since", since.isoformat(), "--until", until.isoformat(), "--catalog", str(elsewhere))
        for catalog in (str(elsewhere), "../catalog-elsewhere", "/etc"):  # the endpoint itself takes no paths
            refused = stack.post(
                stack.ports[0], "/rerate", {"since": since.isoformat(), "until": until.isoformat(), "catalog": catalog}
            )
            assert refused[0] == 400 and "not a path" in refused[1]["error"], refused
        out = stack.cli(
            "rerate", "--since", since.isoformat(), "--until", until.isoformat(), "--catalog", "v2"
        ).stdout.decode()
        assert "re-rated" in out and "USD:" in out

        exp = expected_totals(
            lines,
            new_catalog,
            partitions=stack.partitions,
            lateness=dt.timedelta(hours=1),
            now=then + dt.timedelta(days=40),
        )
        old = stack.expected(then + dt.timedelta(days=40))
        assert as_rows(exp, "model", "total") != as_rows(old, "model", "total")  # the change matters
        for by in ("user", "model"):
            for window in ("minute", "hour", "day", "month", "total"):
                got = normalize(stack.report(by, window), by, window)
                assert got == as_rows(exp, by, window), diff(got, as_rows(exp, by, window))[:3]
    finally:
        stack.stop()


def test_rerate_refuses_an_open_period(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(AssertionError, match="still open to late events"):
        stack.cli("rerate", "--since", (now - dt.timedelta(hours=3)).isoformat(), "--until", now.isoformat())
