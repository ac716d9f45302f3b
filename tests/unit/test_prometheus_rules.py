"""ops/prometheus/alerts.yml is valid (`promtool check rules`) and does what its tests say
(`promtool test rules ops/prometheus/alerts_test.yml`); ops/prometheus/install.sh installs
promtool in CI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (ops/prometheus/install.sh)"
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=HERE, capture_output=True, text=True, timeout=120)


def test_the_alert_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_the_alert_rules_fire_as_their_tests_say() -> None:
    done = promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_a_broken_rule_test_fails(tmp_path: Path) -> None:
    """promtool's verdict is read, not assumed: an expectation that cannot hold fails."""
    shutil.copy(HERE / "alerts.yml", tmp_path / "alerts.yml")
    broken = (HERE / "alerts_test.yml").read_text().replace('instance: "w1:6066"}', 'instance: "w9:6066"}', 1)
    (tmp_path / "alerts_test.yml").write_text(broken)
    done = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_the_scrape_template_is_a_valid_config(tmp_path: Path) -> None:
    config = (HERE / "scrape.yml.example").read_text()
    config = config.replace("/etc/prometheus/meterstream-alerts.yml", str(HERE / "alerts.yml"))
    for name in ("meterstream-web-token", "meterstream-ingest-token"):
        (tmp_path / name).write_text("x" * 32)
        config = config.replace(f"/etc/prometheus/{name}", str(tmp_path / name))
    (tmp_path / "prometheus.yml").write_text(config)
    done = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
