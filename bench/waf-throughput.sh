#!/usr/bin/env bash
# Full-server throughput with the WAF's attack inspection on and off: wrk over TLS with keep-alive
# on loopback, one server process, a search-like GET (query string, browser headers, cookie) that
# the WAF inspects field by field before the handler answers without touching the database.
#
#   bench/waf-throughput.sh [duration_secs] [connections]
#
# The rules file is switched between runs (hot reload), in the order on, off, on, so drift
# between runs shows. Rate limits are `bench/rate-limits-bench.json` (far above the load) and the
# flood and anomaly guards are left out (`bench_waf_rules`): wrk is one address.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
duration=${1:-15}
conns=${2:-32}
command -v wrk >/dev/null || apt_install wrk
ensure_postgres_binaries
cargo build --release --locked --quiet --bin leadgen

data=$(mktemp -d /tmp/leadgen-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
bench_waf_rules "$data/on.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); [v.update(mode='off') for k, v in d['attack_protection'].items() if isinstance(v, dict) and 'mode' in v]; json.dump(d, open(sys.argv[2], 'w'))" \
  "$data/on.json" "$data/off.json"
cp "$data/on.json" "$data/waf-rules.json"
LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
LEADGEN_TLS__RELOAD_INTERVAL_SECS=1 \
  target/release/leadgen serve --data-dir "$data" --https-port 18443 --http-port 18080 \
  >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }
sleep 2

url='https://localhost:18443/healthz?q=company%3AAT%26T+OR+%22Select+Medical%22&title=VP%2C+Sales+%26+Marketing&country=IE&seniority=director&tags=q4&limit=50&after=7eed8d14f06d3fef'
run() {
  echo "== attack inspection $1"
  wrk -t2 -c"$conns" -d"${duration}s" --latency \
    -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' \
    -H 'Accept: application/json' \
    -H 'Accept-Language: en-GB,en;q=0.9' \
    -H 'Referer: https://localhost:18443/leads?view=all' \
    -H 'Cookie: theme=dark; lg_tz=Europe%2FDublin' \
    "$url" | grep -E 'Requests/sec|^ +(50|90|99)%|Non-2xx|requests in'
}
switch() {
  sleep 1.1
  cp "$data/$1.json" "$data/waf-rules.json"
  sleep 2.5
}
run on
switch off
run off
switch on
run on
