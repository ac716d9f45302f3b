"""`meterstream statement` and `explain` on the real pipeline (broker, worker, engine; the CLI
asks the worker that holds the embedded engine): a month's totals per currency equal the
rollups and the oracle to the last digit, the dead-lettered count is the tenant's, and one
counted event is explained with the ledger's cost and the engine's line items."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal

import orjson
import pytest

from pricing.bundle import load_catalog
from pricing.catalog import SHIPPED_CATALOGS
from pricing.rating import Rejection, rate
from streams.harness.expected import as_rows, expected_totals
from streams.harness.generate import generate
from streams.harness.stack import CLI, Stack

pytestmark = pytest.mark.integration
UTC = dt.UTC
# early in November: the late events (2-30 h behind) fall on both sides of 1 November, the
# too-late ones (72 h) in October
NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
MONTHS = ("2026-10", "2026-11")
TENANTS = ("tenant-0", "tenant-1", "tenant-2")
OFFSET_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
OVERLAY = """
tenant_id: tenant-1
rules:
  - id: t1-bedrock-10off
    provider: bedrock
    effective_from: "2026-01-01T00:00:00Z"
    source: "order form 2026-01"
    discount: "0.1"
"""


def dead_letters_by_tenant_month(pairs: list[tuple[str, bytes]], now: dt.datetime) -> dict[tuple[str, str], int]:
    """What statement_rejected must count, from the produced lines themselves: each too-late or
    bad line with a tenant, in the month of its ts when that has an offset, else of `now` (when
    the worker dead-lettered it)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for kind, line in pairs:
        if kind != "too_late" and not kind.startswith("bad:"):
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # no tenant
        tenant, ts = doc.get("tenant_id"), doc.get("ts")
        if not isinstance(tenant, str):
            continue
        when = dt.datetime.fromisoformat(ts) if isinstance(ts, str) and OFFSET_TS.match(ts) else now
        out[(tenant, when.astimezone(UTC).strftime("%Y-%m"))] += 1
    return out


def test_statement_totals_equal_the_rollups_and_explain_shows_the_ledger(kafka_service, clickhouse_service, tmp_path):
    catalog_dir = tmp_path / "catalog"
    shutil.copytree(SHIPPED_CATALOGS, catalog_dir)
    (catalog_dir / "overlays").mkdir()
    (catalog_dir / "overlays" / "tenant-1.yaml").write_text(OVERLAY)
    catalog = load_catalog(catalog_dir)
    stack = Stack(
        kafka_service.bootstrap, tmp_path, clickhouse_service.url, extra_env={"MS_CATALOG_DIR": str(catalog_dir)}
    )
    try:
        pairs = list(generate(1500, seed=21, now=NOW, duplicate_rate=0.05, late=12, too_late=3, bad=20))
        stack.produce([line for _, line in pairs])
        exp = expected_totals(stack.produced, catalog, partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        assert exp.rejected == 3 + 20  # every rejection is a too-late or a bad line
        stack.start_worker()
        stack.wait_until_exact(exp)
        run_started = dt.datetime.now(UTC)
        dead = dead_letters_by_tenant_month(pairs, run_started)
        oracle = as_rows(exp, "user", "month")
        seen_currencies, overlaid = set(), 0
        for tenant in TENANTS:
            for month in MONTHS:
                doc = json.loads(
                    stack.cli("statement", "--tenant", tenant, "--month", month, "--format", "json").stdout
                )
                start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
                want: dict[str, Decimal] = defaultdict(Decimal)  # the oracle: the engine over the same events
                for (ws, t, _user, cur), (cost, _n) in oracle.items():
                    if t == tenant and ws == start:
                        want[cur] += cost
                rolled = stack.query(
                    "SELECT currency, sum(cost) AS cost FROM rollup_user_month FINAL "
                    "WHERE tenant_id = {t:String} AND window_start = {m:DateTime64(3, 'UTC')} GROUP BY currency",
                    {"t": tenant, "m": start.strftime("%Y-%m-%d %H:%M:%S")},
                )
                rollups = {r["currency"]: Decimal(str(r["cost"])) for r in rolled}
                got = {s["currency"]: s for s in doc["currencies"]}
                assert {c: Decimal(s["total"]) for c, s in got.items()} == rollups == dict(want), (tenant, month)
                for s in got.values():
                    assert s["matches_rollups"] is True and s["total"] == s["rollup_total"]
                    assert Decimal(s["adjustment"]) == 0  # the line items add up to the ledger's cost
                    assert sum(Decimal(ln["amount"]) for m in s["models"] for ln in m["lines"]) == Decimal(s["total"])
                    overlaid += s["overlaid_events"]
                    if tenant != "tenant-1":
                        assert s["overlaid_events"] == 0 and s["list_total"] == s["total"]
                seen_currencies |= set(got)
                assert doc["dead_lettered"]["count"] == dead.get((tenant, month), 0), (tenant, month)
        assert seen_currencies == {"USD", "CNY"} and overlaid > 0
        assert sum(v for (_, m), v in dead.items() if m in MONTHS) >= 10  # the bad lines carry November ts
        # the dead-lettered counts also equal rejected_events counted per tenant directly, all months
        counted = stack.query(
            "SELECT tenant_id, count() AS n FROM rejected_events FINAL WHERE tenant_id IS NOT NULL GROUP BY tenant_id"
        )
        by_tenant: dict[str, int] = defaultdict(int)
        for (t, _), n in dead.items():
            by_tenant[t] += n
        assert {r["tenant_id"]: int(r["n"]) for r in counted} == dict(by_tenant)

        # explain: a counted event of the overlay tenant, on bedrock, and a dead-lettered one
        kind_line = next(
            line
            for kind, line in pairs
            if kind == "good" and b'"tenant-1"' in line and b'"bedrock"' in line and b"guardrail" not in line
        )
        priced = rate(kind_line, catalog, now=NOW + dt.timedelta(minutes=5))
        assert not isinstance(priced, Rejection)
        eid, tenant = priced["event_id"], priced["tenant_id"]
        doc = json.loads(stack.cli("explain", eid, "--format", "json").stdout)
        [ledger] = stack.query(
            "SELECT toString(cost) AS cost, toString(list_cost) AS list_cost FROM ledger FINAL "
            "WHERE tenant_id = {t:String} AND event_id = {e:String}",
            {"t": tenant, "e": eid},
        )
        assert Decimal(doc["cost"]) == Decimal(ledger["cost"]) == Decimal(priced["cost"])
        assert Decimal(doc["list_cost"]) == Decimal(ledger["list_cost"]) > Decimal(doc["cost"])
        assert doc["price_overlay"] == "t1-bedrock-10off" and doc["catalog_hash"] == catalog.content_hash
        assert [(i["dimension"], i["quantity"], i["amount"]) for i in doc["line_items"]] == [
            (i["dimension"], i["quantity"], i["cost"]) for i in priced["line_items"]
        ]
        assert all(i["source"] and i["overlay_source"] == "order form 2026-01" for i in doc["line_items"])
        bad = next(line for kind, line in pairs if kind == "bad:unknown_model")
        bad_id = orjson.loads(bad)["event_id"]
        proc = subprocess.run(CLI + ["explain", bad_id], env=stack.env, capture_output=True, timeout=120)
        assert proc.returncode == 1
        said = proc.stderr.decode().strip().splitlines()
        assert len(said) == 1 and f"no counted event '{bad_id}'" in said[0], said
        assert "it was dead-lettered" in said[0] and "gpt-17-ultra" in said[0]
    finally:
        stack.stop()
