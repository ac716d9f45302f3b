"""`meterstream rerate` while a worker holds the embedded engine: a period re-priced with another
catalog as adjustments (a dry run first, which sends nothing); the rollups then equal the
engine's totals under the new catalog in every window; a re-rating given again sends nothing; and
once the month is closed, a re-rating is booked in the next month and the closed one verifies."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
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
        period = ("--since", since.isoformat(), "--until", until.isoformat())
        dry = stack.cli("rerate", *period, "--catalog", "v2", "--dry-run", "--format", "json")
        summary = json.loads(dry.stdout)
        assert summary and any(Decimal(r["difference"]) > 0 for r in summary if r["model"].startswith("gpt-4o"))
        assert b"would send" in dry.stderr
        assert stack.query("SELECT count() AS n FROM ledger WHERE adjustment > 0")[0]["n"] in (0, "0")  # nothing sent
        out = stack.cli("rerate", *period, "--catalog", "v2", "--why", "October price list").stdout.decode()
        assert "re-rated" in out

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
        again = stack.cli("rerate", *period, "--catalog", "v2")
        assert b"sending 0 entries" in again.stderr, again.stderr  # the prices changed already

        # the month closed, a re-rating back to the shipped catalog is booked in the next month
        month = then.strftime("%Y-%m")
        stack.cli("period", "close", "--month", month)
        back = stack.cli("rerate", *period)
        assert b"booked in the first open period" in back.stderr, back.stderr
        verified = stack.cli("period", "verify", "--month", month).stdout.decode()
        assert "unchanged" in verified and "CHANGED" not in verified, verified
        got = normalize(stack.report("model", "total"), "model", "total")
        assert got == as_rows(old, "model", "total"), diff(got, as_rows(old, "model", "total"))[:3]
        by_month = normalize(stack.report("model", "month"), "model", "month")
        assert {k: v for k, v in by_month.items() if k[0].strftime("%Y-%m") == month} == {
            k: v for k, v in as_rows(exp, "model", "month").items() if k[0].strftime("%Y-%m") == month
        }  # the closed month still shows what it closed with
        audit = json.loads(stack.cli("audit", "--action", "rerate", "--format", "json").stdout)
        assert len(audit) == 2 and any(
            a["reason"] == "October price list" for a in audit
        )  # what sent nothing is no change
    finally:
        stack.stop()
