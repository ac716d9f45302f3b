"""A whole meterstream stack for pipeline tests: the session's Kafka broker, its own topics,
workers as real subprocesses (`meterstream worker`), reads through `meterstream report`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from pricing import load_catalog
from streams.expected import Expected, as_rows, diff, expected_totals, normalize  # noqa: F401
from streams.producer import publish
from tests.conftest import free_port

CLI = [sys.executable, "-m", "streams.cli"]


class Stack:
    def __init__(self, bootstrap: str, tmp: Path, clickhouse_url: str | None = None, partitions: int = 4) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.tmp = tmp
        self.partitions = partitions
        self.ports: list[int] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
        self.env.update({
            "MS_KAFKA_BOOTSTRAP": bootstrap, "MS_DATA_DIR": str(tmp / "data"), "MS_APP_ID": f"ms-{tag}",
            "MS_EVENTS_TOPIC": f"ev-{tag}", "MS_DEAD_LETTER_TOPIC": f"dlq-{tag}", "MS_SINK_TOPIC": f"sink-{tag}",
            "MS_TOPIC_PARTITIONS": str(partitions), "MS_CLICKHOUSE_DATABASE": f"db_{tag}",
        })
        if clickhouse_url:
            self.env["MS_CLICKHOUSE_URL"] = clickhouse_url
        self.workers: dict[int, subprocess.Popen] = {}
        self.produced: list[bytes] = []
        self.cli("up")

    def cli(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(CLI + list(args), env=env or self.env, capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise AssertionError(f"meterstream {' '.join(args)} failed: {proc.stderr.decode()[-3000:]}")
        return proc

    def start_worker(self, port: int | None = None) -> int:
        port = port or free_port()
        if port not in self.ports:
            self.ports.append(port)
        self.env["MS_WORKER_URL"] = ",".join(f"http://127.0.0.1:{p}" for p in self.ports)
        log = open(self.tmp / f"worker-{port}.log", "ab")  # noqa: SIM115
        self.workers[port] = subprocess.Popen(CLI + ["worker", "--web-port", str(port), "--loglevel", "warning"],
                                              env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return port

    def kill_worker(self, port: int, sig: int = signal.SIGKILL) -> None:
        proc = self.workers.pop(port)
        proc.send_signal(sig)
        proc.wait(60)

    def stop(self) -> None:
        for port in list(self.workers):
            self.kill_worker(port, signal.SIGTERM)

    def produce(self, lines: list[bytes]) -> None:
        publish(self.bootstrap, self.env["MS_EVENTS_TOPIC"], lines)
        self.produced.extend(lines)

    def health(self, port: int) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            return json.loads(resp.read())

    def wait_for_progress(self, port: int, at_least: int, timeout: float = 120) -> int:
        """Wait until this worker process has handled `at_least` inputs; return how many."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                handled = sum(self.health(port)["stats"].values())
                if handled >= at_least:
                    return handled
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        raise AssertionError(f"worker {port} handled fewer than {at_least} inputs in {timeout}s")

    def report(self, by: str, window: str) -> list[dict]:
        out = self.cli("report", "--by", by, "--window", window, "--format", "json").stdout
        rows = json.loads(out)
        assert all(isinstance(r["cost"], str) for r in rows)  # decimal strings, never floats
        return rows

    def rejects(self) -> list[dict]:
        return json.loads(self.cli("rejects", "--format", "json", "--limit", "100000").stdout)

    def expected(self, now: dt.datetime) -> Expected:
        return expected_totals(self.produced, load_catalog(), partitions=self.partitions, now=now)

    def wait_until_exact(self, exp: Expected, timeout: float = 240) -> None:
        want = as_rows(exp, "user", "total")
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                got = normalize(self.report("user", "total"), "user", "total")
                if got == want and len(self.rejects()) == exp.rejected:
                    return
            except AssertionError:
                pass  # e.g. no worker holds the store during a restart
            time.sleep(2)
        raise AssertionError(f"totals did not converge: {len(got or {})} rows vs {len(want)} expected; "
                             f"differences: {diff(got or {}, want)[:10]}")
