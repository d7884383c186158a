#!/usr/bin/env bash
# `make chaos`: start the stack, run the chaos run, write chaos/results/latest.json, stop the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

trap 'scripts/stack.sh stop' EXIT
scripts/stack.sh start
eval "$(scripts/stack.sh env)"
$PY -m storage.migrate
$PY -m streams.admin >/dev/null
timeout 1800 $PY -m chaos "$@"
