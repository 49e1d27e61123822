#!/usr/bin/env bash
# Leads at scale, through the whole server (HTTPS, authentication, WAF, rate limiter, RLS):
#   1. import: two synthetic files (A rows into organization A, B rows into organization B)
#      uploaded and imported by the import job; rows/s and the server's peak RSS, beside a raw
#      `\copy` of A's file into a table shaped like app.leads with the same indexes (the ceiling);
#   2. search: wrk on a first page, a deep keyset page, a multi-filter page, a full-text page, an
#      exact-email lookup and two counts, as organization A's admin: p50/p95/p99;
#   3. the same SQL in the database, under RLS as the app role and as the owner without RLS:
#      median execution time of each (EXPLAIN ANALYZE), and their ratio.
#
#   bench/leads.sh [rows_a] [rows_b] [wrk_secs] [connections]     (default 900000 100000 10 8)
#
# Uses the release build and the embedded PostgreSQL (a fresh data folder under /tmp). Stops the
# server at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
rows_a=${1:-900000}
rows_b=${2:-100000}
duration=${3:-10}
conns=${4:-8}
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
ensure_postgres_binaries
cargo build --release --locked --quiet --bin leadgen
bin=target/release/leadgen

data=$(mktemp -d /tmp/leadgen-leads-bench.XXXXXX)
chmod 755 "$data"
log="$data/server.log"
# The shipped WAF rules without the anomaly baselines: a load generator is exactly the repeated
# searching they exist to stop.
bench_waf_rules "$data/waf-rules.json"
LEADGEN_PERIMETER__WAF_RULES_PATH="$data/waf-rules.json" \
LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION=false \
LEADGEN_PERIMETER__RATE_LIMITS_PATH="$root/bench/rate-limits-bench.json" \
LEADGEN_SECRETS__APP_KEY="leads benchmark application key, not a secret" \
LEADGEN_SERVER__ADMIN_PORT=19465 \
LEADGEN_IMPORTS__BATCH_ROWS=${BATCH_ROWS:-5000} \
  "$bin" serve --data-dir "$data" --https-port 18444 --http-port 18081 >"$log" 2>&1 &
pid=$!
# KEEP=1 keeps the data folder (and its cluster's files) for a closer look afterwards.
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $data" || rm -rf "$data"' EXIT
for _ in $(seq 600); do grep -q 'LeadGen is serving' "$log" && break; sleep 0.1; done
grep -q 'LeadGen is serving' "$log" || { cat "$log"; die "server did not start"; }
base=https://localhost:18444
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
psql_su() { psql "host=$data/run user=postgres dbname=leadgen" -X -q -v ON_ERROR_STOP=1 "$@"; }

# An admin with an organization; returns an access token carrying it.
org_admin() {
  local email=$1 name=$2 session token org
  session=$(curl -sSk --fail-with-body -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"violet tractor hums at dawn\"}" "$base/auth/v1/signup")
  token=$(field "['access_token']" <<<"$session")
  org=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$name\"}" "$base/api/v1/orgs" | field "['id']")
  curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"org_id\":\"$org\"}" "$base/api/v1/session/org" | field "['access_token']"
}
token_a=$(org_admin admin@a.bench "Bench A")
token_b=$(org_admin admin@b.bench "Bench B")

say "generating $rows_a + $rows_b synthetic leads"
"$bin" demo csv --leads "$rows_a" --seed 1 >"$data/a.csv"
"$bin" demo csv --leads "$rows_b" --seed 2 --offset "$rows_a" >"$data/b.csv"
chmod 644 "$data"/*.csv
ls -l "$data"/a.csv "$data"/b.csv | awk '{print "  " $5 " bytes  " $9}'

peak_rss() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status"; }
import_file() {
  local token=$1 file=$2 id t0 t1 status
  t0=$(date +%s.%N)
  id=$(curl -sSk --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: text/csv' \
    -H 'Accept: application/json' --data-binary "@$file" "$base/api/v1/imports?name=$(basename "$file")" | field "['id']")
  t_up=$(date +%s.%N)
  curl -sSk --fail-with-body -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"mode":"create_only"}' "$base/api/v1/imports/$id/start"
  while :; do
    status=$(curl -sSk -H "Authorization: Bearer $token" "$base/api/v1/imports/$id")
    case $(field "['status']" <<<"$status") in
      done) break ;;
      failed|cancelled) die "import failed: $status" ;;
    esac
    sleep 0.5
  done
  t1=$(date +%s.%N)
  python3 - "$t0" "$t_up" "$t1" "$status" <<'EOF'
import json, sys
t0, tup, t1 = map(float, sys.argv[1:4]); s = json.loads(sys.argv[4])
rows = s["rows_done"]
print(f"  {rows} rows: upload+check {tup-t0:.1f} s, import job {t1-tup:.1f} s "
      f"({rows/(t1-tup):,.0f} rows/s), end to end {t1-t0:.1f} s ({rows/(t1-t0):,.0f} rows/s); "
      f"created {s['created']}, duplicates {s['duplicates']}, rejected {s['rejected']}")
EOF
}
echo
echo "== import through the server (batch ${BATCH_ROWS:-5000} rows)"
import_file "$token_a" "$data/a.csv"
import_file "$token_b" "$data/b.csv"
echo "  server peak RSS after both imports: $(peak_rss)"

echo
echo "== ceiling: raw \\copy of A's file into a table shaped like app.leads, same indexes"
psql_su <<'EOF'
CREATE TABLE public.copy_ceiling (LIKE app.leads INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS);
ALTER TABLE public.copy_ceiling DROP COLUMN tags, ADD COLUMN tags text;
ALTER TABLE public.copy_ceiling ALTER id SET DEFAULT gen_random_uuid(),
  ALTER org_id SET DEFAULT '00000000-0000-0000-0000-00000000000a',
  ALTER created_at SET DEFAULT now(), ALTER updated_at SET DEFAULT now();
CREATE UNIQUE INDEX ON public.copy_ceiling (org_id, email_bidx) WHERE email_bidx IS NOT NULL;
ALTER TABLE public.copy_ceiling ADD PRIMARY KEY (org_id, id) INCLUDE (sensitivity, read_groups);
CREATE INDEX ON public.copy_ceiling (org_id, score DESC, id DESC);
CREATE INDEX ON public.copy_ceiling USING gin (search app.tsvector_leakproof_ops);
CREATE INDEX ON public.copy_ceiling (org_id, company_id) WHERE company_id IS NOT NULL;
CREATE INDEX ON public.copy_ceiling (org_id, linkedin_url) WHERE linkedin_url IS NOT NULL;
CREATE INDEX ON public.copy_ceiling (org_id, company_domain) WHERE company_domain IS NOT NULL;
EOF
t0=$(date +%s.%N)
psql_su -c "\\copy public.copy_ceiling (first_name,last_name,title,seniority,department,email_ct,phone_ct,linkedin_url,company_name,company_domain,industry,employee_range,city,region,country,source,status,tags,do_not_contact) FROM '$data/a.csv' WITH (FORMAT csv, HEADER true)"
t1=$(date +%s.%N)
python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'  {int(sys.argv[3])} rows in {t:.1f} s ({int(sys.argv[3])/t:,.0f} rows/s)')" "$t0" "$t1" "$rows_a"
psql_su -c "DROP TABLE public.copy_ceiling" -c "VACUUM ANALYZE app.leads"

# Search targets.
org_a=$(psql_su -At -c "SELECT id FROM app.organizations WHERE name = 'Bench A'")
admin_a=$(psql_su -At -c "SELECT id FROM app.users WHERE email = 'admin@a.bench'")
deep_id=$(psql_su -At -c "SELECT id FROM app.leads WHERE org_id = '$org_a' ORDER BY id DESC OFFSET $((rows_a / 2)) LIMIT 1")
cursor=$(printf '{"sort":"-created","score":0,"id":"%s"}' "$deep_id" | base64 -w0 | tr '+/' '-_' | tr -d '=')
email=$(sed -n "$((rows_a / 3))p" "$data/a.csv" | cut -d, -f6)
[ -n "$email" ] || email=$(sed -n "$((rows_a / 3 + 1))p" "$data/a.csv" | cut -d, -f6)
# A phrase: one company's name, and how many of A's leads carry it.
phrase=$(psql_su -At -c "SELECT company_name FROM app.leads WHERE org_id = '$org_a' AND company_name NOT LIKE '%,%' ORDER BY id LIMIT 1 OFFSET 1000")
phrase_q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(chr(34) + sys.argv[1] + chr(34)))' "$phrase")
phrase_ts=$(python3 -c 'import re, sys; print(" <-> ".join("\x27\x27" + w.lower() + "\x27\x27" for w in re.findall(r"\w+", sys.argv[1])))' "$phrase")
phrase_n=$(psql_su -At -c "SELECT count(*) FROM app.leads WHERE org_id = '$org_a' AND company_name = \$q\$$phrase\$q\$")
# A rare word: in the notes of 20 of A's leads, written through the API.
for lead in $(psql_su -At -c "SELECT id FROM app.leads WHERE org_id = '$org_a' ORDER BY id LIMIT 20 OFFSET 5000"); do
  curl -sSk --fail-with-body -o /dev/null -H "Authorization: Bearer $token_a" -H 'Content-Type: application/json' \
    -d '{"body":"Met at the Zanzibar partner summit; wants a pilot"}' "$base/api/v1/leads/$lead/notes"
done
psql_su -c "ANALYZE app.leads"
# The server reads the planner's full-text statistics every 30 s (which words are common).
sleep 31
cat >"$data/report.lua" <<'EOF'
done = function(summary, latency, requests)
  io.write(string.format("  -> %d requests, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, non-2xx %d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
end
EOF
search() {
  local label=$1 path=$2
  printf '%s: GET %s\n' "$label" "$path"
  wrk -t2 -c"$conns" -d"${duration}s" -s "$data/report.lua" -H "Authorization: Bearer $token_a" \
    "$base$path" | grep -- '->'
}
echo
echo "== search through the server as A's admin ($rows_a leads in A, $rows_b in B): wrk -t2 -c$conns -d${duration}s"
search "first page" "/api/v1/leads?limit=50"
search "deep keyset page (row $((rows_a / 2)))" "/api/v1/leads?limit=50&cursor=$cursor"
search "multi-filter" "/api/v1/leads?limit=50&seniority=vp,director&country=US&employee_range=51-200,201-500&status=new"
search "full text" "/api/v1/leads?limit=50&q=sales%20-intern"
search "full text, a phrase ($phrase: $phrase_n leads)" "/api/v1/leads?limit=50&q=$phrase_q"
search "full text, a word in 20 leads' notes" "/api/v1/leads?limit=50&q=zanzibar"
search "exact email" "/api/v1/leads?email=$email"
search "count, all (capped at 10,000)" "/api/v1/leads/count"
search "count, filtered (capped)" "/api/v1/leads/count?seniority=vp&country=US"
search "count, all, exact" "/api/v1/leads/count?exact=true"
search "count, filtered, exact" "/api/v1/leads/count?seniority=vp&country=US&exact=true"

echo
echo "== the same SQL in the database: under RLS (leadgen_app, A's admin) vs the owner without RLS"
python3 - "$data" "$org_a" "$admin_a" "$deep_id" "$phrase_ts" <<'EOF'
import re, subprocess, sys, statistics
data, org, admin, deep, phrase = sys.argv[1:6]
cols = "id, org_id, first_name, last_name, title, seniority, department, email_ct, email_bidx, phone_ct, linkedin_url, company_id, company_name, company_domain, industry, employee_range, city, region, country, source, status, owner_id, tags, custom, score, do_not_contact, read_groups, write_groups, sensitivity, acl_revision, created_at, updated_at"
queries = {
  "first page": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' ORDER BY id DESC LIMIT 51",
  "exact email": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND email_bidx = (SELECT email_bidx FROM app.leads WHERE org_id = '{org}' AND email_bidx IS NOT NULL LIMIT 1) ORDER BY id DESC LIMIT 51",
  "deep keyset page": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND id < '{deep}' ORDER BY id DESC LIMIT 51",
  "multi-filter": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND seniority = ANY('{{vp,director}}') AND country = ANY('{{US}}') AND employee_range = ANY('{{51-200,201-500}}') AND status = ANY('{{new}}') ORDER BY id DESC LIMIT 51",
  "full text": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND search OPERATOR(app.@@) to_tsquery('simple', '''sales'':* & !''intern'':*') ORDER BY id DESC LIMIT 51",
  "full text, phrase": f"SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND search OPERATOR(app.@@) to_tsquery('simple', '{phrase}') ORDER BY id DESC LIMIT 51",
  "full text, notes": f"SELECT * FROM (SELECT {cols} FROM app.leads WHERE org_id = '{org}' AND search OPERATOR(app.@@) to_tsquery('simple', $$'zanzibar':*$$) OFFSET 0) matching ORDER BY id DESC LIMIT 51",
  "count, capped": f"SELECT count(*) FROM (SELECT 1 FROM app.leads WHERE org_id = '{org}' LIMIT 10001) matching",
  "count, all": f"SELECT count(*) FROM app.leads WHERE org_id = '{org}'",
  "count, filtered": f"SELECT count(*) FROM app.leads WHERE org_id = '{org}' AND seniority = ANY('{{vp}}') AND country = ANY('{{US}}')",
}
def run(sql, rls):
    setup = ""
    if rls:
        setup = (f"SET ROLE leadgen_app; SELECT set_config('app.org_id', '{org}', false), "
                 f"set_config('app.user_id', '{admin}', false), set_config('app.role', 'admin', false), "
                 f"set_config('app.aal', 'aal1', false);")
    script = setup + "".join(f"EXPLAIN (ANALYZE, TIMING OFF) {sql};" for _ in range(15))
    out = subprocess.run(["psql", f"host={data}/run user=postgres dbname=leadgen", "-X", "-q", "-At", "-f", "-"],
                         input=script.replace(";", ";\n"), capture_output=True, text=True, check=True).stdout
    times = [float(t) for t in re.findall(r"Execution Time: ([0-9.]+) ms", out)]
    return statistics.median(times[3:])
for label, sql in queries.items():
    a, b = run(sql, True), run(sql, False)
    print(f"  {label:18} RLS {a:8.2f} ms   owner {b:8.2f} ms   ratio {a/b:5.2f}")
EOF
echo
echo "server log lines at WARN or ERROR: $(grep -cE '"level":"(WARN|ERROR)"' "$log" || true)"
