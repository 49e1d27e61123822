#!/usr/bin/env bash
# Refreshes `.sqlx/`, the compile-time query data that lets LeadGen build without a database:
# applies every migration to a scratch database on the local PostgreSQL, then checks every query
# against it. (Migrations are applied with psql rather than `leadgen migrate`, because building
# `leadgen` is exactly what needs the refreshed data.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
ensure_test_postgres
base=${LEADGEN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db=leadgen_sqlx_prepare
psql "$base/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
# The table sqlx keeps its history in; the first migration grants on it.
psql "$base/$db" -qc "CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY,
  description text NOT NULL, installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
  checksum bytea NOT NULL, execution_time bigint NOT NULL)"
for f in migrations/*.sql; do
  psql "$base/$db" -q -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null
done
rm -rf .sqlx && mkdir .sqlx
# Force the macros online and have them write what they checked.
touch crates/server/src/lib.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$root/.sqlx" DATABASE_URL="$base/$db" cargo check --workspace --all-targets --quiet
say "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
