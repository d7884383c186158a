#!/usr/bin/env bash
# Runs a command against the local stack on an empty broker of its own, then stops the stack:
# `make test`, `make bench` and `make chaos` (scripts/harness.sh <name> <command...>).
#
# An empty broker and an empty database each time, so every run starts alike (a worker without
# local state replays its whole changelog, which after a bench holds hundreds of thousands of
# records; the default warehouse's ledger must match its units), and the data of `make run` is
# left alone. A broker that is already running is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
name=$1
shift

# One stack at a time on this machine (its ports are fixed): a second run waits for the first.
exec 9>"${TMPDIR:-/tmp}/inventory-stack.lock"
flock 9

export STACK_KAFKA_DATA STACK_PG_DB=inventory_$name
STACK_KAFKA_DATA=$(mktemp -d "${TMPDIR:-/tmp}/inventory-$name-kafka.XXXXXX")
trap 'scripts/stack.sh stop; rm -rf "$STACK_KAFKA_DATA"' EXIT
scripts/stack.sh start 9>&-  # the servers must not hold the lock
scripts/stack.sh fresh-db
eval "$(scripts/stack.sh env)"
echo "[$name] migrating the read model"
$PY -m storage.migrate
$PY -m streams.admin >/dev/null
echo "[$name] running: $*"
"$@"
