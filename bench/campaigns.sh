#!/usr/bin/env bash
# Campaign delivery through the real outbox, DKIM RSA-2048 signing and a real SMTP server
# (bench/campaigns.py drives the API, samples and checks):
#
#   bench/campaigns.sh [recipients]            throughput (default 100000): msg/s from the first
#                                              to the last delivery at the sink and over the
#                                              middle 80 %, the server's peak RSS, CPU per process;
#                                              then N distinct Message-IDs for N recipients
#   bench/campaigns.sh --kill [recipients]     the same, with `kill -9` of the server half-way and a
#                                              restart: none missing, how many delivered twice
#   bench/campaigns.sh --resolve [leads]       audience resolution under RLS: imports `leadgen demo
#                                              csv --leads N` (default 500000), sends a campaign to
#                                              all of them, times send -> started_at, pauses it
#
# Settings (environment): POOL_SIZE (LEADGEN_MAIL__POOL_SIZE, default 8), BATCH
# (LEADGEN_CAMPAIGNS__BATCH, default 500), SINK=aiosmtpd (e2e/smtp_sink.py --index-only, the
# default) or SINK=smtp-sink (Postfix's C sink, /usr/sbin/smtp-sink, dumping every transaction
# to one file), KEEP=1 keeps the data folder and the database.
#
# Like bench/revocation.sh, the server uses a fresh database on the PostgreSQL at 127.0.0.1:5432
# (user postgres without a password; started by scripts/lib.sh when nothing listens there), so
# `leadgen dkim generate` and a restarted server reach the same data. The release server listens
# on 18445 (HTTPS), 18082 (HTTP) and 19467 (admin); the sink on 12525.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
mode=throughput
case ${1:-} in
  --kill) mode=kill; shift ;;
  --resolve) mode=resolve; shift ;;
esac
if [ "$mode" = resolve ]; then n=${1:-500000}; else n=${1:-100000}; fi
pool=${POOL_SIZE:-8}
batch=${BATCH:-500}
sink_kind=${SINK:-aiosmtpd}
command -v psql >/dev/null || apt_install postgresql-client
command -v python3 >/dev/null || apt_install python3
if [ "$sink_kind" = smtp-sink ]; then
  [ -x /usr/sbin/smtp-sink ] || apt_install postfix
elif ! [ -x "${LEADGEN_MAIL_PYTHON:-}" ]; then
  ensure_mail_peers
fi
# The server reads every LEADGEN_… variable as a setting: the mail peers' ones are not.
mail_python=${LEADGEN_MAIL_PYTHON:-}
unset LEADGEN_MAIL_PYTHON LEADGEN_DKIM_PYTHON
ensure_test_postgres
cargo build --release --locked --quiet --bin leadgen
bin=${CARGO_TARGET_DIR:-$root/target}/release/leadgen

pg=${LEADGEN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
db="lg_bench_campaigns_$$"
psql -q "$pg/postgres" -c "CREATE DATABASE $db"
data=$(mktemp -d /tmp/leadgen-campaigns-bench.XXXXXX)
chmod 755 "$data"
mkdir -p "$data/sink" "$data/server"
server_pid=
sink_pid=
cleanup() {
  for p in $server_pid $sink_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $server_pid $sink_pid; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then
    echo "kept $data and database $db"
  else
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db" || true
    rm -rf "$data"
  fi
}
trap cleanup EXIT

# The SMTP sink: aiosmtpd keeps an index (Message-ID, recipient, size) and no bodies; smtp-sink
# appends every transaction to one file, each after a \001 marker.
if [ "$sink_kind" = smtp-sink ]; then
  sink_file=$data/sink/dump
  user_opt=()
  if [ "$(id -u)" -eq 0 ]; then chown nobody "$data/sink"; user_opt=(-u nobody); fi
  /usr/sbin/smtp-sink "${user_opt[@]}" -S '\001' -D "$sink_file" 127.0.0.1:12525 1024 &
  sink_pid=$!
else
  sink_file=$data/sink/index.tsv
  "$mail_python" e2e/smtp_sink.py "$data/sink" --index-only --port 12525 >"$data/sink.log" 2>&1 &
  sink_pid=$!
fi
for _ in $(seq 100); do port_open 12525 && break; sleep 0.1; done
port_open 12525 || die "the SMTP sink did not start"

bench_waf_rules "$data/waf-rules.json"
master_key=5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e
app_url="postgres://leadgen_app@${pg#*@}/$db"
export DATABASE_URL="$app_url" LEADGEN_DATABASE__MIGRATE_URL="$pg/$db" \
  LEADGEN_SECRETS__MASTER_KEY=$master_key
start_server() {
  LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
  LEADGEN_AUTH__ACCESS_TOKEN_TTL_SECS=3600 \
  LEADGEN_AUTH__SITE_URL="https://leadgen.bench" \
  LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
  LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
  LEADGEN_SECRETS__APP_KEY="campaign benchmark application key, not a secret" \
  LEADGEN_SERVER__ADMIN_PORT=19467 \
  LEADGEN_MAIL__HOST=127.0.0.1 LEADGEN_MAIL__PORT=12525 LEADGEN_MAIL__TLS=none \
  LEADGEN_MAIL__FROM_ADDRESS="LeadGen <no-reply@leadgen.bench>" \
  LEADGEN_MAIL__POOL_SIZE="$pool" \
  LEADGEN_CAMPAIGNS__BATCH="$batch" \
  LEADGEN_CAMPAIGNS__POLL_MS=100 \
  LEADGEN_CAMPAIGNS__LEASE_SECS=10 \
    "$bin" serve --data-dir "$data/server" --https-port 18445 --http-port 18082 \
    >>"$data/server.log" 2>&1 &
  server_pid=$!
  local from
  from=$(grep -c 'LeadGen is serving' "$data/server.log" || true)
  for _ in $(seq 600); do
    [ "$(grep -c 'LeadGen is serving' "$data/server.log" || true)" -gt "$from" ] && return
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 30 "$data/server.log"
  die "the server did not start"
}
start_server
"$bin" dkim generate --data-dir "$data/server" --domain acme.bench --selector bench \
  --algorithm rsa --json >/dev/null
py() { python3 bench/campaigns.py "$@"; }
hp=localhost:18445
state=$data/state.json
samples=$data/samples.jsonl

if [ "$mode" = resolve ]; then
  say "generating $n synthetic leads (leadgen demo csv)"
  "$bin" demo csv --leads "$n" --seed 1 >"$data/leads.csv"
  echo "== audience resolution: $n leads, one campaign to all of them (pool $pool, batch $batch)"
  py prepare "$hp" "$state" --psql "$pg/$db" --csv "$data/leads.csv" --query ""
  psql -q "$pg/$db" -c "VACUUM ANALYZE app.leads"
  py resolve "$hp" "$state"
  grep '"campaign audience resolved"' "$data/server.log" | tail -n 1 | cut -c1-200
  echo "server peak RSS: $(awk '/VmHWM/ {print int($2 / 1024) " MB"}' "/proc/$server_pid/status")"
else
  say "generating $n recipients"
  python3 - "$n" >"$data/leads.csv" <<'EOF'
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("first_name,last_name,email,company_name,tags\n")
for i in range(n):
    w(f"Person{i},Test,person{i}@example{i % 50}.test,Company {i},bulk\n")
EOF
  label=
  [ "$mode" = kill ] && label=", kill -9 half-way"
  echo "== delivery: $n recipients, DKIM RSA-2048, sink $sink_kind, mail pool $pool, batch $batch$label"
  py prepare "$hp" "$state" --psql "$pg/$db" --csv "$data/leads.csv" --query "tags=bulk"
  psql -q "$pg/$db" -c "VACUUM ANALYZE app.leads"
  py send "$hp" "$state" --sink "$sink_kind" --sink-file "$sink_file"
  watch=(watch "$hp" "$state" --sink "$sink_kind" --sink-file "$sink_file" --target "$n" --samples "$samples")
  if [ "$mode" = kill ]; then
    py "${watch[@]}" --pids "$server_pid,$sink_pid" --stop-at $((n / 2))
    kill -KILL "$server_pid"
    killed=$(date +%s.%N)
    wait "$server_pid" 2>/dev/null || true
    sleep 0.5
    at=$(python3 -c "import sys; print(sum(1 for _ in open(sys.argv[1], 'rb')) if sys.argv[2] == 'aiosmtpd' else open(sys.argv[1], 'rb').read().count(b'\x01'))" "$sink_file" "$sink_kind")
    py kill "$state" --at $((at - $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['baseline'])" "$state"))) --time "$killed"
    say "killed the server (-9); restarting it"
    start_server
  fi
  py "${watch[@]}" --pids "$server_pid,$sink_pid"
  py report "$state" --sink "$sink_kind" --sink-file "$sink_file" --samples "$samples" --target "$n"
fi
echo "server log lines at WARN or ERROR: $(grep -cE '"level":"(WARN|ERROR)"' "$data/server.log" || true)"
