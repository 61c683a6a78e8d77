#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, the integration suite (real HTTP server, real binary;
# SQLite always, PostgreSQL and Redis when LATCHKEY_TEST_POSTGRES_URL / LATCHKEY_TEST_REDIS_URL are set),
# then the admin API fuzzed from its OpenAPI document (when schemathesis is installed), then the hosted
# pages in a real headless Chromium (when /usr/bin/chromium and node are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets "$@"
# The compile_fail examples: a user id is not an organization id, a StepUp proof cannot be forged or copied.
cargo test --doc --quiet

if command -v schemathesis >/dev/null; then
  # The debug binary the integration suite just built, against a fresh database of its own.
  LATCHKEY_BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/latchkey scripts/fuzz-admin-api.sh "${LATCHKEY_FUZZ_EXAMPLES:-40}"
elif [[ ${LATCHKEY_REQUIRE_FUZZER:-} == 1 ]]; then
  echo "admin API fuzzing required but schemathesis is missing (pip install schemathesis)" >&2
  exit 1
else
  echo "SKIPPED admin API fuzzing (pip install schemathesis to run it)"
fi

chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ -x $chromium ]] && command -v node >/dev/null && command -v npm >/dev/null; then
  (
    cd tests/browser
    npm install --no-package-lock --no-audit --no-fund --loglevel=error
    CHROMIUM=$chromium node --test
  )
elif [[ ${LATCHKEY_REQUIRE_BROWSER:-} == 1 ]]; then
  echo "browser tests required but $chromium or node/npm is missing" >&2
  exit 1
else
  echo "SKIPPED browser tests (install chromium and node to run them)"
fi
