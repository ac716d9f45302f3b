#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's `prometheus` package) when either is missing: the
# integration test tests/integration/test_prometheus.py runs a real Prometheus, and
# tests/unit/test_prometheus_rules.py checks ops/prometheus/alerts.yml with promtool.
# Idempotent: does nothing when both are on PATH. Run as root (CI) or through sudo.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
# --no-install-recommends: the server and promtool only, no node exporter or web assets
"$(dirname "$0")/../apt-package.sh" prometheus prometheus promtool
# the package's service is not wanted here (a container has no init; elsewhere stop it if it started)
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
