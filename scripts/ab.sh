#!/usr/bin/env bash
# A/B of two flashmart binaries, back to back on the same services: the cost of one decision.
#
#   bash scripts/ab.sh BIN_A BIN_B [ROUNDS]        (make ab A=… B=… ROUNDS=…)
#
# Each round runs A then B (then B then A in the next round, so neither always goes first),
# each on a fresh database and Redis prefix with ONE release instance:
#   - coupon issue: wrk, AB_CONNS connections, every request a new user × campaign pair;
#   - order + pay:  wrk, AB_CONNS/2 connections, each creates an order of one unit and pays it.
# It prints, per binary and round, the rate and the CPU of the instance, of Redis and of MariaDB
# divided by the decisions made (µs per issued coupon, per paid order), then the median over the
# rounds. CPU is counted until 2 s after the load stops (settlement runs behind).
# CPU per decision is what to read on a shared box; rates move with whatever else runs.
# Env: AB_SECS (10) per phase, AB_CONNS (64), AB_USERS (8000); AB_ENV_A / AB_ENV_B: extra
# VAR=value words for the instance of A / of B (e.g. AB_ENV_B="REDIS_BUCKETS=1").
set -euo pipefail
# the scratch-app helpers, lt_ensure_k6, ensure_tools, ticks, svc_pids and WRK_SCRIPTS of
# `make bench`
# shellcheck source=scripts/bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench.sh"

[[ $# -ge 2 ]] || lt_die "usage: scripts/ab.sh BIN_A BIN_B [ROUNDS]"
BIN_A="$(realpath "$1")"
BIN_B="$(realpath "$2")"
ROUNDS="${3:-3}"
SECS="${AB_SECS:-10}"
CONNS="${AB_CONNS:-64}"
USERS="${AB_USERS:-8000}"
HALF=$((CONNS / 2))
ensure_tools
lt_ensure_k6

lt_services
svc_pids
REDIS_PID="${SVC_PIDS[0]}"
DB_PID="${SVC_PIDS[1]}"
((REDIS_PID > 0)) || lt_die "the private Redis is not running (its CPU is measured)"
((DB_PID > 0)) || lt_die "the private MariaDB is not running (its CPU is measured)"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-ab.XXXXXX")"
trap 'lt_stop_instances; lt_drop_scratch' EXIT
trap 'exit 130' INT TERM
hz="$(getconf CLK_TCK)"

# measure NAME STATUS PID WRK_ARGS…: runs wrk (its output in $LT_WORK/NAME.out) and prints
# "decisions/s app_µs redis_µs mariadb_µs" per decision, a decision being a response whose
# status key in the wrk report is STATUS (each counted until 2 s after wrk: settlement, and
# the steps it takes in Redis, run behind the requests)
measure() {
  local name="$1" status="$2" pid="$3" a0 r0 d0 a1 r1 d1 n
  shift 3
  a0="$(ticks "$pid")" r0="$(ticks "$REDIS_PID")" d0="$(ticks "$DB_PID")"
  WRK_DIR="$WRK_SCRIPTS" wrk --timeout 10s -d"${SECS}s" "$@" >"$LT_WORK/$name.out" 2>&1
  sleep 2
  a1="$(ticks "$pid")" r1="$(ticks "$REDIS_PID")" d1="$(ticks "$DB_PID")"
  n="$(sed -n 's/^WRK //p' "$LT_WORK/$name.out" | jq --arg s "$status" '.statuses[$s] // 0')"
  awk -v n="$n" -v s="$SECS" -v a=$((a1 - a0)) -v r=$((r1 - r0)) -v d=$((d1 - d0)) \
    -v hz="$hz" 'BEGIN{n = n > 0 ? n : 1
      printf "%.0f %.0f %.0f %.0f\n", n/s, a/hz/n*1e6, r/hz/n*1e6, d/hz/n*1e6}'
}

# one_round LABEL BIN [VAR=value …]: prints "LABEL coupons/s µs_app µs_redis paid/s µs_app µs_redis"
one_round() {
  local label="$1" pid campaigns products
  LT_BIN="$2"
  shift 2
  local kv
  for kv in "$@"; do export "${kv?}"; done # for the CLI (seed) and the instance alike
  LT_WORK="$(mktemp -d "$OUT/$label.XXXX")"
  lt_fresh fmab >/dev/null 2>&1
  lt_seed "$USERS" >/dev/null 2>&1
  lt_start_instance 0 off ORDER_RATE_PER_SECOND=1000000 ORDER_RATE_BURST=1000000 \
    PAYMENT_RATE_PER_SECOND=1000000 PAYMENT_RATE_BURST=1000000 2>/dev/null
  pid="${LT_PIDS[0]}"
  lt_admin_login || lt_die "admin login failed: $(tail -n 5 "$LT_WORK/instance-0.log")"
  "$LT_K6" run --quiet --no-usage-report --no-color -e BASE_URLS="${LT_BASES[0]}" \
    -e TOKENS_FILE="$LT_TOKENS" -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" \
    -e SUMMARY_JSON="$LT_WORK/prep.json" -e CAMPAIGNS=25 -e CAMPAIGN_QUANTITY=10000000 \
    -e PRODUCTS=8 -e STOCK=1000000 -e PRICE=100 -e CHARGE_FROM=0 -e CHARGE_COUNT="$USERS" \
    -e CHARGE=10000000 "$LT_REPO/loadtest/prepare.js" >"$LT_WORK/prep.out" 2>&1 ||
    lt_die "prepare failed: $(tail -n 5 "$LT_WORK/prep.out")"
  campaigns="$(jq -r '.digest.setup.campaigns | join(",")' "$LT_WORK/prep.json")"
  products="$(jq -r '.digest.setup.products | join(",")' "$LT_WORK/prep.json")"
  sleep 2 # settlement of the preparation drains

  local c_rate c_app c_redis c_db o_rate o_app o_redis o_db
  read -r c_rate c_app c_redis c_db < <(measure coupon issue_201 "$pid" -t1 -c"$CONNS" \
    -s "$WRK_SCRIPTS/coupon.lua" "${LT_BASES[0]}/" -- "$LT_TOKENS" "$campaigns" 0 1 1)
  read -r o_rate o_app o_redis o_db < <(measure orderpay pay_200 "$pid" -t"$HALF" -c"$HALF" \
    -s "$WRK_SCRIPTS/orderpay.lua" "${LT_BASES[0]}/" -- \
    "$LT_TOKENS" "$USERS" "$products" 0 1 "$HALF")
  lt_stop_instances
  LT_BASES=() LT_METRICS=()
  lt_drop_scratch >/dev/null 2>&1
  LT_DB_NAME=""
  for kv in "$@"; do unset "${kv%%=*}"; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$c_rate" "$c_app" "$c_redis" \
    "$c_db" "$o_rate" "$o_app" "$o_redis" "$o_db" | tee -a "$OUT/rounds.tsv"
}

printf 'bin\tcoupons/s\tapp µs/coupon\tRedis µs/coupon\tMariaDB µs/coupon\tpaid/s\tapp µs/paid\tRedis µs/paid\tMariaDB µs/paid\n'
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then
    one_round A "$BIN_A" ${AB_ENV_A:-}
    one_round B "$BIN_B" ${AB_ENV_B:-}
  else
    one_round B "$BIN_B" ${AB_ENV_B:-}
    one_round A "$BIN_A" ${AB_ENV_A:-}
  fi
done
echo "median over $ROUNDS rounds (A = $BIN_A, B = $BIN_B):"
# median (lowest–highest) of column COL of LABEL's rows
median() {
  awk -F'\t' -v l="$1" -v c="$2" '$1 == l {print $c}' "$OUT/rounds.tsv" | sort -n |
    awk '{v[NR] = $1} END {printf "%s (%s–%s)", v[int((NR + 1) / 2)], v[1], v[NR]}'
}
for label in A B; do
  printf '%s\tcoupons/s %s · app µs/coupon %s · Redis %s · MariaDB %s\n' "$label" \
    "$(median $label 2)" "$(median $label 3)" "$(median $label 4)" "$(median $label 5)"
  printf '%s\tpaid/s %s · app µs/paid %s · Redis %s · MariaDB %s\n' "$label" \
    "$(median $label 6)" "$(median $label 7)" "$(median $label 8)" "$(median $label 9)"
done
