"""Live catalog updates through the real broker, worker and ClickHouse engine: `meterstream
catalog publish` switches a running worker to a new version (a price change and a tenant
overlay) without a restart; what was counted before keeps its price and version, everything
after is priced with the new one, through a SIGKILL and a restart; a bad catalog is refused
before anything is sent, and an unsigned catalog record at the rater; `catalog status` shows
the version each partition runs."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from decimal import Decimal

import orjson
import pytest

from pricing import load_catalog
from pricing.bundle import bundle_hash, read_bundle
from pricing.catalog import SHIPPED_CATALOGS
from pricing.rating import rate
from schemas.catalog_record import CATALOG_HEADER, encode
from streams.harness.stack import CLI
from streams.producer import make_producer

pytestmark = pytest.mark.integration

OVERLAY = """tenant_id: acme
rules:
  - id: acme-openai-10off
    provider: openai
    effective_from: "2026-01-01T00:00:00Z"
    source: "test contract, 2026-01"
    discount: "0.10"
"""


def events(tag: str, n: int, now: dt.datetime) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "event_id": f"{tag}-{i}",
                "ts": (now - dt.timedelta(seconds=i)).isoformat(),
                "tenant_id": "acme" if i % 2 else "other",
                "user_id": f"u{i % 7}",
                "provider": "openai",
                "model": "gpt-4o",
                "usage": {"input_tokens": 1000 + i, "output_tokens": 10 + i},
            }
        )
        for i in range(n)
    ]


def ledger(stack) -> dict[str, dict]:
    rows = stack.query(
        "SELECT event_id, toString(cost) AS cost, toString(list_cost) AS list_cost, "
        "price_overlay, catalog_hash FROM ledger FINAL"
    )
    return {r["event_id"]: r for r in rows}


def wait_rows(stack, n: int, timeout: float = 180) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        stack.restart_exited()
        try:
            rows = ledger(stack)
            if len(rows) >= n:
                return rows
        except AssertionError:
            pass  # no worker holds the store during a restart
        time.sleep(1)
    raise AssertionError(f"{len(rows)} ledger rows, expected {n}")


def status_with(stack, content_hash: str, timeout: float) -> str:
    """`catalog status` once every partition (4) reports the version, or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status = stack.cli("catalog", "status").stdout.decode()
        if status.count(content_hash) >= 4 or time.monotonic() > deadline:
            return status
        time.sleep(2)


def test_publish_switches_a_running_worker_and_reprices_nothing_counted(stack, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    new_dir = tmp_path / "catalog-v2"
    shutil.copytree(SHIPPED_CATALOGS, new_dir)
    text = (new_dir / "openai-usd.yaml").read_text()
    line = '- {dimension: input_tokens,        per: 1000000, price: "2.50"}'
    (new_dir / "openai-usd.yaml").write_text(text.replace(line, line.replace('"2.50"', '"3.00"'), 1))
    (new_dir / "overlays").mkdir()
    (new_dir / "overlays" / "acme.yaml").write_text(OVERLAY)
    old, new = load_catalog(), load_catalog(new_dir)
    assert old.content_hash != new.content_hash

    before, after = events("before", 40, now), events("after", 40, now)
    stack.start_worker()
    stack.produce(before)
    rows = wait_rows(stack, 40)

    bad_dir = tmp_path / "catalog-bad"
    shutil.copytree(new_dir, bad_dir)
    (bad_dir / "overlays" / "acme.yaml").write_text(OVERLAY.replace('"0.10"', '"1.5"'))
    records = stack.records()
    refused = subprocess.run(
        [*CLI, "catalog", "publish", str(bad_dir)], env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "refused" in refused.stderr and "discount" in refused.stderr, refused.stderr
    assert stack.records() == records  # nothing was sent

    published = stack.cli("catalog", "publish", str(new_dir)).stdout.decode()
    assert new.content_hash in published and "p0@" in published and "p3@" in published
    # a producer that may write events may not change prices: an unsigned catalog record
    rogue = dict(read_bundle(new_dir), **{"openai-usd.yaml": text.replace(line, line.replace('"2.50"', '"0.01"'), 1)})
    producer = make_producer(stack.bootstrap)
    producer.send(
        stack.events_topic, value=encode(bundle_hash(rogue), rogue), partition=0, headers=[CATALOG_HEADER]
    ).get(timeout=60)
    producer.close()
    stack.produce(after[:20])
    wait_rows(stack, 60)
    port = next(iter(stack.workers))
    stack.kill_worker(port)  # SIGKILL: what was not committed is replayed by the next process
    stack.start_worker(port)
    stack.produce(after[20:])
    rows = wait_rows(stack, 80)

    for raw in before:
        want = rate(raw, old, now=now + dt.timedelta(minutes=5))
        got = rows[want["event_id"]]
        assert (got["cost"], got["list_cost"], got["price_overlay"], got["catalog_hash"]) == (
            want["cost"],
            want["cost"],
            "",
            old.content_hash,
        )
    for raw in after:
        want = rate(raw, new, now=now + dt.timedelta(minutes=5))
        got = rows[want["event_id"]]
        assert Decimal(got["cost"]) == Decimal(want["cost"]) and Decimal(got["list_cost"]) == Decimal(want["list_cost"])
        assert got["catalog_hash"] == new.content_hash
        acme = want["tenant_id"] == "acme"
        assert got["price_overlay"] == ("acme-openai-10off" if acme else "")
        assert (
            (Decimal(got["cost"]) == Decimal(got["list_cost"]) * Decimal("0.9"))
            if acme
            else (got["cost"] == got["list_cost"])
        )
    # the new input price, by hand: 1,000 input tokens at $3.00/M + 10 output at $10.00/M
    assert Decimal(rows["after-0"]["cost"]) == Decimal("0.0031")
    total = sum(Decimal(r["cost"]) for r in rows.values())
    report = sum(Decimal(r["cost"]) for r in stack.report("user", "total"))
    assert report == total  # the rollups add the tenant's price

    [rogue_row] = stack.query("SELECT reason FROM rejected_events FINAL")
    assert rogue_row["reason"].startswith("catalog record refused: not signed with the catalog key")
    status = status_with(stack, new.content_hash, timeout=60)
    assert status.count(new.content_hash) >= 4, status  # every partition runs the new version
    assert old.content_hash in status  # the worker's own catalog


def test_two_raters_switch_at_the_same_offsets_and_a_takeover_keeps_the_version(stack, tmp_path):
    """Two raters share the partitions; after the publish one is SIGKILLed and the other takes
    its partitions over, restoring their versions from the changelog: every event after the
    record is priced with the new version, whichever rater read it."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    new_dir = tmp_path / "catalog-v2"
    shutil.copytree(SHIPPED_CATALOGS, new_dir)
    (new_dir / "overlays").mkdir()
    (new_dir / "overlays" / "other.yaml").write_text(OVERLAY.replace("acme", "other").replace('"0.10"', '"0.25"'))
    old, new = load_catalog(), load_catalog(new_dir)
    before, after = events("before", 60, now), events("after", 120, now)
    stack.start_worker(role="sink")
    rate_a = stack.start_worker(role="rate")
    rate_b = stack.start_worker(role="rate")
    stack.produce(before)
    wait_rows(stack, 60)
    stack.cli("catalog", "publish", str(new_dir))
    stack.produce(after[:60])
    wait_rows(stack, 120)
    stack.kill_worker(rate_a)  # its partitions move to rate_b, with their state
    stack.produce(after[60:])
    rows = wait_rows(stack, 180)
    for lines, catalog in ((before, old), (after, new)):
        for raw in lines:
            want = rate(raw, catalog, now=now + dt.timedelta(minutes=5))
            got = rows[want["event_id"]]
            assert (Decimal(got["cost"]), got["catalog_hash"]) == (Decimal(want["cost"]), catalog.content_hash)
    assert any(r["price_overlay"] for r in rows.values())  # the new version's overlay applied
    status = status_with(stack, new.content_hash, timeout=90)
    assert status.count(new.content_hash) >= 4, status
    assert f":{stack.workers[rate_b].pid}" in status


def test_an_older_publication_written_again_is_refused_and_prices_stay(stack, tmp_path):
    """A rollback: anyone who may write events copies a superseded, validly sealed catalog record
    (gpt-4o input at $0.01/M) and writes it again after the current one ($3.00/M). Every rater
    refuses it with the reason; the events after it keep the current price."""
    from kafka import KafkaConsumer, TopicPartition

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    line = '- {dimension: input_tokens,        per: 1000000, price: "2.50"}'
    dirs = {}
    for name, price in (("cheap", "0.01"), ("current", "3.00")):
        dirs[name] = tmp_path / name
        shutil.copytree(SHIPPED_CATALOGS, dirs[name])
        text = (dirs[name] / "openai-usd.yaml").read_text()
        (dirs[name] / "openai-usd.yaml").write_text(text.replace(line, line.replace('"2.50"', f'"{price}"'), 1))
    current = load_catalog(dirs["current"])
    stack.start_worker()
    stack.produce(events("before", 10, now))
    wait_rows(stack, 10)  # the worker is up (and has written the catalog key)
    stack.cli("catalog", "publish", str(dirs["cheap"]))
    stack.cli("catalog", "publish", str(dirs["current"]))

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    old = {}
    for p in range(4):
        tp = TopicPartition(stack.events_topic, p)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        old[p] = next(r for r in consumer if CATALOG_HEADER in r.headers)  # the first publication
    consumer.close()
    producer = make_producer(stack.bootstrap)
    for p, r in old.items():  # as it was written: value, sequence and seal
        producer.send(stack.events_topic, value=r.value, partition=p, headers=list(r.headers)).get(timeout=60)
    producer.close()
    after = events("after", 40, now)
    stack.produce(after)
    rows = wait_rows(stack, 50)
    for raw in after:
        want = rate(raw, current, now=now + dt.timedelta(minutes=5))
        got = rows[want["event_id"]]
        assert (Decimal(got["cost"]), got["catalog_hash"]) == (Decimal(want["cost"]), current.content_hash)
    assert Decimal(rows["after-0"]["cost"]) == Decimal("0.0031")  # 1,000 input at $3.00/M + 10 output at $10.00/M
    deadline = time.monotonic() + 60
    while len(reasons := [r["reason"] for r in stack.query("SELECT reason FROM rejected_events FINAL")]) < 4:
        assert time.monotonic() < deadline, reasons
        time.sleep(1)
    assert len(reasons) == 4 and all("is not above" in r and "roll prices back" in r for r in reasons), reasons
