"""A whole meterstream stack run from the outside, for integration tests, benchmarks and chaos
runs: a Kafka broker (the project's own, or one given), its own topics and ClickHouse database,
workers as real subprocesses (`meterstream worker`), reads through `meterstream report`."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from pricing import load_catalog
from schemas.batch import BATCH_HEADER
from streams.harness.expected import Expected, as_rows, diff, expected_totals, normalize
from streams.kafka_security import PLAINTEXT, KafkaSecurity
from streams.producer import publish
from streams.settings import REPO_ROOT

CLI = [sys.executable, "-m", "streams.cli"]
KAFKA_SH = REPO_ROOT / "ops" / "kafka" / "kafka.sh"
# The knobs of ops/kafka/kafka.sh a harness broker takes from the caller's environment: where the
# Kafka jars are cached, how long a start may take, the python of its readiness check. Every other
# MS_* setting of a broker or a stack is given explicitly (its constructor's arguments, extra_env).
BROKER_KNOBS = ("MS_KAFKA_CACHE", "MS_KAFKA_START_TIMEOUT", "MS_PYTHON")


def outside_env(keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The caller's environment without meterstream's settings (MS_*), but for `keep`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MS_") or k in keep}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """The project's own Kafka broker (ops/kafka/kafka.sh) in a data directory of its own, on
    free ports; it can be stopped and started again on the same ports and data. `extra_env`: more
    of kafka.sh's settings, e.g. its SASL_SSL listener (MS_KAFKA_SASL_SSL_PORT, ...)."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = dict(
            outside_env(BROKER_KNOBS),
            MS_DATA_DIR=str(data_dir),
            MS_KAFKA_PORT=str(self.port),
            MS_KAFKA_CONTROLLER_PORT=str(free_port()),
        )
        self.env.setdefault("MS_PYTHON", sys.executable)
        self.env.update(extra_env or {})
        self.bootstrap = f"127.0.0.1:{self.port}"
        sasl_port = self.env.get("MS_KAFKA_SASL_SSL_PORT")
        self.sasl_ssl_bootstrap = f"127.0.0.1:{sasl_port}" if sasl_port else None

    def start(self) -> Broker:
        subprocess.run(["bash", str(KAFKA_SH), "start"], env=self.env, check=True)
        return self

    def stop(self) -> None:
        subprocess.run(["bash", str(KAFKA_SH), "stop"], env=self.env, check=False)

    def pid(self) -> int | None:
        pidfile = self.data_dir / "kafka" / "kafka.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Stack:
    """`security`: how every client of the stack (its subprocesses and its own producer) talks to
    the broker at `bootstrap`."""

    def __init__(
        self,
        bootstrap: str,
        tmp: Path,
        clickhouse_url: str | None = None,
        partitions: int = 4,
        extra_env: dict[str, str] | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.security = security
        self.tmp = tmp
        self.partitions = partitions
        self.ports: list[int] = []
        self.env = outside_env()
        self.env.update(
            {
                "MS_KAFKA_BOOTSTRAP": bootstrap,
                "MS_DATA_DIR": str(tmp / "data"),
                "MS_APP_ID": f"ms-{tag}",
                "MS_EVENTS_TOPIC": f"ev-{tag}",
                "MS_DEAD_LETTER_TOPIC": f"dlq-{tag}",
                "MS_SINK_TOPIC": f"sink-{tag}",
                "MS_BUDGETS_TOPIC": f"budgets-{tag}",
                "MS_ALERTS_TOPIC": f"alerts-{tag}",
                "MS_ALERT_LOG_TOPIC": f"alertlog-{tag}",
                "MS_CATALOG_STATUS_TOPIC": f"catstatus-{tag}",
                "MS_TOPIC_PARTITIONS": str(partitions),
                "MS_CLICKHOUSE_DATABASE": f"db_{tag}",
            }
        )
        if clickhouse_url:
            self.env["MS_CLICKHOUSE_URL"] = clickhouse_url
        self.env.update(security.env())
        self.env.update(extra_env or {})
        self.workers: dict[int, subprocess.Popen] = {}
        self.roles: dict[int, str] = {}
        self.produced: list[bytes] = []
        self.cli("up")

    @property
    def events_topic(self) -> str:
        return self.env["MS_EVENTS_TOPIC"]

    def cli_result(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """`meterstream ARGS` as it ended, whatever its exit code."""
        return subprocess.run(CLI + list(args), env=env or self.env, capture_output=True, timeout=timeout)

    def cli(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = self.cli_result(*args, env=env, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"meterstream {' '.join(args)} failed: {proc.stderr.decode()[-3000:]}")
        return proc

    def start_worker(self, port: int | None = None, env: dict[str, str] | None = None, role: str | None = None) -> int:
        """Start `meterstream worker --role ROLE` (default: the role this port had, else all)."""
        port = port or free_port()
        role = role or self.roles.get(port, "all")
        self.roles[port] = role
        if port not in self.ports:
            self.ports.append(port)
        self.env["MS_WORKER_URL"] = ",".join(f"http://127.0.0.1:{p}" for p in self.ports)
        log = open(self.tmp / f"worker-{port}.log", "ab")  # noqa: SIM115
        self.workers[port] = subprocess.Popen(
            CLI + ["worker", "--web-port", str(port), "--role", role, "--loglevel", "warning"],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return port

    def kill_worker(self, port: int, sig: int = signal.SIGKILL) -> None:
        proc = self.workers.pop(port)
        proc.send_signal(sig)
        proc.wait(60)

    def restart_exited(self) -> list[int]:
        """Restart workers that exited by themselves (as a supervisor would); their ports."""
        exited = [port for port, proc in self.workers.items() if proc.poll() is not None]
        for port in exited:
            self.workers.pop(port)
            self.start_worker(port)
        return exited

    def stop(self) -> None:
        for port in list(self.workers):
            self.kill_worker(port, signal.SIGTERM)

    def produce(self, lines: list[bytes], batch: bool = True) -> None:
        """Publish the lines (streams.producer.publish): batched per partition unless `batch` is False."""
        publish(self.bootstrap, self.events_topic, lines, security=self.security, batch=batch)
        self.produced.extend(lines)

    def produce_unkeyed(self, lines: list[bytes], *, batch: int = 40, seed: int = 1) -> None:
        """Publish the lines as a producer that ignores their key would: runs of 1..`batch` lines
        as batch records (mixed keys inside) or single records, each to the next partition in
        turn (a round-robin log shipper)."""
        import random

        from kafka import KafkaProducer

        rnd = random.Random(seed)
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=2 * 1024 * 1024,
            **self.security.kafka_python(bootstrap_timeout_ms=30_000),
        )
        i, p = 0, 0
        while i < len(lines):
            n = rnd.randint(1, batch)
            run = [line for line in lines[i : i + n] if b"\n" not in line]
            if n == 1 or len(run) < n:
                producer.send(self.events_topic, value=lines[i], partition=p)
                i += 1
            else:
                producer.send(self.events_topic, value=b"\n".join(run), partition=p, headers=[BATCH_HEADER])
                i += n
            p = (p + 1) % self.partitions
        producer.flush()
        producer.close()
        self.produced.extend(lines)

    def records(self) -> int:
        """Records on the events topic (a batched record carries many events)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, **self.security.kafka_python(bootstrap_timeout_ms=30_000)
        )
        try:
            tps = [TopicPartition(self.events_topic, p) for p in range(self.partitions)]
            return sum(consumer.end_offsets(tps).values())
        finally:
            consumer.close()

    def token(self) -> str:
        """The workers' bearer token: MS_WEB_TOKEN, or the one the first worker wrote."""
        if "MS_WEB_TOKEN" in self.env:
            return self.env["MS_WEB_TOKEN"]
        return (Path(self.env["MS_DATA_DIR"]) / "web-token").read_text().strip()

    def request(self, port: int, path: str, body: dict | None = None, *, timeout: float = 60) -> tuple[int, Any]:
        """(status, decoded JSON) of a GET (no body) or JSON POST to a worker, with the token."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read(), parse_float=Decimal)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def post(self, port: int, path: str, body: dict) -> tuple[int, Any]:
        return self.request(port, path, body)

    def health(self, port: int) -> dict:
        """A worker's /status (counters, recoveries); OSError while it is not listening."""
        status, body = self.request(port, "/status", timeout=5)
        if status != 200:
            raise OSError(f"status {status}: {body}")
        return body

    def handled(self, port: int) -> int:
        stats = self.health(port)["stats"]
        return stats.get("counted", 0) + stats.get("rejected", 0) + stats.get("duplicates", 0)

    def wait_for_progress(self, port: int, at_least: int, timeout: float = 240) -> int:
        """Wait until this worker process has handled `at_least` inputs; return how many."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                handled = self.handled(port)
                if handled >= at_least:
                    return handled
            except OSError:
                pass  # not listening yet (or no token written yet)
            time.sleep(0.2)
        raise AssertionError(f"worker {port} handled fewer than {at_least} inputs in {timeout}s")

    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        """An analyst's SELECT through a worker's /sql endpoint (the worker holds the embedded engine)."""
        problems = []
        for port in self.ports:
            try:
                status, body = self.request(port, "/sql", {"sql": sql, "params": params or {}})
            except OSError as exc:
                problems.append(str(exc))
                continue
            if status == 200:
                return body
            problems.append(f"{status}: {body}")
        raise AssertionError(f"no worker answered the query: {problems}")

    def report(self, by: str, window: str) -> list[dict]:
        out = self.cli("report", "--by", by, "--window", window, "--format", "json").stdout
        rows = json.loads(out)
        assert all(isinstance(r["cost"], str) for r in rows)  # decimal strings, never floats
        return rows

    def rejects(self) -> list[dict]:
        return json.loads(self.cli("rejects", "--format", "json", "--limit", "10000000").stdout)

    def expected(self, now: dt.datetime) -> Expected:
        return expected_totals(self.produced, load_catalog(), partitions=self.partitions, now=now)

    def wait_until_exact(self, exp: Expected, timeout: float = 240, *, by: str = "user") -> None:
        want = as_rows(exp, by, "total")
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            self.restart_exited()
            try:
                got = normalize(self.report(by, "total"), by, "total")
                if got == want and self.count_rejected() == exp.rejected:
                    return
            except AssertionError:
                pass  # e.g. no worker holds the store during a restart
            time.sleep(2)
        raise AssertionError(
            f"totals did not converge: {len(got or {})} rows vs {len(want)} expected; "
            f"differences: {diff(got or {}, want)[:10]}"
        )

    def count_rejected(self) -> int:
        return int(self.query("SELECT count() AS n FROM rejected_events FINAL")[0]["n"])


ALERT_THRESHOLDS = ("0.25", "0.5", "0.9", "1", "2")


def budgets_for(exp: Expected) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-tenant daily USD budgets sized from the oracle's spend, so several thresholds are
    crossed, and the alert keys that must then be delivered (one per crossing)."""
    spend: dict[tuple[str, int], Decimal] = {}
    for (window, start, tenant, _user, currency), (cost, _n) in exp.by_user.items():
        if window == "day" and currency == "USD" and start is not None:
            spend[(tenant, start)] = spend.get((tenant, start), Decimal(0)) + cost
    budgets, keys = [], []
    for tenant in sorted({t for t, _ in spend}):
        top = max(v for (t, _), v in spend.items() if t == tenant)
        amount = (top / Decimal("1.2")).quantize(Decimal("0.01"))  # ~120% of the busiest day: "1" fires there
        bid = f"chaos-{tenant}"
        budgets.append(
            {
                "id": bid,
                "tenant_id": tenant,
                "period": "day",
                "currency": "USD",
                "amount": str(amount),
                "thresholds": list(ALERT_THRESHOLDS),
            }
        )
        for (t, start), v in sorted(spend.items()):
            if t != tenant:
                continue
            day = dt.datetime.fromtimestamp(start / 1000, dt.UTC).strftime("%Y-%m-%d")
            keys += [f"{bid}|{day}|{Decimal(th).normalize()}" for th in ALERT_THRESHOLDS if v >= amount * Decimal(th)]
    return budgets, sorted(keys)


def alerts_in_topic(stack: Stack) -> list[str]:
    """The keys of the alerts in the spend_alerts topic, in order, read to its end offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=stack.bootstrap,
        enable_auto_commit=False,
        **stack.security.kafka_python(bootstrap_timeout_ms=30_000),
    )
    try:
        tp = TopicPartition(stack.env["MS_ALERTS_TOPIC"], 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        keys: list[str] = []
        while consumer.position(tp) < end:
            for msgs in consumer.poll(timeout_ms=1000).values():
                keys.extend(m.key.decode() for m in msgs if m.value is not None)
        return keys
    finally:
        consumer.close()
