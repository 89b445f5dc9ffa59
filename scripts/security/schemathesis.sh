#!/usr/bin/env bash
# API fuzzing with schemathesis against the app's own OpenAPI document.
#
#   scripts/security/schemathesis.sh            # small run (SCHEMATHESIS_EXAMPLES, default 25)
#   SCHEMATHESIS_EXAMPLES=500 scripts/security/schemathesis.sh   # long run (`make fuzz-api`)
#
# What it does: starts the private services, builds the debug binary, creates a FRESH database
# (migrated + `seed --demo`) and a random Redis key prefix, starts ONE `flashmart serve` on a
# free loopback port with generous rate limits and a throw-away JWT secret, logs in as the demo
# user alice, then runs schemathesis with her bearer token. The server is stopped (by its PID)
# and the database dropped on exit. Exits non-zero on any schemathesis failure.
#
# Knobs: SCHEMATHESIS_EXAMPLES (max examples per operation), SCHEMATHESIS_SEED (reproduce a
# run), SCHEMATHESIS_WORKERS (default 2), SCHEMATHESIS_MAX_TIME (optional overall budget, s),
# SECURITY_KEEP_DB=1 (keep the database for inspection), SECURITY_OUT (report directory,
# default target/security/schemathesis).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

SCHEMATHESIS_VERSION="4.32.5" # pinned: CLI flags changed across major versions (3.x -> 4.x)
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-25}"
WORKERS="${SCHEMATHESIS_WORKERS:-2}"
OUT="${SECURITY_OUT:-$REPO/target/security/schemathesis}"
VENV="$REPO/.venv"

log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- tools -------------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != *"$SCHEMATHESIS_VERSION"* ]]; then
  log "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- one fresh server (same block in scripts/security/sqlmap.sh) --------------------------------
bash scripts/services.sh up >&2
# DATABASE_URL / REDIS_URL of the private services (an exported value wins, as in `make test`).
eval "$(bash scripts/with-env.sh bash -c 'printf "SERVER_BASE_DB=%q\nREDIS_URL=%q\n" "$DATABASE_URL" "$REDIS_URL"')"
cargo build --quiet --bin flashmart
BIN="$REPO/target/debug/flashmart"

RUN_ID="$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DB_NAME="fmsec_$RUN_ID"
# mysql://user:password@host:port/db -> parts for the mariadb client
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
  if [[ "${SECURITY_KEEP_DB:-0}" != 1 ]]; then
    db_sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`" 2>/dev/null || true
    redis-cli -u "$REDIS_URL" --scan --pattern "{$PREFIX}:*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  else
    log "kept database $DB_NAME and Redis prefix {$PREFIX}"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
PREFIX="sec$RUN_ID"
trap cleanup EXIT
trap 'exit 130' INT TERM

db_sql -e "CREATE DATABASE \`$DB_NAME\`"
export DATABASE_URL="${SERVER_BASE_DB%/*}/$DB_NAME"
export REDIS_URL
export REDIS_KEY_PREFIX="$PREFIX"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
export JWT_SECRET
ADMIN_EMAIL="admin@flashmart.local"
ADMIN_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
export ADMIN_EMAIL ADMIN_PASSWORD
export BIND_ADDR="127.0.0.1:0" METRICS_ADDR=off LOG_FORMAT=json
# The fuzzer is one client sending thousands of requests: lift the per-instance budgets so it
# tests the API, not the limiter (429s are covered by tests/api/errors.rs).
export RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000
export COUPON_ISSUE_PER_SECOND=1000000 COUPON_ISSUE_BURST=1000000
export ORDER_RATE_PER_SECOND=1000000 ORDER_RATE_BURST=1000000
export PAYMENT_RATE_PER_SECOND=1000000 PAYMENT_RATE_BURST=1000000
unset EXTERNAL_PLATFORM_URL EXTERNAL_PLATFORM_SECRET TRUSTED_PROXIES

"$BIN" migrate >&2
"$BIN" seed --demo >"$WORK/seed.log" 2>&1 || {
  cat "$WORK/seed.log" >&2
  die "seed failed"
}
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(grep -o '"addr":"127\.0\.0\.1:[0-9]*"' "$WORK/server.log" | head -n1 | cut -d'"' -f4 || true)"
  [[ -n "$ADDR" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || {
    cat "$WORK/server.log" >&2
    die "flashmart serve exited"
  }
  sleep 0.1
done
[[ -n "$ADDR" ]] || die "flashmart serve did not report its address"
BASE="http://$ADDR"
for _ in $(seq 1 50); do
  curl -fsS "$BASE/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN="$(curl -fsS "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"alice@example.com","password":"flashmart-demo"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')" ||
  die "login as alice@example.com failed"
log "server pid $SERVER_PID on $BASE (database $DB_NAME, Redis prefix {$PREFIX})"
# --- end of server block -----------------------------------------------------------------------

SCHEMA_URL="$BASE/api/v1/openapi.json"
curl -fsS -H "Authorization: Bearer $TOKEN" "$SCHEMA_URL" -o "$WORK/openapi.json" ||
  die "could not fetch $SCHEMA_URL"
mkdir -p "$OUT"
cp "$WORK/openapi.json" "$OUT/openapi.json"
ADMIN_TOKEN="$(curl -fsS "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"${ADMIN_EMAIL:-admin@flashmart.local}\",\"password\":\"$ADMIN_PASSWORD\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')" ||
  die "login as the admin failed"

# Checks: all of them, except the ones that cannot apply to this API. Each exclusion says why.
EXCLUDED_CHECKS=(
  # positive_data_acceptance expects every schema-valid request to succeed. Here some cannot,
  # by contract (../shared/API.md), whatever the schema says:
  # - JSON Schema counts 3892.0 as an "integer"; the API refuses any number with a fraction
  #   part or an exponent where it wants an integer (amounts, prices, quantities);
  # - cross-field rules that JSON Schema cannot express: issueEndsAt after issueStartsAt,
  #   discountValue 1-100 only for PERCENT, each productId at most once per order;
  # - state: a coupon campaign may be over, a product out of stock, an order already paid.
  # Bounds that JSON Schema CAN express belong in the document (see docs/SECURITY.md).
  positive_data_acceptance
)
# SCHEMATHESIS_EXCLUDE (comma-separated) replaces the list, e.g. for a quick local triage.
EXCLUDE="${SCHEMATHESIS_EXCLUDE-$(IFS=,; echo "${EXCLUDED_CHECKS[*]}")}"

# run_pass NAME TOKEN [schemathesis filter args…]: one schemathesis run; returns its exit code.
run_pass() {
  local name="$1" token="$2"
  shift 2
  local dir="$OUT/$name"
  mkdir -p "$dir"
  # shellcheck disable=SC2054 # "junit,ndjson" is one argument
  local args=(
    run "$SCHEMA_URL"
    --url "$BASE"
    --header "Authorization: Bearer $token"
    --max-examples "$EXAMPLES"
    --workers "$WORKERS"
    --checks all
    --request-timeout 10
    --generation-database none
    --report junit,ndjson
    --report-dir "$dir"
    --no-color
    "$@"
  )
  [[ -n "$EXCLUDE" ]] && args+=(--exclude-checks "$EXCLUDE")
  [[ -n "${SCHEMATHESIS_SEED:-}" ]] && args+=(--seed "$SCHEMATHESIS_SEED")
  [[ -n "${SCHEMATHESIS_MAX_TIME:-}" ]] && args+=(--max-time "$SCHEMATHESIS_MAX_TIME")
  log "pass '$name': schemathesis $SCHEMATHESIS_VERSION, max examples $EXAMPLES per operation, excluded checks: ${EXCLUDE:-none}"
  local rc
  set +e
  # run from the report directory so schemathesis keeps its state (.schemathesis/) there
  (cd "$dir" && "$VENV/bin/schemathesis" "${args[@]}") 2>&1 | tee "$dir/output.txt"
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

started=$(date +%s)
failed=()
# 1. every operation as the demo shopper alice (admin routes answer her 403, as documented)
#    (except log-out, which would revoke her token for the rest of the run)
run_pass user "$TOKEN" --exclude-path '/api/v1/auth/logout' || failed+=(user)
# 2. the admin routes as the admin, so their input handling is fuzzed too
run_pass admin "$ADMIN_TOKEN" --include-path-regex '^/api/v1/admin/' || failed+=(admin)
# 3. log-out last (its first success revokes alice's token; later examples get the documented 401)
run_pass logout "$TOKEN" --include-path '/api/v1/auth/logout' || failed+=(logout)
elapsed=$(($(date +%s) - started))

cp "$WORK/server.log" "$OUT/server.log"
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  log "the server logged errors during the run:"
  grep '"level":"ERROR"' "$WORK/server.log" | head -n 20 >&2
  failed+=(server-errors)
fi
if ((${#failed[@]})); then
  log "FAILED (${failed[*]}) after ${elapsed}s; details in $OUT/*/output.txt"
  exit 1
fi
log "passed in ${elapsed}s; reports in $OUT"
