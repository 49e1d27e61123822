#!/usr/bin/env bash
# README command 1: installs what is missing (PostgreSQL's server programs from Debian's packages),
# builds LeadGen, and serves it with a demo organization on the embedded database:
# https://localhost:8443 unless flags say otherwise (`--https-port 9443`), with plain HTTP
# redirecting to it; the server prints the address it actually serves. Ctrl-C stops it cleanly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

ensure_postgres_binaries
# Backups, when enabled, need pgBackRest (see docs/operations.md).
if backups_enabled; then ensure_pgbackrest; fi
command -v cc >/dev/null || apt_install build-essential

say "building LeadGen (release)"
cargo build --release --locked --quiet --bin leadgen

data_dir=${LEADGEN_DATA_DIR:-$root/data}
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$data_dir")" 2>/dev/null; then
  # As root, the embedded cluster runs as the `postgres` OS user, which cannot enter this folder.
  data_dir=/var/lib/leadgen
  say "the postgres user cannot reach $root; keeping data in $data_dir instead"
fi
mkdir -p "$data_dir"

# A new data folder gets the demo organization with 2,000 synthetic leads (imported in the
# background by the server; the demo admin's one-time password is printed here).
if [ ! -e "$data_dir/postgres" ]; then
  say "creating the demo organization with 2,000 synthetic leads"
  target/release/leadgen demo seed --leads 2000 --data-dir "$data_dir"
fi

say "starting LeadGen (data in $data_dir); it prints the address it serves"
exec target/release/leadgen serve --demo --data-dir "$data_dir" "$@"
