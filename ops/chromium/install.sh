#!/usr/bin/env bash
# Installs Chromium (Debian's `chromium` package) when it is missing: the integration test
# tests/integration/test_dashboard.py opens the page `meterstream dashboard` writes in headless
# Chromium, reads the rendered DOM and takes a screenshot.
# Idempotent: does nothing (exit 0) when `chromium` is on PATH. Run as root (CI) or through sudo.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "ops/chromium/install.sh: chromium is missing and this is not root (no sudo): install Debian's chromium package" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# --no-install-recommends: the browser only (no chromium-sandbox, drivers or extra fonts); the
# page it opens is offline and uses the system's default sans-serif font
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium
command -v chromium >/dev/null
