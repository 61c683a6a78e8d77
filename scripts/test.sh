#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, the integration suite (real HTTP server, real binary;
# SQLite always, PostgreSQL and Redis when LATCHKEY_TEST_POSTGRES_URL / LATCHKEY_TEST_REDIS_URL are set),
# then the hosted pages in a real headless Chromium (when /usr/bin/chromium and node are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets "$@"
# The compile_fail examples: a user id is not an organization id, a StepUp proof cannot be forged or copied.
cargo test --doc --quiet

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
