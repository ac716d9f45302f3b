"""Canonical placement: a producer that does not key by tenant_id/user_id (round-robin, as a log
shipper or a second region would) sends retries to other partitions. The rater forwards every
event read off its canonical partition to that partition, so duplicates meet there: the totals
are exact, and the ledger (one row per event id) equals the rollups."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from pricing import load_catalog
from streams.harness.expected import as_rows, expected_totals, normalize
from streams.harness.generate import generate
from streams.harness.stack import Stack

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_unkeyed_round_robin_producer_with_duplicates_is_exact(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url)
    try:
        lines = [line for _, line in generate(6000, seed=71, now=NOW, duplicate_rate=0.1, bad=10)]
        rnd = random.Random(7)
        lines += [rnd.choice(lines[:3000]) for _ in range(600)]  # retries, anywhere in the stream
        exp = expected_totals(lines, load_catalog(), partitions=stack.partitions, now=NOW + dt.timedelta(minutes=5))
        assert exp.duplicates > 600
        stack.produce_unkeyed(lines, batch=40, seed=3)
        port = stack.start_worker()
        stack.wait_until_exact(exp, timeout=240)
        for by, window in (("user", "minute"), ("model", "day")):
            assert normalize(stack.report(by, window), by, window) == as_rows(exp, by, window)
        ledger = stack.query("SELECT count() AS n, sum(cost) AS c FROM ledger FINAL")[0]
        rollups = stack.query("SELECT sum(events) AS n, sum(cost) AS c FROM spend_by_user_day")[0]
        assert int(ledger["n"]) == int(rollups["n"]) == exp.counted
        assert Decimal(ledger["c"]) == Decimal(rollups["c"])
        stats = stack.health(port)["stats"]
        assert stats["forwarded"] > len(lines) // 2  # most lines were read off their canonical partition
        # every ledger row sits on its canonical partition
        from streams.harness.expected import partition_for

        rows = stack.query("SELECT tenant_id, user_id, src_partition FROM ledger FINAL")
        assert all(
            partition_for(f"{r['tenant_id']}/{r['user_id']}".encode(), stack.partitions) == int(r["src_partition"])
            for r in rows
        )
    finally:
        stack.stop()
