#!/usr/bin/env bash
# The local stack with no Docker: Apache Kafka (KRaft, jars from Maven Central), PostgreSQL and
# Redis (Debian packages), each on its own 127.0.0.1 port, data under $STACK_DIR.
#
#   scripts/stack.sh start    install what is missing, start what is not running, wait until served
#   scripts/stack.sh stop     stop what this script started
#   scripts/stack.sh status
#   scripts/stack.sh env      print the addresses as shell exports
#   scripts/stack.sh restart-kafka   stop and start the broker (the chaos run does this)
#   scripts/stack.sh fresh-db        drop and re-create the database ($STACK_PG_DB, default inventory)
#
# A server whose address is already given (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL)
# is used as it is and neither started nor stopped here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.local}
KAFKA_VERSION=3.9.1
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${STACK_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${STACK_PG_PORT:-15432}
REDIS_PORT=${STACK_REDIS_PORT:-16379}
# `make test`, `make bench` and `make chaos` use a fresh database of their own (scripts/harness.sh).
PG_DB=${STACK_PG_DB:-inventory}
PG_USER=inventory
# A local, loopback-only development password; any real deployment passes DATABASE_URL.
PG_PASSWORD=${STACK_PG_PASSWORD:-inventory-local}

KAFKA_HOME=$STACK_DIR/kafka
# The broker's log directory; `make bench` and `make chaos` point it at an empty directory of their own.
KAFKA_DATA=${STACK_KAFKA_DATA:-$KAFKA_HOME/data}
PG_HOME=$STACK_DIR/pg
[ -f "$STACK_DIR/pg-home" ] && PG_HOME=$(cat "$STACK_DIR/pg-home")
REDIS_HOME=$STACK_DIR/redis

say() { printf '[stack] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up within ${secs}s"
    sleep 0.5
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# shellcheck source=scripts/apt.sh
. "$ROOT/scripts/apt.sh"

# ---------------------------------------------------------------- Kafka
kafka_libs() {
  if [ -f "$KAFKA_HOME/libs/.complete-$KAFKA_VERSION" ]; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to resolve Kafka's jars"
  command -v java >/dev/null || die "Java 17 is required to run Kafka"
  say "resolving Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME/libs"
  rm -rf "$KAFKA_HOME/libs" && mkdir -p "$KAFKA_HOME/libs"
  (cd "$ROOT/scripts/kafka" && mvn -q -B dependency:copy-dependencies \
      -Dkafka.version=$KAFKA_VERSION -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_HOME/libs") >&2
  touch "$KAFKA_HOME/libs/.complete-$KAFKA_VERSION"
}

kafka_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_HOME/logs"
  cat >"$KAFKA_HOME/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
min.insync.replicas=1
# Topics are declared by the project (streams/topics.py), never created by accident.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
EOF
  cat >"$KAFKA_HOME/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_HOME/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
}

kafka_java() { # kafka_java <main class> <args...>: a Kafka main class with the project's JVM options
  local run=java
  [ "${KAFKA_EXEC:-0}" = 1 ] && run="exec java"
  $run -Xms256m -Xmx"${STACK_KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$KAFKA_HOME/log4j.properties" \
    -Dkafka.logs.dir="$KAFKA_HOME/logs" -cp "$KAFKA_HOME/libs/*" "$@"
}

kafka_port_open() { (exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT) 2>/dev/null; }

kafka_start() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then say "Kafka: using $KAFKA_BOOTSTRAP_SERVERS"; return; fi
  if pid_alive "$KAFKA_HOME/kafka.pid"; then say "Kafka: already running on 127.0.0.1:$KAFKA_PORT"; return; fi
  kafka_libs
  kafka_config
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    say "Kafka: formatting KRaft storage in $KAFKA_DATA"
    kafka_java kafka.tools.StorageTool format -t "$(kafka_java kafka.tools.StorageTool random-uuid)" \
      -c "$KAFKA_HOME/server.properties" >&2
  fi
  say "Kafka: starting broker+controller on 127.0.0.1:$KAFKA_PORT"
  # KAFKA_EXEC: the subshell becomes the JVM, so the pid file names the broker itself.
  (KAFKA_EXEC=1 kafka_java kafka.Kafka "$KAFKA_HOME/server.properties" >"$KAFKA_HOME/logs/stdout.log" 2>&1) &
  echo $! >"$KAFKA_HOME/kafka.pid"
  wait_for "Kafka" 90 kafka_port_open
  # The port opens before the controller has elected itself; a metadata round trip proves it serves.
  wait_for "Kafka metadata" 90 kafka_java org.apache.kafka.tools.TopicCommand \
    --bootstrap-server 127.0.0.1:$KAFKA_PORT --list
  say "Kafka: serving (pid $(cat "$KAFKA_HOME/kafka.pid"))"
}

# Stopping goes by what this script started (pid files, its own cluster), whatever the
# environment says: run.sh and test.sh export the addresses after starting the stack.
kafka_stop() {
  stop_pidfile "Kafka" "$KAFKA_HOME/kafka.pid" 60
}

# ---------------------------------------------------------------- PostgreSQL
pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && { echo "$d"; return; }
  done
}

as_pg() { # run a command as the postgres user when we are root (PostgreSQL refuses root)
  # From /: the caller's working directory may be closed to the postgres user.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_start() {
  if [ -n "${DATABASE_URL:-}" ]; then say "PostgreSQL: using the given DATABASE_URL"; return; fi
  local bin; bin=$(pg_bindir)
  if [ -z "$bin" ]; then apt_install postgresql; bin=$(pg_bindir); fi
  [ -n "$bin" ] || die "PostgreSQL server binaries not found after install"
  mkdir -p "$PG_HOME"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$PG_HOME"
    if ! runuser -u postgres -- test -w "$PG_HOME"; then
      # A parent folder (e.g. a private temp dir) shuts the postgres user out: use one it can reach.
      PG_HOME=/var/tmp/inventory-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
      say "PostgreSQL: $STACK_DIR is not reachable by user postgres; data in $PG_HOME"
      mkdir -p "$PG_HOME" && chown -R postgres:postgres "$PG_HOME" && chmod 700 "$PG_HOME"
      echo "$PG_HOME" >"$STACK_DIR/pg-home"
    fi
  fi
  if as_pg "$bin/pg_ctl" -D "$PG_HOME/data" status >/dev/null 2>&1; then
    say "PostgreSQL: already running on 127.0.0.1:$PG_PORT"; return
  fi
  port_free PostgreSQL "$PG_PORT" DATABASE_URL
  if [ ! -f "$PG_HOME/data/PG_VERSION" ]; then
    say "PostgreSQL: creating a cluster in $PG_HOME/data ($($bin/postgres --version))"
    as_pg "$bin/initdb" -D "$PG_HOME/data" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
    cat >>"$PG_HOME/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
EOF
    # Password authentication over TCP; trust only on the private unix socket used for setup.
    printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$PG_HOME/data/pg_hba.conf"
  fi
  say "PostgreSQL: starting on 127.0.0.1:$PG_PORT"
  as_pg "$bin/pg_ctl" -D "$PG_HOME/data" -l "$PG_HOME/server.log" -w -t 60 start >/dev/null
  wait_for "PostgreSQL" 60 "$bin/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  as_pg "$bin/psql" -h "$PG_HOME" -p "$PG_PORT" -U postgres -qtA -v ON_ERROR_STOP=1 postgres <<EOF >/dev/null
SELECT 'CREATE ROLE $PG_USER LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER')\gexec
ALTER ROLE $PG_USER PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB')\gexec
EOF
  say "PostgreSQL: serving database '$PG_DB'"
}

pg_fresh_db() {
  if [ -n "${DATABASE_URL:-}" ]; then say "PostgreSQL: the given DATABASE_URL is left as it is"; return; fi
  local bin; bin=$(pg_bindir)
  as_pg "$bin/psql" -h "$PG_HOME" -p "$PG_PORT" -U postgres -qtA -v ON_ERROR_STOP=1 postgres <<EOF >/dev/null
DROP DATABASE IF EXISTS $PG_DB WITH (FORCE);
CREATE DATABASE $PG_DB OWNER $PG_USER;
EOF
  say "PostgreSQL: database '$PG_DB' is empty"
}

pg_stop() {
  local bin; bin=$(pg_bindir)
  [ -n "$bin" ] && [ -f "$PG_HOME/data/PG_VERSION" ] || return 0
  if as_pg "$bin/pg_ctl" -D "$PG_HOME/data" status >/dev/null 2>&1; then
    say "PostgreSQL: stopping"
    as_pg "$bin/pg_ctl" -D "$PG_HOME/data" -m fast -w stop >/dev/null
  fi
}

# ---------------------------------------------------------------- Redis
redis_start() {
  if [ -n "${REDIS_URL:-}" ]; then say "Redis: using the given REDIS_URL"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$REDIS_HOME"
  if pid_alive "$REDIS_HOME/redis.pid"; then say "Redis: already running on 127.0.0.1:$REDIS_PORT"; return; fi
  say "Redis: starting on 127.0.0.1:$REDIS_PORT ($(redis-server --version | cut -d' ' -f3))"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_HOME" --daemonize yes \
    --pidfile "$REDIS_HOME/redis.pid" --logfile "$REDIS_HOME/redis.log" \
    --save '' --appendonly no --protected-mode yes >/dev/null
  wait_for "Redis" 30 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
  say "Redis: serving"
}

redis_stop() {
  stop_pidfile "Redis" "$REDIS_HOME/redis.pid" 20
}

stop_pidfile() { # stop_pidfile <name> <pidfile> <seconds>
  local name=$1 file=$2 secs=$3
  pid_alive "$file" || { rm -f "$file"; return 0; }
  local pid; pid=$(cat "$file")
  say "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then say "$name: still up after ${secs}s, killing"; kill -KILL "$pid"; fi
    sleep 0.3
  done
  rm -f "$file"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
  echo "export DATABASE_URL=${DATABASE_URL:-postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB}"
  echo "export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
}

port_free() { # port_free <name> <port>: refuse to start beside a server this script did not start
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
    die "$1: port $2 is taken by another process (stop it, or point ${3:-the settings} at it)"
  fi
}

start_all() {
  local t0=$SECONDS kpid
  # A failed start stops whatever it had started, so no server outlives the attempt.
  trap 'status=$?; if [ $status -ne 0 ]; then [ -n "${kpid:-}" ] && kill "$kpid" 2>/dev/null; wait; stop_all; fi' EXIT
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && ! pid_alive "$KAFKA_HOME/kafka.pid"; then
    port_free Kafka "$KAFKA_PORT" KAFKA_BOOTSTRAP_SERVERS
  fi
  if [ -z "${REDIS_URL:-}" ] && ! pid_alive "$REDIS_HOME/redis.pid"; then
    port_free Redis "$REDIS_PORT" REDIS_URL
  fi
  kafka_start & kpid=$!
  pg_start
  redis_start
  wait $kpid || die "Kafka failed to start (see $KAFKA_HOME/logs)"
  say "stack up in $((SECONDS - t0))s"
}

stop_all() { redis_stop; pg_stop; kafka_stop; }

case "${1:-}" in
  start) start_all ;;
  stop) stop_all ;;
  status)
    pid_alive "$KAFKA_HOME/kafka.pid" && say "Kafka: running" || say "Kafka: stopped"
    bin=$(pg_bindir); [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$PG_HOME/data" status >/dev/null 2>&1 \
      && say "PostgreSQL: running" || say "PostgreSQL: stopped"
    pid_alive "$REDIS_HOME/redis.pid" && say "Redis: running" || say "Redis: stopped"
    ;;
  env) print_env ;;
  restart-kafka)
    # Only the broker this script started: an address in the environment is ours to restart too
    # when our pid file names a running broker (run.sh, test.sh and chaos export it).
    pid_alive "$KAFKA_HOME/kafka.pid" || die "no broker started by this script is running"
    kafka_stop
    KAFKA_BOOTSTRAP_SERVERS='' kafka_start
    ;;
  fresh-db) pg_fresh_db ;;
  *) echo "usage: $0 start|stop|status|env|restart-kafka|fresh-db" >&2; exit 2 ;;
esac
