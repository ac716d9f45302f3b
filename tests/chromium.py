"""Headless Chromium for the dashboard's tests (tests/unit/test_dashboard.py,
tests/integration/test_dashboard.py): open a page, read the DOM its script drew, take a
screenshot. Chromium is Debian's `chromium` package (ops/chromium/install.sh, which CI runs); a
test is skipped only when it cannot be installed, with the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from streams.settings import REPO_ROOT

INSTALL = REPO_ROOT / "ops" / "chromium" / "install.sh"
PNG = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    """The chromium binary: installed by ops/chromium/install.sh when missing; else the test is
    skipped, saying why."""
    found = shutil.which("chromium")
    if found:
        return found
    try:
        proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium is not installed and ops/chromium/install.sh could not run: {exc}")
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        why = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        pytest.skip(f"chromium cannot be installed here (ops/chromium/install.sh): {why[0]}")
    return found


def _run(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ms-chromium-") as profile:
        cmd = [
            chromium(),
            "--headless=new",
            # the sandbox needs user namespaces a container (and root, as CI runs) does not give
            # Chromium: without --no-sandbox it refuses to start as root
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
            page.resolve().as_uri(),
        ]
        env = {**os.environ, "HOME": profile}  # nothing of the browser's written outside the profile
        return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)


def dump_dom(page: Path) -> str:
    """The page's DOM after its script ran (chromium --dump-dom)."""
    proc = _run(page, "--dump-dom")
    assert proc.returncode == 0 and proc.stdout, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


def screenshot(page: Path, out: Path, size: str = "1400,2400") -> bytes:
    """A PNG of the page drawn at `size` (width,height)."""
    proc = _run(page, f"--screenshot={out}", f"--window-size={size}", "--hide-scrollbars")
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode(errors="replace")[-2000:]
    return out.read_bytes()


class Dom(HTMLParser):
    """What a test reads of the drawn page: the body's data attributes, each panel's (by its
    data-panel) kind and data-series, the text of every table cell and the number of elements
    of each tag."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.body: dict[str, str] = {}
        self.panels: dict[str, dict[str, Any]] = {}
        self.cells: list[str] = []
        self.tags: dict[str, int] = {}
        self.title = ""
        self._in: list[str] = []
        self._text: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "body":
            self.body = a
        if tag == "section" and "data-panel" in a:
            self.panels[a["data-panel"]] = {"kind": a.get("data-kind"), "series": json.loads(a["data-series"])}
        if tag in ("td", "title"):
            self._text = []
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "title") and self._text is not None:
            text = "".join(self._text)
            if tag == "td":
                self.cells.append(text)
            elif "svg" not in self._in[:-1] and not self.title:
                self.title = text
            self._text = None
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def rendered(page: Path) -> Dom:
    """The drawn page, after checking its script finished drawing."""
    dom = Dom(dump_dom(page))
    assert dom.body.get("data-rendered") == "1", dom.body.get("data-error", dom.body)
    return dom
