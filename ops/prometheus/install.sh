#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's `prometheus` package) when either is missing: the
# integration test tests/integration/test_prometheus.py runs a real Prometheus, and
# tests/unit/test_prometheus_rules.py checks ops/prometheus/alerts.yml with promtool.
# Idempotent: does nothing when both are on PATH. Run as root (CI) or through sudo.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "ops/prometheus/install.sh: prometheus/promtool are missing and this is not root (no sudo): install Debian's prometheus package" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# --no-install-recommends: the server and promtool only, no node exporter or web assets
"${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus
# the package's service is not wanted here (a container has no init; elsewhere stop it if it started)
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${as_root[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
