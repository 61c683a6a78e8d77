#!/usr/bin/env bash
# Benchmark of the hot OAuth endpoints with a real load generator (wrk).
#
# The server is pinned to core 0 and wrk to core 1 (`taskset`), so the figures are single-core server
# throughput. Reports requests/s, p50/p99 latency and the server's RSS (idle, and peak under load), next to
# `openssl speed rsa2048` on the same machine (the RS256 signing ceiling for the token endpoint).
#
# Usage: bench/run.sh [seconds-per-endpoint] [connections]     (defaults: 10 s, 32 connections)
#        BENCH_BIN=path/to/latchkey bench/run.sh ...               (benchmark that binary, no build)
# Needs: wrk and taskset (apt-get install -y wrk util-linux), a release build (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
PORT=${BENCH_PORT:-18181}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
# BENCH_BIN runs another build instead (to compare two commits with the same script).
if [[ -n ${BENCH_BIN:-} ]]; then
  BIN=$BENCH_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
fi
WORK=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_DATA_DIR=$WORK/data LATCHKEY_LISTEN=127.0.0.1:$PORT LATCHKEY_LOG_LEVEL=warn
ISSUER=http://127.0.0.1:$PORT/o/bench

$BIN org create --slug bench --name Bench >/dev/null
# One client drives each endpoint far above its default per-client rate; lift the rate (the limiter still
# counts every request, so its cost is in the figures).
$BIN org update --slug bench --token-requests-per-client-per-minute 100000000 \
  --introspections-per-client-per-minute 100000000 >/dev/null
APP=$($BIN app create --org bench --name bench --type confidential --grant client_credentials --json)
CLIENT_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$APP")
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$APP")
BASIC=$(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)

start_server() {
  taskset -c 0 "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
}
start_server
# Warm the caches (keys, application) so "idle" means ready to serve.
curl -fs -X POST -H "Authorization: Basic $BASIC" -d grant_type=client_credentials "$ISSUER/token" >/dev/null
curl -fs "$ISSUER/jwks" >/dev/null
ACCESS_TOKEN=$(curl -fs -X POST -H "Authorization: Basic $BASIC" -d grant_type=client_credentials "$ISSUER/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
IDLE_RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)

cat >"$WORK/token.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat >"$WORK/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$ACCESS_TOKEN"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
# Count non-2xx answers so a fast stream of errors is never mistaken for throughput.

run() {
  local name=$1 url=$2 script=${3:-}
  local args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
  [[ -n $script ]] && args+=(-s "$script")
  local out
  out=$(taskset -c 1 wrk "${args[@]}" "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-28s %12s req/s   p50 %9s   p99 %9s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
# RS256 signing ceiling on the server's core, measured next to the token run (this VM's speed drifts).
openssl_sign_per_sec() {
  taskset -c 0 openssl speed -seconds "${1:-3}" rsa2048 2>/dev/null | awk '/^rsa 2048/ {print $6}'
}

echo "latchkey benchmark: server on core 0, wrk on core 1, ${CONNECTIONS} connections, ${DURATION}s each"
run "token (client_credentials)" "$ISSUER/token" "$WORK/token.lua"
# This VM's speed drifts within seconds, so the token/openssl ratio is measured in short rounds: 2 s of
# token requests between two 1 s openssl runs on the same core, compared round by round; the median
# round is the figure.
ROUNDS=${TOKEN_ROUNDS:-9}
SIGNS=("$(openssl_sign_per_sec 1)")
RATIOS=()
for ((round = 1; round <= ROUNDS; round++)); do
  RPS=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/token.lua" "$ISSUER/token" |
    awk '/Requests\/sec/ {print $2}')
  SIGNS+=("$(openssl_sign_per_sec 1)")
  RATIOS+=("$(echo "100 * $RPS / ((${SIGNS[round-1]} + ${SIGNS[round]}) / 2)" | bc -l)")
done
run "introspection (JWT)" "$ISSUER/introspect" "$WORK/introspect.lua"
run "jwks" "$ISSUER/jwks"
run "discovery" "$ISSUER/.well-known/openid-configuration"
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$SERVER/status)
printf 'server RSS: idle %d KB (%.1f MB), peak under load %d KB (%.1f MB)\n' \
  "$IDLE_RSS_KB" "$(echo "$IDLE_RSS_KB/1024" | bc -l)" "$PEAK_RSS_KB" "$(echo "$PEAK_RSS_KB/1024" | bc -l)"
# The same introspection with the verified-token cache off: every request pays the RSA verification, as
# the first introspection of each token does.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
LATCHKEY_VERIFIED_TOKEN_CACHE=0 start_server
run "introspection (cache off)" "$ISSUER/introspect" "$WORK/introspect.lua"
echo "openssl speed -seconds 1 rsa2048 on core 0, around the token rounds: ${SIGNS[*]} sign/s"
printf 'token endpoint per round, %% of the openssl sign/s around it: %s\n' \
  "$(printf '%.1f ' "${RATIOS[@]}")"
printf 'token endpoint, median of %d rounds: %.1f%% of openssl sign/s\n' "$ROUNDS" \
  "$(printf '%s\n' "${RATIOS[@]}" | sort -g | sed -n "$(((ROUNDS + 1) / 2))p")"
