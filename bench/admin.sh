#!/usr/bin/env bash
# The admin API at scale (issue 13): 10,000 organizations, one with 1,000,000 users and 10,000,000 audit
# events, seeded in bulk on SQLite and PostgreSQL; p50/p99 of the admin reads, sign-in and token latency
# against an empty database, resident memory and database size. See bench/admin.py for what is measured.
#
# Usage: bench/admin.sh [--backend sqlite|postgres|both] [--users N] [--events N] [--json FILE] ...
#        BENCH_BIN=path/to/latchkey bench/admin.sh ...      (benchmark that binary, no build)
# Needs: python3, psql and a PostgreSQL (LATCHKEY_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
# for the PostgreSQL half. Takes about 10 minutes per backend on a 2-core machine, most of it seeding.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${BENCH_BIN:-} ]]; then
  BIN=$BENCH_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
fi
exec python3 bench/admin.py --bin "$BIN" "$@"
