#!/usr/bin/env bash
# `make test`: start the real stack, run every test against it, stop the stack.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

trap 'scripts/stack.sh stop' EXIT
scripts/stack.sh start
eval "$(scripts/stack.sh env)"
echo "[test] migrating the read model"
$PY -m storage.migrate
$PY -m streams.admin >/dev/null
echo "[test] running the suite"
$PY -m pytest "$@"
