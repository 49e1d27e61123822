#!/usr/bin/env bash
# LeadGen's whole test suite: the secret scan, formatting, lints, the dependency advisory audit,
# every unit and integration test (with real PostgreSQL and a real browser) and the browser tests.
# Starts and,
# where needed, installs the services it uses. Ends with the test runner's summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

ensure_test_postgres
ensure_redis
ensure_browser_tools
ensure_schemathesis
ensure_mail_peers
ensure_pgbackrest
ensure_cargo_tool nextest cargo-nextest
ensure_cargo_tool audit cargo-audit

say "secret scan of the tracked tree"
bash scripts/scan-secrets.sh

say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

advisory_db=${LEADGEN_ADVISORY_DB:-$root/../shared/data/advisory-db}
[ -d "$advisory_db/crates" ] || die "advisory database not found at $advisory_db (set LEADGEN_ADVISORY_DB)"
say "dependency advisory audit against $advisory_db"
# Accepted advisories, each with its reason, are in .cargo/audit.toml; anything else fails.
cargo audit --db "$advisory_db" --no-fetch --stale --deny warnings

say "browser test dependencies"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

# Databases left by earlier runs (each test creates its own).
psql_cmd() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc "$1"; }
if command -v psql >/dev/null; then
  for db in $(psql_cmd "SELECT datname FROM pg_database WHERE datname LIKE 'lg\_test\_%'"); do
    psql_cmd "DROP DATABASE IF EXISTS $db" >/dev/null || true
  done
fi

say "tests"
exec cargo nextest run --workspace --locked --profile ci
