#!/usr/bin/env bash
# Concurrent API-key reads of the admin API: every read also commits an `api_key.read` audit event before
# it is answered (through the group-commit writer), so this measures what that costs under load. The
# server is pinned to core 0 and wrk to core 1; one organization with 50 users; SQLite, then PostgreSQL.
#
# Usage: bench/admin-concurrent.sh [seconds] [connections]      (defaults: 8 s, 8 connections)
#        BENCH_BIN=path/to/latchkey bench/admin-concurrent.sh   (benchmark that binary, no build)
# Needs: wrk and taskset (apt-get install -y wrk util-linux), psql and a PostgreSQL
# (LATCHKEY_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test) for the second half.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
CONNECTIONS=${2:-8}
PORT=${BENCH_PORT:-18251}
PG_URL=${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_ADMIN=${PG_URL%/*}/postgres
PG_BENCH=${PG_URL%/*}/latchkey_bench_concurrent
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
if [[ -n ${BENCH_BIN:-} ]]; then
  BIN=$BENCH_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
fi
SERVER=
WORK=
cleanup() {
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null || true
  [[ -n $WORK ]] && rm -rf "$WORK"
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS latchkey_bench_concurrent WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT

run() {
  local backend=$1
  WORK=$(mktemp -d)
  export LATCHKEY_DATA_DIR=$WORK/data LATCHKEY_LISTEN=127.0.0.1:$PORT LATCHKEY_LOG_LEVEL=warn
  export LATCHKEY_PUBLIC_URL=http://127.0.0.1:$PORT
  if [[ $backend == postgres ]]; then
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS latchkey_bench_concurrent WITH (FORCE)" 2>/dev/null
    psql -q "$PG_ADMIN" -c "CREATE DATABASE latchkey_bench_concurrent"
    export LATCHKEY_DATABASE_URL=$PG_BENCH
  else
    unset LATCHKEY_DATABASE_URL
  fi
  "$BIN" org create --slug acme --name Acme >/dev/null
  for i in $(seq 50); do
    echo "a bench password $i" | "$BIN" user create --org acme --email "u$i@example.com" --password-stdin >/dev/null
  done
  local key
  key=$("$BIN" api-key create --org acme --name bench --scope all --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  taskset -c 0 "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  echo "== $backend: GET /api/v1/orgs/acme/users?limit=50, $CONNECTIONS connections, ${DURATION}s"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $key" \
    "http://127.0.0.1:$PORT/api/v1/orgs/acme/users?limit=50" | grep -E "Requests/sec|^ +(50|99)%"
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=
  rm -rf "$WORK"
  WORK=
}
run sqlite
run postgres
