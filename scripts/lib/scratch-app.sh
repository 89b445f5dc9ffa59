#!/usr/bin/env bash
# One scratch app for the shell scripts (loadtest smoke, bench, security scans, browser tests):
# private services, a fresh database and Redis key prefix with throw-away secrets, `flashmart`
# commands in a directory without a .env file, instances on free loopback ports (waited for
# until ready, stopped by PID), and the clean-up. Source it; nothing runs on its own.
#
#   source scripts/lib/scratch-app.sh
#   lt_services                      # services up; DATABASE_URL / REDIS_URL (exported ones win)
#   LT_BIN=… LT_WORK="$(mktemp -d)"  # the binary, a work directory (instance logs land there)
#   lt_fresh fmsomething             # fresh database + Redis prefix + secrets, exported
#   lt_cli migrate; lt_cli seed --demo
#   lt_start_instance 0 off [VAR=value …]   # → LT_PIDS, LT_BASES, LT_METRICS
#   …
#   lt_stop_instances; lt_drop_scratch      # (from an EXIT trap; keep both on failure)

LT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

lt_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lt_die() {
  printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
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
# With both exported, those servers are used and the private ones are not started (README).
lt_services() {
  local db="${DATABASE_URL:-}" redis="${REDIS_URL:-}"
  if [[ -z "$db" || -z "$redis" ]]; then
    bash "$LT_REPO/scripts/services.sh" up
  fi
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
  # every key of the prefix (SCAN, never KEYS); UNLINK in batches. Keys are `{prefix}:…` and,
  # by owner, `{prefix:bN.M}:…` (a bucket inside the hash tag): both patterns.
  local pattern
  for pattern in "{$LT_PREFIX}:*" "{$LT_PREFIX:*}:*"; do
    lt_redis --scan --pattern "$pattern" | xargs -r -n 500 \
      redis-cli -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" unlink >/dev/null || true
  done
  lt_log "dropped $LT_DB_NAME and {$LT_PREFIX}:*, {$LT_PREFIX:*}:*"
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

# ------------------------------------------------------------------ one app for a scanner

# lt_single_app NAME: the server of the security scans and the browser tests. Services up,
# debug build (FM_BIN skips it), a fresh database NAME_<random> with demo data, and ONE
# `flashmart serve` on a free loopback port with every per-client budget lifted (a scanner is
# one client sending thousands of requests: it should test the API, not the limiter). Sets
# LT_BIN, LT_WORK, BASE (the instance's URL), LT_LOG (its log) and TOKEN (the demo shopper
# alice's bearer token); installs an EXIT trap that stops the server and drops the scratch
# database and Redis keys, unless LT_KEEP=1.
lt_single_app() {
  lt_require python3 curl mariadb redis-cli cargo
  lt_services >&2
  if [[ -n "${FM_BIN:-}" ]]; then
    LT_BIN="$(realpath "$FM_BIN")"
  else
    (cd "$LT_REPO" && cargo build --quiet --bin flashmart)
    LT_BIN="${CARGO_TARGET_DIR:-$LT_REPO/target}/debug/flashmart"
  fi
  LT_WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-$1.XXXXXX")"
  trap lt_single_app_cleanup EXIT
  trap 'exit 130' INT TERM
  lt_fresh "$1"
  export ADMIN_EMAIL="admin@flashmart.local"
  export ORDER_RATE_PER_SECOND=1000000 ORDER_RATE_BURST=1000000
  export PAYMENT_RATE_PER_SECOND=1000000 PAYMENT_RATE_BURST=1000000
  export AUTH_RATE_PER_SECOND=1000000 AUTH_RATE_BURST=1000000
  unset EXTERNAL_PLATFORM_URL EXTERNAL_PLATFORM_SECRET TRUSTED_PROXIES
  lt_cli migrate >&2
  lt_cli seed --demo >"$LT_WORK/seed.log" 2>&1 || {
    cat "$LT_WORK/seed.log" >&2
    lt_die "seed failed"
  }
  lt_start_instance 0 off
  BASE="${LT_BASES[0]}"
  LT_LOG="$LT_WORK/instance-0.log"
  TOKEN="$(curl -fsS -m 10 "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"alice@example.com","password":"flashmart-demo"}' | lt_json "['accessToken']")" ||
    lt_die "login as alice@example.com failed"
}

lt_single_app_cleanup() {
  local rc=$?
  lt_stop_instances
  if ((rc != 0)) && [[ -f "${LT_LOG:-}" ]]; then
    lt_log "last server log lines:"
    tail -n 30 "$LT_LOG" >&2 || true
  fi
  if [[ "${LT_KEEP:-0}" != 1 ]]; then
    lt_drop_scratch
  else
    lt_log "kept database ${LT_DB_NAME:-?} and Redis prefix {${LT_PREFIX:-?}}"
  fi
  rm -rf "${LT_WORK:?}"
  exit "$rc"
}
