#!/usr/bin/env bash
# Backups at scale: ROWS leads in one organization (imported through the server, with backups
# enabled on the embedded PostgreSQL). Times and sizes, in one run:
#   1. `leadgen backup run --type full` against `pg_dump -Fc` of the same database;
#   2. `leadgen backup run --type incr` after CHANGED leads were updated;
#   3. `leadgen restore --verify` end to end (repository checksums, restore, checks, cleanup).
#
#   bench/backup.sh [rows] [changed]   (default 1000000 10000)
#
# Uses the release build and a fresh data folder under /tmp; stops the server at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
rows=${1:-1000000}
changed=${2:-10000}
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
ensure_postgres_binaries
ensure_pgbackrest
cargo build --release --locked --quiet --bin leadgen
bin=$root/target/release/leadgen

data=$(mktemp -d /tmp/leadgen-backup-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
bench_waf_rules "$data/waf-rules.json"
export LEADGEN_DATA_DIR="$data" \
  LEADGEN_BACKUP__ENABLED=true \
  LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
  LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
  LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
  LEADGEN_SECRETS__APP_KEY="backup benchmark application key, not a secret" \
  LEADGEN_SERVER__ADMIN_PORT=19467 \
  LEADGEN_IMPORTS__BATCH_ROWS=5000
"$bin" serve --https-port 18447 --http-port 18084 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $data" || rm -rf "$data"' EXIT
for _ in $(seq 600); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }
base=https://localhost:18447
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
psql_su() { psql "host=$data/run user=postgres dbname=leadgen" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

session=$(curl -sSk --fail-with-body -H 'Content-Type: application/json' \
  -d '{"email":"admin@b.bench","password":"violet tractor hums at dawn"}' "$base/auth/v1/signup")
token=$(field "['access_token']" <<<"$session")
org=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name":"Bench B"}' "$base/api/v1/orgs" | field "['id']")
token=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"org_id\":\"$org\"}" "$base/api/v1/session/org" | field "['access_token']")

say "importing $rows synthetic leads"
"$bin" demo csv --leads "$rows" --seed 5 >"$data/b.csv"
id=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: text/csv' \
  -H 'Accept: application/json' --data-binary "@$data/b.csv" "$base/api/v1/imports?name=b.csv" | field "['id']")
curl -sSk --fail-with-body -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"mode":"create_only"}' "$base/api/v1/imports/$id/start"
while :; do
  status=$(curl -sSk -H "Authorization: Bearer $token" "$base/api/v1/imports/$id")
  case $(field "['status']" <<<"$status") in
    done) break ;;
    failed|cancelled) die "import failed: $status" ;;
  esac
  sleep 1
done
rm -f "$data/b.csv"
psql_su -c "CHECKPOINT"
echo "  $(field "['created']" <<<"$status") leads; database $(psql_su -Atc "SELECT pg_size_pretty(pg_database_size('leadgen'))")"

echo
echo "== pg_dump -Fc of the same database"
t0=$(now)
pg_dump "host=$data/run user=postgres dbname=leadgen" -Fc -f "$data/dump.pgc"
t1=$(now)
dump_s=$(secs "$t0" "$t1")
dump_b=$(stat -c %s "$data/dump.pgc")
rm -f "$data/dump.pgc"
echo "  ${dump_s} s, ${dump_b} bytes"

echo "== leadgen backup run --type full"
t0=$(now)
full=$("$bin" backup run --type full --json)
t1=$(now)
full_s=$(secs "$t0" "$t1")
full_b=$(field "['set']['repo_delta']" <<<"$full")
echo "  ${full_s} s, ${full_b} bytes in the repository (manifest: $(field "['rows']" <<<"$full") rows)"

say "changing $changed leads"
psql_su -c "UPDATE app.leads SET title = coalesce(title, '') || ' (changed)'
            WHERE id IN (SELECT id FROM app.leads ORDER BY random() LIMIT $changed)"
echo "== leadgen backup run --type incr"
t0=$(now)
incr=$("$bin" backup run --type incr --json)
t1=$(now)
incr_s=$(secs "$t0" "$t1")
incr_b=$(field "['set']['repo_delta']" <<<"$incr")
echo "  ${incr_s} s, ${incr_b} bytes in the repository"

echo "== leadgen restore --verify"
t0=$(now)
proof=$("$bin" restore --verify --json)
t1=$(now)
proof_s=$(secs "$t0" "$t1")
echo "  ${proof_s} s, ok: $(field "['ok']" <<<"$proof")"

echo
python3 - "$dump_s" "$dump_b" "$full_s" "$full_b" "$incr_s" "$incr_b" "$proof_s" <<'PY'
import sys
dump_s, dump_b, full_s, full_b, incr_s, incr_b, proof_s = map(float, sys.argv[1:])
print(f"full backup / pg_dump -Fc: time {full_s / dump_s:.2f}x (target <= 1.5x), size {full_b / dump_b:.2f}x")
print(f"incremental / full: time {incr_s / full_s:.1%} (target < 10%), size {incr_b / full_b:.1%}")
print(f"restore --verify end to end: {proof_s:.1f} s")
PY
