#!/usr/bin/env bash
# Fuzzes the admin API from its own OpenAPI document with schemathesis (PyPI), against a live server on a
# fresh SQLite database, authenticated by an API key holding every scope a key may hold. Fails on any 5xx,
# any answer the document does not describe (status, content type, headers, body schema), and any bad
# input the server accepts. The organization, a user and an application exist, so the fixed path
# parameters reach real records and not only 404s.
#
# Usage: scripts/fuzz-admin-api.sh [max-examples-per-operation]      (default 40)
#        LATCHKEY_BIN=path/to/latchkey scripts/fuzz-admin-api.sh    (default target/debug/latchkey)
# Needs: pip install schemathesis
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-40}
BIN=${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/latchkey}
PORT=${FUZZ_PORT:-18191}
command -v schemathesis >/dev/null || { echo "schemathesis is not installed: pip install schemathesis" >&2; exit 1; }
[[ -x $BIN ]] || cargo build --quiet

WORK=$(mktemp -d)
SERVER=
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_DATA_DIR=$WORK/data LATCHKEY_LISTEN=127.0.0.1:$PORT LATCHKEY_LOG_LEVEL=warn
export LATCHKEY_PUBLIC_URL=http://127.0.0.1:$PORT

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
"$BIN" org create --slug fuzz --name Fuzz >/dev/null
USER_ID=$(echo 'a fuzzing password 1' | "$BIN" user create --org fuzz --email someone@example.com \
  --password-stdin --json | json_field id)
CLIENT_ID=$("$BIN" app create --org fuzz --name fuzz --type confidential --grant client_credentials --json |
  json_field client_id)
# The delete operations get records of their own, so the others keep reaching real ones all run long.
DOOMED_USER_ID=$(echo 'a fuzzing password 2' | "$BIN" user create --org fuzz --email doomed@example.com \
  --password-stdin --json | json_field id)
DOOMED_CLIENT_ID=$("$BIN" app create --org fuzz --name doomed --type confidential --grant client_credentials \
  --json | json_field client_id)
API_KEY=$("$BIN" api-key create --org fuzz --name fuzzer --scope all --json | json_field secret)

"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  kill -0 $SERVER 2>/dev/null || { echo "the server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "the server did not become ready" >&2; exit 1; }

cat >"$WORK/schemathesis.toml" <<EOF
[parameters]
"path.org" = "fuzz"
"path.user_id" = "$USER_ID"
"path.client_id" = "$CLIENT_ID"

[[operations]]
include-operation-id = "deleteUser"
parameters = { "path.user_id" = "$DOOMED_USER_ID" }

[[operations]]
include-operation-id = "deleteApp"
parameters = { "path.client_id" = "$DOOMED_CLIENT_ID" }

# "Every schema-valid request is accepted" cannot hold where a rule spans fields or state, which a JSON
# schema cannot say: grant types against redirect URIs (apps), a timeout against another, a lockout
# against its window (settings), a password against the organization's policy, an address already
# taken; nor on an operation taking an Idempotency-Key, which the fuzzer reuses for another body
# (answered 422, as documented). Every other check (no 5xx, answers as documented, schema-invalid
# input refused) stays on for these too.
[[operations]]
include-operation-id = ["updateApp", "updateOrgSettings", "createOrg", "createApp", "rotateClientSecret", "rotateSigningKeys", "createUser", "bumpSessionVersion", "resetUserFactors", "createInvitation", "createApiKey", "rotateApiKey"]
checks.positive_data_acceptance.enabled = false
EOF

status=0
schemathesis --config-file "$WORK/schemathesis.toml" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --header "Authorization: Bearer $API_KEY" \
  --max-examples "$EXAMPLES" --seed "${FUZZ_SEED:-1}" \
  --phases examples,coverage,fuzzing \
  --request-timeout 10 \
  --suppress-health-check too_slow,filter_too_much \
  --no-color || status=$?
if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked during fuzzing:" >&2
  grep -A5 panicked "$WORK/server.log" >&2
  status=1
fi
if [[ $status -eq 0 ]]; then
  echo "FUZZ admin API: passed"
else
  echo "FUZZ admin API: failed (server log follows)" >&2
  tail -50 "$WORK/server.log" >&2
fi
exit $status
