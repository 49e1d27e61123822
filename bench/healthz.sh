#!/usr/bin/env bash
# Load benchmark: requests/s and latency percentiles of GET /healthz over TLS with keep-alive,
# from wrk on loopback, plus the server's idle and loaded resident memory.
#
#   bench/healthz.sh [duration_secs] [connections]
#
# Uses the release build and the embedded PostgreSQL (its own data folder under target/),
# so nothing else needs to run. Bounded in time; stops the server at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
duration=${1:-15}
conns=${2:-64}
command -v wrk >/dev/null || apt_install wrk
ensure_postgres_binaries
cargo build --release --locked --quiet --bin leadgen

data=$(mktemp -d /tmp/leadgen-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
bench_waf_rules "$data/waf-rules.json"
LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
  target/release/leadgen serve --data-dir "$data" --https-port 18443 --http-port 18080 \
  >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }
sleep 2
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
echo "idle RSS: $(rss)"
wrk -t2 -c"$conns" -d"${duration}s" --latency https://localhost:18443/healthz
echo "RSS after load: $(rss)"
