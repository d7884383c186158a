#!/usr/bin/env bash
# `make bench`: start the stack, run every benchmark phase, write bench/results/, stop the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

trap 'scripts/stack.sh stop' EXIT
scripts/stack.sh start
eval "$(scripts/stack.sh env)"
$PY -m storage.migrate
$PY -m streams.admin >/dev/null
timeout 900 $PY -m bench "$@"
