#!/usr/bin/env bash
# Revocation propagation between two instances: how long after a logout on instance A does
# instance B refuse the session's access token? (bench/revocation.py does the measuring.)
#
#   bench/revocation.sh [iterations]
#
# Two servers cannot share one embedded data folder, so both use a fresh database on the
# PostgreSQL at 127.0.0.1:5432 (user postgres without a password, as for the tests; started by
# scripts/lib.sh when nothing listens there), each with its own data folder, the same application
# key and the same site URL (the tokens' issuer). The database is dropped at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
iterations=${1:-50}
command -v psql >/dev/null || apt_install postgresql-client
command -v python3 >/dev/null || apt_install python3
ensure_test_postgres
cargo build --release --locked --quiet --bin leadgen

pg=${LEADGEN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db="lg_bench_revocation_$$"
psql -q "$pg/postgres" -c "CREATE DATABASE $db"
data=$(mktemp -d /tmp/leadgen-bench.XXXXXX)
chmod 755 "$data"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" || true
  rm -rf "$data"
}
trap cleanup EXIT

# Like the tests' TestDb::app_url: the same server and database, as leadgen_app, no password.
app_url="postgres://leadgen_app@${pg#*@}/$db"
start() { # name https_port http_port admin_port
  mkdir -p "$data/$1"
  DATABASE_URL="$app_url" \
  LEADGEN_DATABASE__MIGRATE_URL="$pg/$db" \
  LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
  LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
  LEADGEN_AUTH__SITE_URL="https://leadgen.bench" \
  LEADGEN_SECRETS__APP_KEY="revocation benchmark application key, shared by both instances" \
  LEADGEN_SERVER__ADMIN_PORT="$4" \
    target/release/leadgen serve --data-dir "$data/$1" --https-port "$2" --http-port "$3" \
    >"$data/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q 'LeadGen is serving' "$data/$1.log" && return; sleep 0.1; done
  cat "$data/$1.log"
  die "instance $1 did not start"
}
# One after the other, so only A applies the migrations.
start a 18443 18080 19465
start b 18444 18081 19466
sleep 1
python3 bench/revocation.py localhost:18443 localhost:18444 "$iterations"
