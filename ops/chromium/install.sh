#!/usr/bin/env bash
# Installs Chromium (Debian's `chromium` package) when it is missing: the integration test
# tests/integration/test_dashboard.py opens the page `meterstream dashboard` writes in headless
# Chromium, reads the rendered DOM and takes a screenshot.
# Idempotent: does nothing (exit 0) when `chromium` is on PATH. Run as root (CI) or through sudo.
# --no-install-recommends (ops/apt-package.sh): the browser only (no chromium-sandbox, drivers or
# extra fonts); the page it opens is offline and uses the system's default sans-serif font.
set -euo pipefail
exec "$(dirname "$0")/../apt-package.sh" chromium chromium
