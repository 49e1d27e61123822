# Shared helpers for LeadGen's scripts: find or install what a command needs, and start local
# services that are not running. Sourced, not executed.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* with your system's package manager"
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    as_root apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  say "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# PostgreSQL's server programs (initdb, pg_ctl, postgres), installed from Debian when missing.
ensure_postgres_binaries() {
  if [ -z "$(pg_bin_dir)" ]; then
    apt_install postgresql
  fi
  [ -n "$(pg_bin_dir)" ] || die "PostgreSQL server programs still missing after installing the postgresql package"
}

# A PostgreSQL on 127.0.0.1:5432 accepting `postgres` without a password, as the tests expect.
# When nothing listens there, a throwaway test cluster is started in $LEADGEN_TEST_PG_DIR.
ensure_test_postgres() {
  if port_open 5432; then
    say "PostgreSQL is reachable on 127.0.0.1:5432"
    return
  fi
  ensure_postgres_binaries
  local bin dir user
  bin=$(pg_bin_dir)
  dir=${LEADGEN_TEST_PG_DIR:-/tmp/leadgen-test-pg}
  user=$(id -un)
  say "starting a test PostgreSQL cluster in $dir"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    # initdb and postgres refuse to run as root.
    user=postgres
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
    chown postgres: "$dir"
  fi
  run_pg() { if [ "$user" = "$(id -un)" ]; then "$@"; else runuser -u "$user" -- "$@"; fi; }
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    run_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
  fi
  run_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p 5432 -c unix_socket_directories=$dir -c max_connections=200 -c fsync=off" start >/dev/null
  port_open 5432 || die "PostgreSQL did not start; see $dir/postgres.log"
}

# A Redis on 127.0.0.1:6379, installed and started when missing.
ensure_redis() {
  if port_open 6379; then
    say "Redis is reachable on 127.0.0.1:6379"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/leadgen-test-redis.log
  for _ in $(seq 50); do port_open 6379 && return; sleep 0.1; done
  die "Redis did not start; see /tmp/leadgen-test-redis.log"
}

# Node.js for the browser tests, and Debian's Chromium for Playwright to drive.
ensure_browser_tools() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# The API fuzzer the integration tests run (tests/it/fuzz.rs), pinned, in a virtual environment
# under target/ so a clean clone gets its own.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local venv=$root/target/tools/schemathesis
  if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null \
      || apt_install python3-venv
    say "installing schemathesis $SCHEMATHESIS_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  export LEADGEN_SCHEMATHESIS=$venv/bin/schemathesis
}

# The mail peers of the campaign tests: a real SMTP server (aiosmtpd, e2e/smtp_sink.py) and an
# independent DKIM verifier (dkimpy, with PyNaCl for Ed25519), in their own virtualenv.
MAIL_PEERS="aiosmtpd==1.4.6 dkimpy==1.1.8 pynacl==1.6.2"
ensure_mail_peers() {
  local venv=$root/target/tools/mail-peers
  if ! [ -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$MAIL_PEERS" ]; then
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null \
      || apt_install python3-venv
    say "installing the mail peers ($MAIL_PEERS)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $MAIL_PEERS
    echo "$MAIL_PEERS" > "$venv/.installed"
  fi
  command -v openssl >/dev/null || apt_install openssl
  export LEADGEN_MAIL_PYTHON=$venv/bin/python
  # The crate test crates/mail/tests/dkim_verify.rs checks signatures with the same dkimpy.
  export LEADGEN_DKIM_PYTHON=$venv/bin/python
}

# pgBackRest, the backup engine `leadgen backup` drives (Debian package `pgbackrest`).
ensure_pgbackrest() {
  command -v pgbackrest >/dev/null || apt_install pgbackrest
}

# True when the operator enabled backups: LEADGEN_BACKUP__ENABLED, or `enabled = true` in the
# [backup] table of the configuration file (LEADGEN_CONFIG).
backups_enabled() {
  case "${LEADGEN_BACKUP__ENABLED:-}" in true | 1) return 0 ;; false | 0) return 1 ;; esac
  [ -n "${LEADGEN_CONFIG:-}" ] && [ -f "$LEADGEN_CONFIG" ] || return 1
  awk '/^[[:space:]]*\[/ { in_backup = ($0 ~ /^[[:space:]]*\[backup\][[:space:]]*$/) }
       in_backup && /^[[:space:]]*enabled[[:space:]]*=[[:space:]]*true/ { found = 1 }
       END { exit !found }' "$LEADGEN_CONFIG"
}

# A cargo subcommand, installed from source when missing.
ensure_cargo_tool() {
  local sub=$1 crate=$2
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    say "installing $crate"
    cargo install --locked --quiet "$crate"
  fi
}

# bench_waf_rules OUT: the shipped WAF rules without the per-address flood threshold and the lead
# access anomaly baselines. A load generator is one address sending thousands of requests a
# second: exactly what those guards refuse, so a benchmark of throughput runs without them.
bench_waf_rules() {
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['monitoring'].pop('anomalies', None); d.pop('rate_limiting', None); json.dump(d, open(sys.argv[2], 'w'))" \
    config/waf-rules.json "$1"
}
