#!/usr/bin/env bash
# ops/apt-package.sh PACKAGE COMMAND...: installs Debian's PACKAGE (no recommends) unless every
# COMMAND is on PATH already; then checks they are. Run as root (CI) or through sudo. Used by
# ops/prometheus/install.sh and ops/chromium/install.sh.
set -euo pipefail

package=$1
shift
have_all() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}

if have_all "$@"; then
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "ops/apt-package.sh: $* missing and this is not root (no sudo): install Debian's $package package" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "$package"
have_all "$@"
