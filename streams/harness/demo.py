"""`meterstream demo`: the whole pipeline on this machine, checked against the pricing engine.

Brings the stack up (a local broker unless MS_KAFKA_BOOTSTRAP names one), runs a worker,
produces a few thousand realistic events (duplicates, late events, a too-late one, bad inputs),
waits until every one is counted or dead-lettered, prints totals and the dead-letter summary,
checks ClickHouse totals against the engine's own over the same events, and shuts down."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

from rich.console import Console
from rich.table import Table

from pricing import load_catalog, money_str
from streams import services
from streams.analyst.reader import AnalystError, Reader
from streams.harness.expected import as_rows, diff, expected_totals, normalize
from streams.harness.generate import generate
from streams.kafka_security import kafka_security
from streams.producer import publish
from streams.settings import Settings

console = Console()


def run_demo(events: int = 3000, timeout_s: float = 300) -> bool:
    tag = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
    base = Settings()
    env = {k: v for k, v in os.environ.items()}
    # a fresh namespace per run: its own data directory, topics, consumer group and database
    env.update(
        {
            "MS_DATA_DIR": str(base.data_dir / "demo" / tag),
            "MS_APP_ID": f"demo-{tag}",
            "MS_EVENTS_TOPIC": f"demo-{tag}-events",
            "MS_DEAD_LETTER_TOPIC": f"demo-{tag}-dlq",
            "MS_SINK_TOPIC": f"demo-{tag}-sink",
            "MS_CLICKHOUSE_DATABASE": "demo_" + tag.replace("-", "_"),
        }
    )
    if base.local_kafka:
        # the broker's own state stays in the usual data directory
        env["MS_KAFKA_BOOTSTRAP"] = base.bootstrap
    os.environ.update(env)
    settings = Settings()
    started_broker = False
    worker = None
    try:
        console.rule("[bold]meterstream demo")
        if base.local_kafka and not services.kafka_running(base):
            console.print(f"starting Kafka on {base.bootstrap} (logs: {base.data_dir}/kafka/logs/server.log)")
            services.kafka_up(base)
            started_broker = True
        services.ensure_topics(settings)
        services.apply_migrations(settings)
        console.print(
            f"ClickHouse: {'server' if settings.clickhouse_url else 'embedded chDB at ' + str(settings.chdb_path)}"
        )
        log_path = settings.data_dir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
            env=os.environ.copy(),
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
        )  # noqa: SIM115
        console.print(f"worker started (pid {worker.pid}, log {log_path})")

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        produced = [
            line for _, line in generate(events, seed=2024, now=now, duplicate_rate=0.1, late=10, too_late=2, bad=24)
        ]
        publish(settings.bootstrap, settings.events_topic, produced, security=kafka_security(settings))
        console.print(f"produced {len(produced)} lines to {settings.events_topic}")
        exp = expected_totals(
            produced,
            load_catalog(settings.catalog_dir),
            partitions=settings.topic_partitions,
            now=dt.datetime.now(dt.UTC),
        )
        console.print(
            f"the engine expects: {exp.counted} counted, {exp.duplicates} duplicates dropped, "
            f"{exp.rejected} dead-lettered"
        )

        want = as_rows(exp, "user", "total")
        deadline = time.monotonic() + timeout_s
        got: dict = {}
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode}); see {log_path}")
            try:
                with Reader(settings) as reader:
                    got = normalize(reader.read("spend", by="user", window="total"), "user", "total")
                    n_rej = len(reader.read("rejects", limit=100_000))
            except AnalystError:
                got, n_rej = {}, -1
            if got == want and n_rej == exp.rejected:
                break
            time.sleep(1)

        with Reader(settings) as reader:
            ok = True
            for by in ("user", "model"):
                for window in ("minute", "hour", "day", "month", "total"):
                    rows = reader.read("spend", by=by, window=window)
                    d = diff(normalize(rows, by, window), as_rows(exp, by, window))
                    if d:
                        ok = False
                        console.print(f"[red]MISMATCH {by}/{window}: {d[:3]}")
            _print_totals(
                reader.read("spend", by="user", window="total"), "user_id", "Spend per user (top 10 per currency)"
            )
            _print_totals(reader.read("spend", by="model", window="total"), "model", "Spend per model")
            rej = reader.read("rejects", limit=100_000)
        reasons = Counter(r["reason"].split(":")[0] if r["reason"].startswith("too_late") else r["reason"] for r in rej)
        table = Table("dead-lettered", "reason", title="Dead letters")
        for reason, n in reasons.most_common():
            table.add_row(str(n), reason[:110])
        console.print(table)
        verdict = "[bold green]PASS" if ok and len(rej) == exp.rejected else "[bold red]FAIL"
        console.print(
            f"{verdict}[/]: ClickHouse totals per user and per model, every window (minute, hour, day, "
            f"total), equal the pricing engine's over the same {len(produced)} lines; "
            f"{len(rej)} of {exp.rejected} expected dead letters stored with reasons."
        )
        console.print(f"data kept in {settings.data_dir}")
        return ok and len(rej) == exp.rejected
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        if started_broker:
            services.kafka_down(base)


def _print_totals(rows: list[dict], who: str, title: str) -> None:
    table = Table("tenant", who, "currency", "cost", "events", title=title)
    per_currency: Counter = Counter()
    for r in sorted(rows, key=lambda r: (r["currency"], -r["cost"])):
        if who == "user_id" and per_currency[r["currency"]] >= 10:
            continue
        per_currency[r["currency"]] += 1
        table.add_row(r["tenant_id"], r[who], r["currency"], money_str(r["cost"]), str(r["events"]))
    console.print(table)
