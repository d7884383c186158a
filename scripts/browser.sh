#!/usr/bin/env bash
# The headless browser of the dashboard test (tests/integration/test_dashboard.py): Debian's
# `chromium`, driven by Playwright. Playwright's own browser download fetches a build from its
# CDN, which machines that reach only package registries cannot do; Debian's package can be had
# wherever PostgreSQL's can (scripts/stack.sh installs those the same way).
#
#   scripts/browser.sh ensure   install chromium when absent, print its path
#   scripts/browser.sh path     print its path (exit 1 when absent)
#
# CHROMIUM_PATH, when set, names a browser to use as it is (nothing is installed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.local}

say() { printf '[browser] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

find_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    [ -x "$CHROMIUM_PATH" ] && { echo "$CHROMIUM_PATH"; return 0; }
    die "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable"
  fi
  local name
  for name in chromium chromium-browser; do
    command -v "$name" 2>/dev/null && return 0
  done
  return 1
}

# shellcheck source=scripts/apt.sh
. "$ROOT/scripts/apt.sh"

ensure() {
  find_chromium && return 0
  apt_install chromium
  find_chromium || die "chromium is still not on PATH after installing it"
}

case "${1:-}" in
  ensure) ensure ;;
  path) find_chromium ;;
  *) echo "usage: $0 ensure|path" >&2; exit 2 ;;
esac
