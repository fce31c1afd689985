#!/usr/bin/env bash
# Throwaway Redis and PostgreSQL 15 on free loopback ports, in a temporary directory.
#
#   scripts/services.sh start          starts both; prints shell assignments to eval:
#                                      REX_SERVICES_DIR, REDIS_URL, DATABASE_URL, REDIS_PID, PG_PID
#   scripts/services.sh stop [DIR]     stops the servers of DIR (default $REX_SERVICES_DIR) by PID
#                                      and removes DIR
#   scripts/services.sh restart-redis [DIR]   stops Redis by PID and starts it again, same port
#   scripts/services.sh restart-postgres [DIR] stops PostgreSQL by PID (fast shutdown) and starts it
#                                      again on the same port and data directory
#   scripts/services.sh stop-postgres [DIR]    the first half of restart-postgres (an outage)
#   scripts/services.sh start-postgres [DIR]   the second half: same port and data directory
#
# The servers only listen on 127.0.0.1, keep no data on disk beyond DIR, and are checked to be
# ours (Redis INFO process_id and PostgreSQL data_directory) before anything uses them.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p i
  for i in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

start_redis() { # DIR PORT
  local T=$1 port=$2 i pid
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$T" \
    --daemonize yes --pidfile "$T/redis.pid" --logfile "$T/redis.log" >/dev/null
  for i in $(seq 100); do
    [[ -s "$T/redis.pid" ]] && redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  pid=$(cat "$T/redis.pid" 2>/dev/null) || die "redis did not start (see $T/redis.log)"
  local answering
  answering=$(redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
  [[ "$answering" == "$pid" ]] || die "the Redis answering on $port (pid '$answering') is not ours ($pid)"
  echo "$port" >"$T/redis.port"
}

cmd_start() {
  command -v redis-server >/dev/null || die "redis-server is missing: run scripts/deps.sh"
  [[ -x "$PGBIN/initdb" ]] || die "PostgreSQL 15 is missing: run scripts/deps.sh"
  local T
  T=$(mktemp -d /tmp/rex-services.XXXXXX)
  chmod 755 "$T" # the postgres user must reach $T/pg

  local rport pport try
  for try in 1 2 3; do
    rport=$(free_port)
    if start_redis "$T" "$rport" 2>"$T/redis.err"; then break; fi
    [[ $try == 3 ]] && { cat "$T/redis.err" >&2; die "redis failed to start"; }
  done

  local run=()
  if [[ $(id -u) -eq 0 ]]; then
    install -d -o postgres -g postgres "$T/pg"
    run=(runuser -u postgres --)
  else
    mkdir -p "$T/pg"
  fi
  "${run[@]}" "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 --no-locale -N \
    >"$T/pg/initdb.log" 2>&1 || { cat "$T/pg/initdb.log" >&2; die "initdb failed"; }
  for try in 1 2 3; do
    pport=$(free_port)
    if "${run[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 30 \
      -o "-p $pport -k $T/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
      start >/dev/null 2>&1; then break; fi
    [[ $try == 3 ]] && { tail -20 "$T/pg/server.log" >&2; die "postgres failed to start"; }
  done
  local dsn="postgresql://postgres@127.0.0.1:$pport/postgres"
  local datadir
  datadir=$(psql "$dsn" -qAtc "SHOW data_directory") || die "postgres does not answer on $pport"
  [[ "$datadir" == "$T/pg/data" ]] || die "the PostgreSQL answering on $pport ($datadir) is not ours"
  echo "$pport" >"$T/pg.port"

  cat <<VARS | tee "$T/env"
export REX_SERVICES_DIR=$T
export REDIS_URL=redis://127.0.0.1:$rport
export DATABASE_URL=$dsn
export REDIS_PID=$(cat "$T/redis.pid")
export PG_PID=$(head -1 "$T/pg/data/postmaster.pid")
VARS
}

wait_gone() { # PID
  local i
  for i in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 0
    # a zombie child of ours counts as gone
    [[ "$(ps -o stat= -p "$1" 2>/dev/null)" == Z* ]] && return 0
    sleep 0.05
  done
  return 1
}

stop_redis() { # DIR
  local T=$1 pid
  [[ -s "$T/redis.pid" ]] || return 0
  pid=$(cat "$T/redis.pid")
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$T/redis.pid"
}

cmd_stop() {
  local T=${1:-${REX_SERVICES_DIR:-}}
  [[ -n "$T" && -d "$T" ]] || die "stop: no services directory given"
  [[ "$T" == /tmp/rex-services.* ]] || die "stop: $T is not a services directory"
  stop_redis "$T"
  if [[ -s "$T/pg/data/postmaster.pid" ]]; then
    local pid
    pid=$(head -1 "$T/pg/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || true
    wait_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$T"
}

cmd_restart_redis() {
  local T=${1:-${REX_SERVICES_DIR:-}}
  [[ -n "$T" && -f "$T/redis.port" ]] || die "restart-redis: no services directory given"
  stop_redis "$T"
  start_redis "$T" "$(cat "$T/redis.port")"
  echo "export REDIS_PID=$(cat "$T/redis.pid")"
}

pg_dir() { # DIR -> checks it is a services directory with PostgreSQL
  [[ -n "$1" && -f "$1/pg.port" && -d "$1/pg/data" ]] || die "$2: no services directory given"
}

cmd_stop_postgres() {
  local T=${1:-${REX_SERVICES_DIR:-}} pid
  pg_dir "$T" stop-postgres
  if [[ -s "$T/pg/data/postmaster.pid" ]]; then
    pid=$(head -1 "$T/pg/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null || true
    wait_gone "$pid" || die "postgres ($pid) did not stop"
  fi
}

cmd_start_postgres() {
  local T=${1:-${REX_SERVICES_DIR:-}} pport run=()
  pg_dir "$T" start-postgres
  pport=$(cat "$T/pg.port")
  [[ $(id -u) -eq 0 ]] && run=(runuser -u postgres --)
  "${run[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 30 \
    -o "-p $pport -k $T/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null 2>&1 || { tail -20 "$T/pg/server.log" >&2; die "postgres failed to start"; }
  echo "export PG_PID=$(head -1 "$T/pg/data/postmaster.pid")"
}

cmd_restart_postgres() {
  cmd_stop_postgres "${1:-}"
  cmd_start_postgres "${1:-}"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop "${2:-}" ;;
  restart-redis) cmd_restart_redis "${2:-}" ;;
  restart-postgres) cmd_restart_postgres "${2:-}" ;;
  stop-postgres) cmd_stop_postgres "${2:-}" ;;
  start-postgres) cmd_start_postgres "${2:-}" ;;
  *) echo "usage: $0 start | stop [DIR] | restart-redis [DIR] | restart-postgres [DIR] | stop-postgres [DIR] | start-postgres [DIR]" >&2; exit 2 ;;
esac
