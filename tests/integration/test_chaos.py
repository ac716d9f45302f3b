"""The short chaos run (ops/chaos/run.py --scenarios short): ~100k events with 10% duplicates,
the bad-input corpus and late events, while the worker is SIGKILLed 3 times, the broker restarts
once and the sink fails for 10 s; then 200 voids and 100 replacements through 2 more SIGKILLs.
Totals must equal the oracle's (moved by each correction's difference) and every alert arrive once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_short_chaos_run_is_exact(tmp_path):
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "ops" / "chaos" / "run.py"),
            "--scenarios",
            "short",
            "--json",
            str(out),
            "--timeout",
            "900",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["totals_diff"] == 0
    assert result["counted"] == result["oracle"]["counted"] > 80_000
    assert result["dead_lettered"] == result["oracle"]["rejected"] >= 137
    assert result["duplicates_dropped"] == result["oracle"]["duplicates"] > 5_000
    assert result["alerts_expected"] > 0 and result["alerts_delivered"] == result["alerts_expected"]
    assert result["alerts_repeated"] == 0 and not result["alerts_unexpected"]
    assert sum(f.startswith("SIGKILL at") for f in result["faults"]) == 3
    assert sum(f == "SIGKILL while corrections are applied" for f in result["faults"]) == 2
    assert "200 voids and 100 replacements" in result["faults"]
    assert any(f.startswith("broker stopped") for f in result["faults"])
    assert any(f.startswith("sink failing") for f in result["faults"])
