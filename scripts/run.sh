#!/usr/bin/env bash
# `make run`: the whole platform in the foreground; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

cleanup() {
  echo "[run] stopping"
  [ -n "${API_PID:-}" ] && kill -TERM "$API_PID" 2>/dev/null || :
  # The stock worker runs under a restart loop: stop the worker itself, then the loop.
  [ -n "${WORKER_PID:-}" ] && { pkill -TERM -P "$WORKER_PID"; kill -TERM "$WORKER_PID"; } 2>/dev/null || :
  [ -n "${LEDGER_PID:-}" ] && kill -TERM "$LEDGER_PID" 2>/dev/null || :
  [ -n "${ANALYTICS_PID:-}" ] && { pkill -TERM -P "$ANALYTICS_PID"; kill -TERM "$ANALYTICS_PID"; } 2>/dev/null || :
  wait 2>/dev/null || :
  scripts/stack.sh stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A local run is development: the placeholder secrets are accepted (and the administrator is
# admin / changethis) unless you export INVENTORY_JWT_SECRET and INVENTORY_ADMIN_PASSWORD.
export INVENTORY_ENVIRONMENT=${INVENTORY_ENVIRONMENT:-development}
scripts/stack.sh start
eval "$(scripts/stack.sh env)"
echo "[run] migrating the read model"
$PY -m storage.migrate
echo "[run] creating topics"
$PY -m streams.admin
echo "[run] starting the stock worker and the ledger worker"
# A stock worker whose batch did not commit stops with exit code 70 (streams/partition/owner.py),
# so that the batch is redelivered: restart it then, as a supervisor would.
(while :; do
  $PY -m streams stock --loglevel info && break
  code=$?
  [ "$code" -eq 70 ] || exit "$code"
  echo "[run] the stock worker stopped (exit code 70); restarting it"
done) &
WORKER_PID=$!
$PY -m streams ledger --loglevel info &
LEDGER_PID=$!
echo "[run] starting the analytics worker"
# Its analytics sink exits with code 70 when PostgreSQL does not take a batch: restart it then.
(while :; do
  $PY -m streams analytics --loglevel info && break
  code=$?
  [ "$code" -eq 70 ] || exit "$code"
  echo "[run] the analytics worker stopped (exit code 70); restarting it"
done) &
ANALYTICS_PID=$!
PORT=${INVENTORY_API_PORT:-8000}
echo "[run] starting the API"
INVENTORY_API_PORT=$PORT $PY -m api &
API_PID=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 1
done
echo "[run] API:  http://127.0.0.1:$PORT"
echo "[run] docs: http://127.0.0.1:$PORT/docs"
echo "[run] login: POST /auth/token {\"username\": \"${INVENTORY_ADMIN_USERNAME:-admin}\", \"password\": ...} (development: changethis)"
echo "[run] live: ws://127.0.0.1:$PORT/ws/inventory"
wait -n "$API_PID" "$WORKER_PID" "$LEDGER_PID" "$ANALYTICS_PID"
