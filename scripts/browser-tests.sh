#!/usr/bin/env bash
# Browser tests of the storefront (part of `make test`): Debian's Chromium driven by the npm
# package playwright-core (pinned in web-tests/package-lock.json; it never downloads a browser).
#
# What it does: starts the private services, builds the debug binary, creates a FRESH database
# (migrated + `seed --demo`) and a random Redis key prefix, starts ONE `flashmart serve` on a
# free loopback port, runs web-tests/storefront.test.mjs with node's test runner, and stops the
# server (by its PID), runs `flashmart audit` (ledger, Redis = MySQL), drops the database and
# deletes the prefix's keys on exit.
# Screenshots of the main pages: web-tests/artifacts/*.png (git-ignored).
#
# Needs: node >= 20 with npm, /usr/bin/chromium (`apt-get install -y chromium`; .ci/run does it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
ARTIFACTS_DIR="${ARTIFACTS_DIR:-$REPO/web-tests/artifacts}"

log() { printf '[browser-tests.sh] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- tools -------------------------------------------------------------------------------------
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is missing: apt-get install -y chromium"
command -v node >/dev/null || die "node is missing (apt-get install -y nodejs npm)"
want="$(node -p 'require("./web-tests/package-lock.json").packages["node_modules/playwright-core"].version')"
have="$(node -p 'require("./web-tests/node_modules/playwright-core/package.json").version' 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
  log "installing web-tests dependencies (npm ci: playwright-core $want)"
  (cd web-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# --- one fresh server (as in scripts/security/schemathesis.sh) ---------------------------------
bash scripts/services.sh up >&2
eval "$(bash scripts/with-env.sh bash -c 'printf "SERVER_BASE_DB=%q\nREDIS_URL=%q\n" "$DATABASE_URL" "$REDIS_URL"')"
cargo build --quiet --bin flashmart
BIN="$REPO/target/debug/flashmart"

RUN_ID="$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DB_NAME="fmweb_$RUN_ID"
PREFIX="web$RUN_ID"
read -r DB_USER DB_PASS DB_HOST DB_PORT < <(python3 - "$SERVER_BASE_DB" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.unquote(u.username or "root"), urllib.parse.unquote(u.password or "") or "-",
      u.hostname or "127.0.0.1", u.port or 3306)
PY
)
[[ "$DB_PASS" == "-" ]] && DB_PASS=""
db_sql() { MYSQL_PWD="$DB_PASS" mariadb --no-defaults --protocol=tcp -h"$DB_HOST" -P"$DB_PORT" -u"$DB_USER" "$@"; }

SERVER_PID=""
WORK="$(mktemp -d)"
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f "$WORK/server.log" ]]; then
    log "last server log lines:"
    tail -n 30 "$WORK/server.log" >&2 || true
  fi
  db_sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`" 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "{$PREFIX}:*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

db_sql -e "CREATE DATABASE \`$DB_NAME\`"
export DATABASE_URL="${SERVER_BASE_DB%/*}/$DB_NAME"
export REDIS_URL REDIS_KEY_PREFIX="$PREFIX"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
ADMIN_EMAIL="admin@flashmart.local"
ADMIN_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
export JWT_SECRET ADMIN_EMAIL ADMIN_PASSWORD
export BIND_ADDR="127.0.0.1:0" METRICS_ADDR=off LOG_FORMAT=json
# one browser, many shoppers, one IP: lift the per-IP sign-up budget (limits have their own tests)
export AUTH_RATE_PER_SECOND=1000 AUTH_RATE_BURST=1000
unset EXTERNAL_PLATFORM_URL EXTERNAL_PLATFORM_SECRET TRUSTED_PROXIES HSTS_MAX_AGE_SECS

"$BIN" migrate >&2
"$BIN" seed --demo >"$WORK/seed.log" 2>&1 || {
  cat "$WORK/seed.log" >&2
  die "seed failed"
}
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 300); do
  # the "flashmart serving" line: the app is built and its listener bound (the real port)
  ADDR="$(grep '"flashmart serving"' "$WORK/server.log" | grep -o '"addr":"127\.0\.0\.1:[0-9]*"' |
    head -n1 | cut -d'"' -f4 || true)"
  [[ -n "$ADDR" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || {
    cat "$WORK/server.log" >&2
    die "flashmart serve exited"
  }
  sleep 0.1
done
[[ -n "$ADDR" ]] || die "flashmart serve did not report its address"
BASE="http://$ADDR"
for _ in $(seq 1 100); do
  curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
log "server pid $SERVER_PID on $BASE (database $DB_NAME, Redis prefix {$PREFIX})"

# --- the tests -----------------------------------------------------------------------------------
rm -rf "$ARTIFACTS_DIR"
mkdir -p "$ARTIFACTS_DIR"
BASE_URL="$BASE" ARTIFACTS_DIR="$ARTIFACTS_DIR" \
  node --test --test-concurrency=1 --test-reporter=spec web-tests/storefront.test.mjs
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  log "the server logged errors during the run:"
  grep '"level":"ERROR"' "$WORK/server.log" | head -n 20 >&2
  exit 1
fi
# everything the pages did went through the services: the books must balance afterwards
"$BIN" audit --wait-secs 30 >"$WORK/audit.log" 2>&1 || {
  cat "$WORK/audit.log" >&2
  die "flashmart audit found violations after the browser tests"
}
log "passed (audit clean); screenshots in $ARTIFACTS_DIR"
