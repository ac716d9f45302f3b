"""Install from a wheel: the wheel builds without warnings, installs cleanly in a fresh virtualenv
outside the repository, and its `meterstream` runs `migrate`, `up`, the demo and `down` from the
files it carries (the migrations and the Kafka scripts of ops/, as package data).

Nothing is downloaded but the build's own requirements (pip's isolated build environment, from
the package index or pip's cache): the fresh virtualenv gets the running (dev) environment's
site-packages for meterstream's *dependencies* through a .pth line, and `pip install --no-deps`
puts the wheel itself in. A .pth line only appends a directory to sys.path; the .pth files inside
that directory (the editable install's finder, whatever kind it is) are not processed, because it
is not a site directory, so the checkout's `streams` cannot leak in (and a non-editable copy in
that directory would come after the fresh virtualenv's own): the test checks that `streams`,
`pricing` and `schemas` are imported from the fresh virtualenv. The Kafka jars are the ones `make kafka-jars`
resolved into MS_KAFKA_CACHE (kafka.sh fetches nothing when they are there)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from streams.harness.stack import free_port
from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# left out of the copy the wheel is built from: setuptools puts whatever an earlier build left in
# build/lib into the wheel (a checkout's build/lib can hold files since removed from the sources)
ROOT_ONLY = {".git", ".venv", ".venv-bench", ".data", "build", "dist", ".pytest_cache", ".hypothesis"}


def clean_copy(dst: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == REPO_ROOT
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info") or (top and n in ROOT_ONLY)}

    shutil.copytree(REPO_ROOT, dst, symlinks=True, ignore=ignore)  # streams/ops-data stays links to ops/
    return dst


def kafka_cache() -> Path:
    """Where kafka.sh looks for the jars (its default, unless MS_KAFKA_CACHE says otherwise)."""
    if os.environ.get("MS_KAFKA_CACHE"):
        return Path(os.environ["MS_KAFKA_CACHE"])
    pom = (REPO_ROOT / "ops" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>(.*)</kafka.version>", pom).group(1)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meterstream" / f"kafka-{version}"


def noisy(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search("warning|deprecat", line, re.IGNORECASE)]


def pids_of(needle: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", needle], capture_output=True, text=True).stdout.split()


def test_the_wheel_installs_in_a_fresh_venv_and_runs_up_migrate_demo(tmp_path):
    jars = kafka_cache()
    assert (jars / ".complete").is_file(), f"no Kafka jars in {jars}: run `make kafka-jars` first"

    # no settings, PYTHONPATH or virtualenv of the parent, and every command run in tmp_path: with
    # the checkout on sys.path (PYTHONPATH, or the cwd of `python -m pip`) pip would take the
    # checkout's meterstream.egg-info for an installed meterstream
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "PYTHON")) and k != "VIRTUAL_ENV"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    # 1. the wheel, built from a clean copy of the checkout, without warnings
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(clean_copy(tmp_path / "src")),
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert not noisy(build.stdout + build.stderr), (build.stdout + build.stderr)[-3000:]
    wheel = next((tmp_path / "dist").glob("meterstream-*.whl"))

    # 2. a fresh virtualenv outside the repository, 3. the wheel installed in it, cleanly
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, check=True, capture_output=True, timeout=300, env=env
    )
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert not noisy(install.stdout + install.stderr), install.stdout + install.stderr
    assert "Successfully installed meterstream" in install.stdout
    # the dependencies from the running (dev) environment; written after the install, so that pip
    # never sees the dev environment's own meterstream
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    )
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_meterstream_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    assert not (site / "streams" / "ops-data" / "migrations").is_symlink()

    # 4. the console script, from outside the repository, with only the settings given here
    data = tmp_path / "data"
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        MS_DATA_DIR=str(data),
        MS_KAFKA_PORT=str(free_port()),
        MS_KAFKA_CONTROLLER_PORT=str(free_port()),
        MS_WEB_PORT=str(free_port()),
        MS_CLICKHOUSE_DATABASE="wheel",
        MS_KAFKA_CACHE=str(jars),
    )

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # a session of its own: on a timeout its children (the demo's worker) go with it
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{' '.join(args)} timed out: {(out + err)[-3000:]}") from None
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    meterstream = str(venv / "bin" / "meterstream")
    where = run(
        str(py),
        "-c",
        "import pricing, schemas, streams; from streams.settings import Settings; "
        "s = Settings(); print(pricing.__file__, schemas.__file__, streams.__file__); "
        "print(s.migrations_dir); print(s.kafka_script)",
    )
    assert where.returncode == 0, where.stderr[-2000:]
    *files, migrations_dir, script = map(Path, where.stdout.split())
    assert all(f.is_relative_to(site) for f in files), files  # the installed copies, not the checkout's
    assert migrations_dir.is_relative_to(venv) and script.is_relative_to(venv) and script.is_file()
    shipped = sorted(p.name for p in migrations_dir.glob("*.sql"))
    assert shipped == sorted(p.name for p in (REPO_ROOT / "ops" / "clickhouse" / "migrations").glob("*.sql"))

    first = run(meterstream, "migrate")
    assert first.returncode == 0, first.stderr[-2000:]
    assert [
        line.removeprefix("applied ") for line in first.stdout.splitlines() if line.startswith("applied ")
    ] == shipped
    second = run(meterstream, "migrate")
    assert second.returncode == 0 and "up to date" in second.stdout, second.stdout + second.stderr
    tables = run(
        str(py),
        "-c",
        "from streams.settings import Settings; from streams.storage import open_store; "
        "s = open_store(Settings()); print(sorted(r['name'] for r in s.query("
        "\"SELECT name FROM system.tables WHERE database = 'wheel'\")))",
    )
    assert "'ledger'" in tables.stdout and "'rollup_user_minute'" in tables.stdout, tables.stdout + tables.stderr

    broker = f"{data}/kafka/server.properties"
    try:
        up = run(meterstream, "up")
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"local broker at 127.0.0.1:{env['MS_KAFKA_PORT']}" in up.stderr, up.stderr
        assert "migrations applied: none new" in up.stderr, up.stderr  # the same database as migrate's
        assert len(pids_of(broker)) == 1
        status = run(meterstream, "status")
        assert "(running)" in status.stdout, status.stdout + status.stderr

        demo = run(meterstream, "demo", "--events", "300")
        assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
        assert "PASS" in demo.stdout and "FAIL" not in demo.stdout, demo.stdout[-4000:]
        assert pids_of(f"{py} -m streams.cli worker") == []  # the demo stopped its worker
        assert len(pids_of(broker)) == 1  # the broker of `up` stays up: the demo did not start its own
    finally:
        try:
            down = run(meterstream, "down", timeout=120)
        finally:
            leftover = pids_of(broker)
            for pid in leftover:  # only if `down` failed: this test's own broker
                os.kill(int(pid), signal.SIGKILL)
    assert down.returncode == 0, down.stderr
    assert leftover == [], f"java still running after `meterstream down`: {leftover}"
