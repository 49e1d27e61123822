#!/usr/bin/env bash
# Retention at scale: ROWS leads in one organization (imported through the server), EXPIRED of
# them last changed 30 months ago. The same mix of searches (first page, multi-filter, full
# text, exact email, capped count) runs twice through the server: once alone, once while
# `leadgen retention run` anonymises the expired leads in batches. Prints both latency
# distributions, the ratio of their p95s, and the run's leads/s.
#
#   bench/retention.sh [rows] [expired] [wrk_secs] [connections]   (default 1000000 300000 20 8)
#
# Uses the release build and the embedded PostgreSQL (a fresh data folder under /tmp). Stops the
# server at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
rows=${1:-1000000}
expired=${2:-300000}
duration=${3:-20}
conns=${4:-8}
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
ensure_postgres_binaries
cargo build --release --locked --quiet --bin leadgen
bin=target/release/leadgen

data=$(mktemp -d /tmp/leadgen-retention-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
bench_waf_rules "$data/waf-rules.json"
export LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
  LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
  LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
  LEADGEN_SECRETS__APP_KEY="retention benchmark application key, not a secret" \
  LEADGEN_SERVER__ADMIN_PORT=19466 \
  LEADGEN_IMPORTS__BATCH_ROWS=5000
"$bin" serve --data-dir "$data" --https-port 18445 --http-port 18082 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $data" || rm -rf "$data"' EXIT
for _ in $(seq 600); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }
base=https://localhost:18445
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
psql_su() { psql "host=$data/run user=postgres dbname=leadgen" -X -q -v ON_ERROR_STOP=1 "$@"; }

session=$(curl -sSk --fail-with-body -H 'Content-Type: application/json' \
  -d '{"email":"admin@r.bench","password":"violet tractor hums at dawn"}' "$base/auth/v1/signup")
token=$(field "['access_token']" <<<"$session")
org=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name":"Bench R"}' "$base/api/v1/orgs" | field "['id']")
token=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"org_id\":\"$org\"}" "$base/api/v1/session/org" | field "['access_token']")

say "importing $rows synthetic leads"
"$bin" demo csv --leads "$rows" --seed 3 >"$data/r.csv"
id=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: text/csv' \
  -H 'Accept: application/json' --data-binary "@$data/r.csv" "$base/api/v1/imports?name=r.csv" | field "['id']")
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
echo "  created $(field "['created']" <<<"$status") leads"

# The expired ones: no change for 30 months (and no note or activity, as imported).
psql_su -c "UPDATE app.leads SET updated_at = now() - interval '30 months'
            WHERE id IN (SELECT id FROM app.leads WHERE org_id = '$org' ORDER BY id LIMIT $expired)"
psql_su -c "VACUUM ANALYZE app.leads"
email=$(sed -n "$((rows / 2))p" "$data/r.csv" | cut -d, -f6)

cat >"$data/mix.lua" <<EOF
local paths = {
  "/api/v1/leads?limit=50",
  "/api/v1/leads?limit=50&seniority=vp,director&country=US&status=new",
  "/api/v1/leads?limit=50&q=sales%20-intern",
  "/api/v1/leads?email=$email",
  "/api/v1/leads/count",
}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("  -> %d requests, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, non-2xx %d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
  io.write(string.format("P95=%.3f\n", latency:percentile(95) / 1000))
end
EOF
mix() { wrk -t2 -c"$conns" -d"${duration}s" -s "$data/mix.lua" -H "Authorization: Bearer $token" "$base/"; }

echo
echo "== the search mix alone: wrk -t2 -c$conns -d${duration}s"
alone=$(mix)
grep -- '->' <<<"$alone"

echo
echo "== the same mix while \`leadgen retention run\` anonymises $expired of $rows leads"
t0=$(date +%s.%N)
"$bin" retention run --json --data-dir "$data" >"$data/retention.json" 2>"$data/retention.err" &
rpid=$!
during=$(mix)
if kill -0 "$rpid" 2>/dev/null; then overlap="the whole window"; else overlap="only part of the window"; fi
wait "$rpid" || { cat "$data/retention.err"; die "retention run failed"; }
t1=$(date +%s.%N)
grep -- '->' <<<"$during"
python3 - "$t0" "$t1" "$data/retention.json" "$alone" "$during" "$overlap" <<'EOF'
import json, re, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
report = json.load(open(sys.argv[3]))
p95 = lambda s: float(re.search(r"P95=([\d.]+)", s).group(1))
n = report["anonymised"]
print(f"  retention run: {n} leads anonymised in {t1 - t0:.1f} s ({n / (t1 - t0):,.0f} leads/s), "
      f"running during {sys.argv[6]}")
print(f"  search p95 during the run / alone: {p95(sys.argv[5]) / p95(sys.argv[4]):.2f}x")
EOF
left=$(psql_su -At -c "SELECT count(*) FROM app.leads WHERE org_id = '$org' AND anonymized_at IS NULL AND updated_at < now() - interval '24 months'")
echo "  expired leads left un-anonymised: $left"
