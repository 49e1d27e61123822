#!/usr/bin/env bash
# Refreshes `.sqlx/`, the compile-time query data that lets LeadGen build without a database:
# migrates a scratch database on the local PostgreSQL, then checks every query against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
ensure_test_postgres
base=${LEADGEN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db=leadgen_sqlx_prepare
psql "$base/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
DATABASE_URL="$base/$db" LEADGEN_DATABASE__MIGRATE_URL="$base/$db" \
  cargo run --quiet --bin leadgen -- migrate --json
rm -rf .sqlx && mkdir .sqlx
# Force the macros online and have them write what they checked.
touch crates/server/src/lib.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$root/.sqlx" DATABASE_URL="$base/$db" cargo check --workspace --all-targets --quiet
say "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
