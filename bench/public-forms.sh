#!/usr/bin/env bash
# The public forms through the whole server (TLS, the shipped WAF rules and rate limits, the bot
# traps, dedupe, the lead insert), from many loopback source addresses (bench/public_forms.py):
#
#   bench/public-forms.sh [seconds] [connections] [posts per second]
#
#   1. early access: one address sends 100 posts at once while 100 other addresses post once
#      each; how many of each were answered 200 and 429, and how many addresses were stored;
#   2. capture form: `connections` workers (default 8) post submissions for `seconds` (default
#      30), each from a fresh source address every 5 posts (the shipped per-address limit is 10
#      in 10 minutes): first at a fixed offered load (default 200 posts a second, far above any
#      real site's form), then as fast as they are answered (the saturation point of this
#      machine, load generator included); p50/p95/p99 of the posts, TLS set-up apart; then
#      leads and consent records stored against the posts answered 200 counted.
#
# The server is the release build on a fresh database on the PostgreSQL at 127.0.0.1:5432 (user
# postgres without a password; started by scripts/lib.sh when nothing listens there), with the
# shipped config/waf-rules.json and config/rate-limits.json. It listens on 18446 (HTTPS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
seconds=${1:-30}
conns=${2:-8}
rate=${3:-200}
command -v psql >/dev/null || apt_install postgresql-client
command -v python3 >/dev/null || apt_install python3
ensure_test_postgres
cargo build --release --locked --quiet --bin leadgen
bin=${CARGO_TARGET_DIR:-$root/target}/release/leadgen

pg=${LEADGEN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db="lg_bench_forms_$$"
psql -q "$pg/postgres" -c "CREATE DATABASE $db"
data=$(mktemp -d /tmp/leadgen-forms-bench.XXXXXX)
chmod 755 "$data"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" || true
  rm -rf "$data"
}
trap cleanup EXIT

unset LEADGEN_MAIL_PYTHON LEADGEN_DKIM_PYTHON
DATABASE_URL="postgres://leadgen_app@${pg#*@}/$db" \
LEADGEN_DATABASE__MIGRATE_URL="$pg/$db" \
LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
LEADGEN_SECRETS__APP_KEY="forms benchmark application key, not a secret" \
LEADGEN_SECRETS__MASTER_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
LEADGEN_SERVER__ADMIN_PORT=19468 \
  "$bin" serve --data-dir "$data/server" --https-port 18446 --http-port 18083 >"$data/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q 'LeadGen is serving' "$data/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'LeadGen is serving' "$data/server.log" || { tail -n 30 "$data/server.log"; die "the server did not start"; }
hp=localhost:18446
sql() { psql -X -q -t -A "$pg/$db" -c "$1"; }

echo "== early access: 100 posts from one address at once, one post from each of 100 others"
python3 bench/public_forms.py early-access "$hp"
echo "addresses stored: $(sql 'SELECT count(*) FROM app.early_access')"

origin=https://shop.forms.bench
key=$(python3 bench/public_forms.py setup "$hp" "$origin")
fields='{"email": "visitor{n}@example.com", "first_name": "Visitor", "company_name": "Example {n}", "consent": "on"}'
echo "== capture form: $conns connections, $rate posts/s offered, $seconds s, a fresh source address every 5 posts"
python3 bench/public_forms.py capture "$hp" "$key" "$origin" --seconds "$seconds" --conns "$conns" --per-ip 5 \
  --rate "$rate" --ip-base 10 --fields "$fields"
echo "== capture form: $conns connections as fast as they are answered (saturation), $seconds s"
python3 bench/public_forms.py capture "$hp" "$key" "$origin" --seconds "$seconds" --conns "$conns" --per-ip 5 \
  --ip-base 110 --fields "$fields"
echo "leads stored: $(sql 'SELECT count(*) FROM app.leads'), consent records: $(sql 'SELECT count(*) FROM app.consent_records')"
echo "server log lines at WARN or ERROR: $(grep -cE '"level":"(WARN|ERROR)"' "$data/server.log" || true)"
grep -E '"level":"(WARN|ERROR)"' "$data/server.log" | cut -c1-300 || true
