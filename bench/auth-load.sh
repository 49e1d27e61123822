#!/usr/bin/env bash
# Load benchmark of authentication through the whole server, over TLS with keep-alive, from wrk
# on loopback:
#   1. authenticated requests: GET /auth/v1/user with a bearer access token (token verified, its
#      session checked in the database, the user read);
#   2. refreshes: POST /auth/v1/token?grant_type=refresh_token with correct rotation, each refresh
#      token used exactly once (bench/refresh.lua), with the count of failed refreshes.
#
#   bench/auth-load.sh [duration_secs] [connections]
#
# Uses the release build and the embedded PostgreSQL (a fresh data folder under /tmp), so nothing
# else needs to run. Bounded in time; stops the server at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
duration=${1:-10}
conns=${2:-16}
threads=2
[ $((conns % threads)) -eq 0 ] || die "connections must be a multiple of $threads"
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
ensure_postgres_binaries
cargo build --release --locked --quiet --bin leadgen

data=$(mktemp -d /tmp/leadgen-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
bench_waf_rules "$data/waf-rules.json"
# Sign-up returns a session at once; a fixed application key. bcrypt keeps its default cost (12).
LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
LEADGEN_SECRETS__APP_KEY="auth load benchmark application key, not a secret" \
LEADGEN_SERVER__ADMIN_PORT=19464 \
  LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
  target/release/leadgen serve --data-dir "$data" --https-port 18443 --http-port 18080 \
  >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }

api=https://localhost:18443/auth/v1
email="load@bench.example"
password="violet tractor hums at dawn"
credentials="{\"email\":\"$email\",\"password\":\"$password\"}"
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

session=$(curl -sSk --fail-with-body -H 'Content-Type: application/json' -d "$credentials" "$api/signup")
access=$(field access_token <<<"$session")
[ -n "$access" ] || die "sign-up gave no session: $session"
status=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "$api/user")
[ "$status" = 200 ] || die "GET /user with the new token answered $status"

# One session per connection for the refresh run, each from a password sign-in (bcrypt, so two
# at a time, one per core), plus one spare per thread: wrk calls request() once in the first
# thread to check the script, and the token taken by that call is never sent.
sessions=$((conns + threads))
tokens="$data/refresh-tokens"
say "signing in $sessions sessions for the refresh run"
seq "$sessions" | xargs -P 2 -I{} curl -sSk --fail-with-body -H 'Content-Type: application/json' \
  -d "$credentials" "$api/token?grant_type=password" -o "$data/session-{}.json"
for f in "$data"/session-*.json; do field refresh_token <"$f"; echo; done | sed '/^$/d' >"$tokens"
[ "$(wc -l <"$tokens")" -eq "$sessions" ] || die "expected $sessions refresh tokens, got $(wc -l <"$tokens")"

sleep 2
echo
echo "== GET /auth/v1/user with a bearer token: wrk -t$threads -c$conns -d${duration}s"
wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -H "Authorization: Bearer $access" \
  "$api/user" | tee "$data/user.out"
grep -q 'Non-2xx' "$data/user.out" && echo "ERRORS: some answers were not 200" || echo "non-200 answers: 0"

echo
echo "== POST /auth/v1/token?grant_type=refresh_token, rotating: wrk -t$threads -c$conns -d${duration}s"
wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s bench/refresh.lua \
  "$api/token?grant_type=refresh_token" -- "$tokens" "$threads"

# Afterwards the account's sessions are all still live: no refresh was taken for a replay.
status=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "$api/user")
echo "GET /user with the first token after the runs: $status"
reuse=$(grep -c 'refresh_token_reuse' "$log" || true)
echo "refresh-token reuse detections in the server log: $reuse"
echo "server log lines at WARN or ERROR: $(grep -cE '"level":"(WARN|ERROR)"' "$log" || true)"
grep -E '"level":"(WARN|ERROR)"' "$log" | sed 's/"timestamp":"[^"]*",//; s/"request_id":"[^"]*",//' \
  | sort | uniq -c | sort -rn | head -n 5 | cut -c1-400 | sed 's/^/  /' || true
echo "access log, requests by route and status:"
grep -o '"route":"[^"]*","status":[0-9]*' "$log" | sort | uniq -c | sed 's/^/  /'
