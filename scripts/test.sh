#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the integration suite (real HTTP server, real
# binary, SQLite always; PostgreSQL and Redis when LATCHKEY_TEST_POSTGRES_URL / LATCHKEY_TEST_REDIS_URL are set).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets "$@"
