"""A non-editable install: the wheel carries what `meterstream migrate` and `up` need from ops/
(the migrations, the Kafka scripts), and building it prints no warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_the_wheel_installs_and_migrates_from_its_own_files(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "-w",
                            str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "warning" not in (build.stdout + build.stderr).lower(), (build.stdout + build.stderr)[-3000:]
    wheel = next((tmp_path / "dist").glob("meterstream-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert not (target / "streams" / "ops-data" / "migrations").is_symlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
    env.update(PYTHONPATH=str(target), MS_DATA_DIR=str(tmp_path / "data"), MS_CLICKHOUSE_DATABASE="wheel")
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=300)
    where = run("-c", "import streams, sys; from streams.settings import Settings; s = Settings(); "
                      "print(streams.__file__); print(len(list(s.migrations_dir.glob('*.sql')))); "
                      "print(s.kafka_script.is_file())")
    file, migrations, script = where.stdout.split()
    assert Path(file).is_relative_to(target), file  # the installed copy, not the checkout
    assert int(migrations) == len(list((REPO_ROOT / "ops" / "clickhouse" / "migrations").glob("*.sql")))
    assert script == "True"
    first = run("-m", "streams.cli", "migrate")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("applied ") == int(migrations)
    second = run("-m", "streams.cli", "migrate")
    assert "up to date" in second.stdout
    tables = run("-c", "from streams.settings import Settings; from streams.storage import open_store; "
                       "s = open_store(Settings()); print(sorted(r['name'] for r in s.query("
                       "\"SELECT name FROM system.tables WHERE database = 'wheel'\")))")
    assert "'ledger'" in tables.stdout and "'rollup_user_minute'" in tables.stdout, tables.stdout + tables.stderr
