#!/usr/bin/env bash
# `make bench`: flashmart under full load on this machine, side by side with the limits it is
# compared against, as ONE markdown table saved to bench/results/<YYYY-MM-DD>.md.
#
#   scripts/bench.sh
#
# Release build; private services (scripts/services.sh; exported DATABASE_URL + REDIS_URL win);
# a fresh database + Redis key prefix; demo data + BENCH_USERS bulk users with tokens; TWO
# `flashmart serve` instances on free loopback ports, each with its own metrics listener. Then:
#   1. k6 coupon-rush       burst on one campaign of BENCH_RUSH_LIMIT (exactly that many issued);
#                           then the same rush on a campaign of its own from benches/openloop.rs
#   2. wrk coupon issue     max HTTP issue rate, distinct user×campaign pairs (real issues)
#   3. redis-benchmark      the same coupon_issue.lua (lib/ text + driver) by EVALSHA (Redis limit), one request
#                           per call, then BENCH_RB_BATCH requests per call (group commit)
#   4. conventional_coupon  SELECT … FOR UPDATE transactions straight on MariaDB (the
#                           `cargo bench --bench conventional_coupon` target, run directly)
#   5. k6 flash-sale        order + pay on 3 hot products with small stock, plus browsing
#   6. wrk order + pay      max paid orders/s on products with plenty of stock; then the same
#                           with wrk capped at 4 connections (the ledger lag with CPU to spare)
#   7. wrk /health/live vs wrk /products/popular, both while k6 pays orders in the background
#   8. k6 popular-storm     popular products at a fixed rate while orders are paid; then the
#                           same reads from benches/openloop.rs (a cheap open-loop generator)
#                           while k6 only pays
#   9. k6 mixed             realistic mix
#  10. memory               BENCH_MEM_CONNS (5000) concurrent connections per instance (wrk)
# then scrapes ledger_lag_seconds from both instances, reads peak RSS (VmHWM), runs
# `flashmart audit` and prints the table (bench/report.py; wrk scripts in bench/wrk/). Exits non-zero if the audit fails (or setup fails);
# missed targets are reported, not fatal. Every phase is bounded; total ≈ 6-8 min after build.
#
# Knobs (environment): BENCH_DURATION (s per phase, default 15), BENCH_CONC (concurrency of
# every closed-loop tool: wrk connections, redis-benchmark clients, conventional workers, k6
# pre-allocated VUs; default 64), BENCH_USERS (20000), BENCH_RUSH_RATE (3000/s),
# BENCH_RUSH_LIMIT (10000), BENCH_FLASH_RATE (1000/s), BENCH_STORM_READ_RATE (2000/s),
# BENCH_STORM_PAY_RATE (300/s), BENCH_BG_PAY_RATE (300/s), BENCH_MIX_RATE (1500/s),
# BENCH_MEM_CONNS (5000), BENCH_RB_BATCH (16 requests per call in the batched Redis limit),
# BENCH_SETTLEMENT_WORKERS (2 = one per instance, the default
# deployment; 1 = only instance 0 settles), FM_BIN (skip the build), KEEP=1, BENCH_OUT.
set -euo pipefail

# shellcheck source=scripts/loadtest-smoke.sh
source "$(dirname "${BASH_SOURCE[0]}")/loadtest-smoke.sh"

# wrk's Lua scripts (bench/wrk/*.lua; they `require` report.lua from WRK_DIR) and the report
# that turns the phases' outputs into the table (bench/report.py)
WRK_SCRIPTS="$LT_REPO/bench/wrk"

D="${BENCH_DURATION:-15}"
C="${BENCH_CONC:-64}"
USERS="${BENCH_USERS:-20000}"
RUSH_RATE="${BENCH_RUSH_RATE:-3000}"
RUSH_LIMIT="${BENCH_RUSH_LIMIT:-10000}"
FLASH_RATE="${BENCH_FLASH_RATE:-1000}"
STORM_READ_RATE="${BENCH_STORM_READ_RATE:-2000}"
STORM_PAY_RATE="${BENCH_STORM_PAY_RATE:-300}"
BG_PAY_RATE="${BENCH_BG_PAY_RATE:-300}"
MIX_RATE="${BENCH_MIX_RATE:-1500}"
MEM_CONNS="${BENCH_MEM_CONNS:-5000}"
RB_BATCH="${BENCH_RB_BATCH:-16}"
HALF=$((C / 2))
((HALF >= 1)) || lt_die "BENCH_CONC must be at least 2"

# ------------------------------------------------------------------ CPU accounting

# ticks PID: utime+stime of a process in clock ticks (0 if gone)
ticks() {
  local s
  s="$(cat "/proc/$1/stat" 2>/dev/null)" || {
    echo 0
    return
  }
  s="${s##*) }"
  # fields after "(comm) ": state=1 … utime=12 stime=13
  awk '{print $12 + $13}' <<<"$s"
}

# thread_ticks PID NAME: utime+stime of the threads of PID named NAME (the settlement thread)
thread_ticks() {
  local t s sum=0
  for t in /proc/"$1"/task/*; do
    [[ "$(cat "$t/comm" 2>/dev/null)" == "$2" ]] || continue
    s="$(cat "$t/stat" 2>/dev/null)" || continue
    s="${s##*) }"
    sum=$((sum + $(awk '{print $12 + $13}' <<<"$s")))
  done
  echo "$sum"
}

# busy ticks of the whole machine (user+nice+system+irq+softirq+steal)
sys_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

SVC_PIDS=()
svc_pids() {
  local f p
  for f in "$LT_REPO/.services/redis.pid" "$LT_REPO/.services/mariadb.pid"; do
    p="$(tr -dc 0-9 <"$f" 2>/dev/null || true)"
    SVC_PIDS+=("${p:-0}")
  done
}

# scrape TAG: both instances' /metrics into $W/m-TAG-<i>.txt (for per-phase ledger lag)
scrape() {
  local i
  for i in 0 1; do
    curl -fsS -m 5 "${LT_METRICS[$i]}" >"$W/m-$1-$i.txt" 2>/dev/null || : >"$W/m-$1-$i.txt"
  done
}

PH_N=0
phase_begin() {
  PH_NAME="$1"
  PH_N=$((PH_N + 1))
  scrape "$PH_N-a"
  PH_WALL0="$(date +%s.%N)"
  PH_A0="$(ticks "${LT_PIDS[0]}")"
  PH_A1="$(ticks "${LT_PIDS[1]}")"
  PH_R="$(ticks "${SVC_PIDS[0]}")"
  PH_M="$(ticks "${SVC_PIDS[1]}")"
  PH_S=$(($(thread_ticks "${LT_PIDS[0]}" settlement) + $(thread_ticks "${LT_PIDS[1]}" settlement)))
  PH_BUSY="$(sys_ticks)"
  PH_GEN=0
  lt_log "phase: $1"
}

# gen_time FILE...: adds the user+sys seconds /usr/bin/time wrote to FILE(s) to the phase
gen_time() {
  local f v
  for f in "$@"; do
    v="$(tail -n 1 "$f" 2>/dev/null | awk '{print $1 + $2}')"
    PH_GEN="$(awk -v a="$PH_GEN" -v b="${v:-0}" 'BEGIN{print a + b}')"
  done
}

phase_end() {
  local wall1 a0 a1 r m s busy
  wall1="$(date +%s.%N)"
  a0="$(ticks "${LT_PIDS[0]}")"
  a1="$(ticks "${LT_PIDS[1]}")"
  r="$(ticks "${SVC_PIDS[0]}")"
  m="$(ticks "${SVC_PIDS[1]}")"
  s=$(($(thread_ticks "${LT_PIDS[0]}" settlement) + $(thread_ticks "${LT_PIDS[1]}" settlement)))
  busy="$(sys_ticks)"
  scrape "$PH_N-b"
  # name wall app redis mariadb loadgen total_busy rss settlement-thread (all in cores =
  # cpu-seconds / wall seconds; the settlement threads' share is part of app)
  awk -v n="$PH_NAME" -v w0="$PH_WALL0" -v w1="$wall1" -v a="$((a0 - PH_A0 + a1 - PH_A1))" \
    -v r="$((r - PH_R))" -v m="$((m - PH_M))" -v g="$PH_GEN" -v b="$((busy - PH_BUSY))" \
    -v st="$((s - PH_S))" \
    -v hz="$(getconf CLK_TCK)" \
    -v idx="$PH_N" -v rss="$(rss_kib "${LT_PIDS[0]}" VmRSS)/$(rss_kib "${LT_PIDS[1]}" VmRSS)" \
    'BEGIN{w=w1-w0; printf "%s\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%.4f\n", idx, n, w, a/hz/w, r/hz/w, m/hz/w, g/w, b/hz/w, rss, st/hz/w}' \
    >>"$W/cpu.tsv"
}


# run_wrk NAME SCRIPT THREADS CONNS SECONDS PATH ARGS_FOR_INSTANCE_0 -- ARGS_FOR_INSTANCE_1
# one wrk process per instance, in parallel; outputs $W/wrk-NAME-{0,1}.out (+ .time)
run_wrk() {
  local name="$1" script="$2" threads="$3" conns="$4" secs="$5" path="$6"
  shift 6
  local a0=() a1=() seen=0 x
  for x in "$@"; do
    if [[ "$x" == -- ]]; then
      seen=1
      continue
    fi
    if ((seen)); then a1+=("$x"); else a0+=("$x"); fi
  done
  local i pids=()
  for i in 0 1; do
    local args=("${a0[@]}")
    ((i == 1)) && args=("${a1[@]}")
    WRK_DIR="$WRK_SCRIPTS" /usr/bin/time -f '%U %S' -o "$W/wrk-$name-$i.time" \
      wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$WRK_SCRIPTS/$script" \
      "${LT_BASES[$i]}$path" -- "${args[@]}" >"$W/wrk-$name-$i.out" 2>&1 &
    pids+=($!)
  done
  local rc=0
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  gen_time "$W/wrk-$name-0.time" "$W/wrk-$name-1.time"
  ((rc == 0)) || lt_log "wrk $name failed: $(tail -n 3 "$W/wrk-$name-0.out" "$W/wrk-$name-1.out")"
  return 0
}

# run_k6 NAME SCENARIO ARGS...: k6 with timing; its rc is recorded, not fatal
# openloop_each NAME PATH RATE [ARG…]: benches/openloop.rs against PATH of both instances at
# once, RATE/2 each, for the phase's duration; `{i}` in an ARG becomes the instance's index.
# Writes $W/NAME-<i>.out (the RESULT line) and counts the generators' CPU as the load's.
openloop_each() {
  local name="$1" path="$2" rate="$3" i arg pids=() args
  shift 3
  for i in 0 1; do
    args=()
    for arg in "$@"; do args+=("${arg//\{i\}/$i}"); done
    /usr/bin/time -f '%U %S' -o "$W/$name-$i.time" "$OPEN_BIN" \
      --url "${LT_BASES[$i]}$path" --rate "$((rate / 2))" --duration "$D" \
      --connections "$HALF" "${args[@]}" >"$W/$name-$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || lt_log "openloop $name failed"; done
  gen_time "$W/$name-0.time" "$W/$name-1.time"
}

run_k6() {
  local name="$1" scenario="$2" rc=0
  shift 2
  /usr/bin/time -f '%U %S' -o "$W/k6-$name.time" \
    "$LT_K6" run --quiet --no-usage-report --no-color \
    -e BASE_URLS="$(lt_base_urls)" -e TOKENS_FILE="$LT_TOKENS" \
    -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" -e SUMMARY_JSON="$W/k6-$name.json" \
    "$@" "$LT_REPO/loadtest/$scenario.js" >"$W/k6-$name.out" 2>&1 || rc=$?
  gen_time "$W/k6-$name.time"
  echo "$rc" >"$W/k6-$name.rc"
  grep -v '^\s*$' "$W/k6-$name.out" | grep -v '^time=' | tail -n 20 >&2 || true
}

# bench_bin NAME: builds the benches/NAME.rs target and prints its executable (dies if that fails)
bench_bin() {
  local bin
  bin="$(cd "$LT_REPO" && cargo bench --quiet --bench "$1" --no-run --message-format=json \
    2>/dev/null | jq -r --arg n "$1" 'select(.target.name == $n and .executable != null) |
    .executable' | tail -n 1)"
  [[ -x "$bin" ]] || lt_die "building benches/$1.rs failed"
  echo "$bin"
}

fact() { printf '%s=%s\n' "$1" "$2" >>"$W/facts.txt"; }

rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ------------------------------------------------------------------ main

# wrk and jq come from Debian; installed with apt-get when missing and we are root
ensure_tools() {
  local missing=() c
  for c in wrk jq; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    lt_log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
      --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
      lt_die "apt-get install ${missing[*]} failed"
  else
    lt_die "missing ${missing[*]}: sudo apt-get install -y ${missing[*]}"
  fi
}

bench_cleanup() {
  local rc=$?
  [[ -n "${BG_K6:-}" ]] && kill -TERM "$BG_K6" 2>/dev/null
  lt_stop_instances
  if [[ -n "${RB_PREFIX:-}" ]]; then
    lt_redis --scan --pattern "{$RB_PREFIX}:*" | xargs -r -n 5000 \
      redis-cli -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" unlink >/dev/null || true
  fi
  if [[ "${KEEP:-0}" != 1 ]]; then
    lt_drop_scratch
  else
    lt_log "kept database ${LT_DB_NAME:-?}, Redis prefix {${LT_PREFIX:-?}}"
  fi
  lt_log "work files in $W"
  exit "$rc"
}

main() {
  local started=$SECONDS
  ensure_tools
  lt_require python3 curl mariadb redis-cli redis-benchmark wrk jq cargo
  lt_ensure_k6
  lt_services
  if [[ -n "${FM_BIN:-}" ]]; then
    LT_BIN="$(realpath "$FM_BIN")"
  else
    lt_log "release build (binary + conventional_coupon bench)"
    (cd "$LT_REPO" && cargo build --release --quiet --bin flashmart)
    LT_BIN="${CARGO_TARGET_DIR:-$LT_REPO/target}/release/flashmart"
  fi
  # the conventional_coupon bench target, built now and run directly in its phase (so a
  # concurrent source change cannot trigger a rebuild in the middle of the measurements)
  CONV_BIN="$(bench_bin conventional_coupon)"
  OPEN_BIN="$(bench_bin openloop)"
  local built=$SECONDS
  W="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-bench.XXXXXX")"
  LT_WORK="$W"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  : >"$W/cpu.tsv"
  : >"$W/facts.txt"
  svc_pids
  fact load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
  fact commit "$(git -C "$LT_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$LT_REPO" diff --quiet HEAD -- src lua Cargo.toml 2>/dev/null || echo '+dirty')"
  fact cpus "$(nproc)"
  fact conc "$C"
  fact duration "$D"

  lt_fresh fmbench
  lt_seed "$USERS"
  lt_start_instance 0 on
  if [[ "${BENCH_SETTLEMENT_WORKERS:-2}" == 1 ]]; then
    lt_start_instance 1 on SETTLEMENT_WORKER=off
  else
    lt_start_instance 1 on
  fi
  fact settlement_workers "${BENCH_SETTLEMENT_WORKERS:-2}"
  fact pids "${LT_PIDS[*]}"
  lt_admin_login

  # 1. k6 coupon-rush: one campaign, burst, exactly the limit issued
  local rush
  rush="$(lt_create_campaign "bench rush" "$RUSH_LIMIT")"
  fact rush_coupon "$rush"
  fact rush_limit "$RUSH_LIMIT"
  phase_begin "k6 coupon-rush"
  run_k6 rush coupon-rush -e RATE="$RUSH_RATE" -e DURATION="${D}s" -e VUS="$C" \
    -e COUPON_ID="$rush" -e COUPON_LIMIT="$RUSH_LIMIT" -e EXPECT_SOLD_OUT=1
  phase_end

  # 1b. the same rush from the cheap open-loop generator (benches/openloop.rs, one thread per
  # instance, each sending its half of the users in turn), on a campaign of its own: the
  # rush's latency without k6's own share of the CPU on the sending side
  local open_rush
  open_rush="$(lt_create_campaign "bench rush openloop" "$RUSH_LIMIT")"
  fact open_rush_coupon "$open_rush"
  phase_begin "openloop coupon-rush"
  openloop_each openrush "/api/v1/coupons/$open_rush/issue" "$RUSH_RATE" --method POST \
    --tokens-file "$LT_TOKENS" --users "{i}/2"
  phase_end

  # 2. wrk coupon issue: 25 campaigns of 10M, distinct user×campaign pairs (500k with 20k
  #    users: more than wrk can issue in a phase at ~14k/s, so every call really issues)
  run_k6 prep-coupons prepare -e CAMPAIGNS=25 -e CAMPAIGN_QUANTITY=10000000
  local campaigns
  campaigns="$(jq -r '.digest.setup.campaigns | join(",")' "$W/k6-prep-coupons.json")"
  [[ -n "$campaigns" ]] || lt_die "preparing campaigns failed"
  phase_begin "wrk coupon issue"
  run_wrk coupon coupon.lua 1 "$HALF" "$D" / \
    "$LT_TOKENS" "$campaigns" 0 2 1 -- "$LT_TOKENS" "$campaigns" 1 2 1
  phase_end

  # 3. Redis limit: the same script by EVALSHA, same concurrency, on its own prefix. Every key
  #    of a call carries one hash tag, {RB_PREFIX}, standing for one bucket of a deployment of
  #    one bucket: ARGV[1] = B = 1, ARGV[2] = bucket 0 (lua/coupon_issue.lua's header). On a
  #    standalone Redis the tag only has to be common to the call's keys; the bucket tags of
  #    src/cache/keys.rs matter on a cluster (scripts/bench-cluster.sh).
  RB_PREFIX="fmrb$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local sha p="{$RB_PREFIX}"
  # the script as the server loads it: the step's text (lib/) before the driver
  sha="$(cat "$LT_REPO/lua/lib/coupon_issue.lua" "$LT_REPO/lua/coupon_issue.lua" |
    lt_redis -x script load)"
  lt_redis hset "$p:coupon:1" total 1000000000 issued 0 startsMs 0 endsMs 99999999999999 \
    validMs 604800000 >/dev/null
  phase_begin "redis-benchmark EVALSHA"
  /usr/bin/time -f '%U %S' -o "$W/redis-benchmark.time" \
    redis-benchmark -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" -c "$C" -n $((D * 12000)) \
    -r 100000000 --csv EVALSHA "$sha" 5 "$p:seq:ucoupon" "$p:events" \
    "$p:ucoupon:owners" "$p:coupon:1" "$p:coupon:1:users" 1 0 __rand_int__ "req-__rand_int__" \
    "$(date +%s%3N)" "ev-__rand_int__" 1 >"$W/redis-benchmark.csv" 2>"$W/redis-benchmark.err" ||
    lt_log "redis-benchmark failed: $(tail -n 3 "$W/redis-benchmark.err")"
  gen_time "$W/redis-benchmark.time"
  phase_end
  fact rb_issued "$(lt_redis hget "$p:coupon:1" issued)"

  # 3b. the same script deciding RB_BATCH requests per call (what group commit sends under load)
  local keys=("$p:seq:ucoupon" "$p:events" "$p:ucoupon:owners") args=(1 0) now k
  now="$(date +%s%3N)"
  for ((k = 0; k < RB_BATCH; k++)); do
    keys+=("$p:coupon:2" "$p:coupon:2:users")
    args+=(__rand_int__ "req-__rand_int__" "$now" "ev-__rand_int__" 2)
  done
  lt_redis hset "$p:coupon:2" total 1000000000 issued 0 startsMs 0 endsMs 99999999999999 \
    validMs 604800000 >/dev/null
  phase_begin "redis-benchmark EVALSHA x${RB_BATCH}"
  /usr/bin/time -f '%U %S' -o "$W/redis-benchmark-batch.time" \
    redis-benchmark -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" -c "$C" -n $((D * 12000 / RB_BATCH)) \
    -r 100000000 --csv EVALSHA "$sha" "${#keys[@]}" "${keys[@]}" "${args[@]}" \
    >"$W/redis-benchmark-batch.csv" 2>"$W/redis-benchmark-batch.err" ||
    lt_log "redis-benchmark (batches) failed: $(tail -n 3 "$W/redis-benchmark-batch.err")"
  gen_time "$W/redis-benchmark-batch.time"
  phase_end
  fact rb_batch "$RB_BATCH"
  fact rb_batch_issued "$(lt_redis hget "$p:coupon:2" issued)"
  lt_redis --scan --pattern "$p:*" | xargs -r -n 5000 \
    redis-cli -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" unlink >/dev/null || true
  RB_PREFIX=""

  # 4. conventional design limit (no HTTP): cargo bench --bench conventional_coupon
  phase_begin "conventional (MariaDB FOR UPDATE)"
  DATABASE_URL="$LT_BASE_DATABASE_URL" /usr/bin/time -f '%U %S' -o "$W/conventional.time" \
    "$CONV_BIN" --bench --concurrency "$C" --duration "$D" >"$W/conventional.out" 2>&1 ||
    lt_log "conventional bench failed: $(tail -n 5 "$W/conventional.out")"
  gen_time "$W/conventional.time"
  phase_end
  grep -v '^RESULT' "$W/conventional.out" >&2 || true

  # 5. k6 flash-sale: 3 hot products × 100 units
  phase_begin "k6 flash-sale"
  run_k6 flash flash-sale -e RATE="$FLASH_RATE" -e DURATION="${D}s" -e VUS="$C" \
    -e HOT_PRODUCTS=3 -e HOT_STOCK=100 -e BUYERS=2000 -e CHARGE=1000000
  phase_end

  # 6. wrk order + pay: 8 products × 1M units, 4000 users with 10M won each
  run_k6 prep-orders prepare -e PRODUCTS=8 -e STOCK=1000000 -e PRICE=100 \
    -e CHARGE_FROM=2000 -e CHARGE_COUNT=4000 -e CHARGE=10000000
  local products
  products="$(jq -r '.digest.setup.products | join(",")' "$W/k6-prep-orders.json")"
  [[ -n "$products" ]] || lt_die "preparing products failed"
  # users 2000..5999 of the file (charged above): pass a trimmed token file
  sed -n '2001,6000p' "$LT_TOKENS" >"$W/order-tokens.csv"
  phase_begin "wrk order + pay"
  run_wrk orderpay orderpay.lua "$HALF" "$HALF" "$D" / \
    "$W/order-tokens.csv" 4000 "$products" 0 2 "$HALF" -- \
    "$W/order-tokens.csv" 4000 "$products" 1 2 "$HALF"
  phase_end

  # 6b. the same with the load generator capped at 2 connections per instance: the ledger lag
  # when wrk and the API leave MariaDB more of the two cores (its phase row has the lag); after
  # phase 6's backlog has drained, so none of its events count here
  sleep 8
  phase_begin "wrk order + pay, 4 connections"
  run_wrk orderpay-capped orderpay.lua 2 2 "$D" / \
    "$W/order-tokens.csv" 4000 "$products" 0 2 2 -- \
    "$W/order-tokens.csv" 4000 "$products" 1 2 2
  phase_end

  # 7. server limit: /health/live vs /products/popular (wrk), both while orders are paid (k6)
  local token
  token="$(head -n 1 "$LT_TOKENS" | cut -d, -f3)"
  "$LT_K6" run --quiet --no-usage-report --no-color -e BASE_URLS="$(lt_base_urls)" \
    -e TOKENS_FILE="$LT_TOKENS" -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" \
    -e SUMMARY_JSON="$W/k6-bgpay.json" -e READ_RATE=0 -e PAY_RATE="$BG_PAY_RATE" \
    -e DURATION="$((2 * D + 6))s" -e VUS="$C" -e PAYERS=2000 -e CHARGE=100000 \
    "$LT_REPO/loadtest/popular-storm.js" >"$W/k6-bgpay.out" 2>&1 &
  BG_K6=$!
  sleep 4 # setup (products, charges) done, payments flowing
  phase_begin "wrk /health/live (+k6 paying)"
  run_wrk health get.lua 1 "$HALF" "$D" /health/live -- --
  phase_end
  phase_begin "wrk /products/popular (+k6 paying)"
  run_wrk popular get.lua 1 "$HALF" "$D" /api/v1/products/popular "$token" -- "$token"
  phase_end
  wait "$BG_K6" || true
  BG_K6=""
  grep -v '^\s*$' "$W/k6-bgpay.out" | tail -n 6 >&2 || true

  # 8. k6 popular-storm at a fixed rate
  phase_begin "k6 popular-storm"
  run_k6 storm popular-storm -e READ_RATE="$STORM_READ_RATE" -e PAY_RATE="$STORM_PAY_RATE" \
    -e DURATION="${D}s" -e VUS="$C" -e PAYERS=2000 -e CHARGE=100000
  phase_end

  # 8b. the same reads from a cheap open-loop generator (benches/openloop.rs, one thread per
  # instance), while k6 pays at the same rate: what the reads cost and wait without k6's own
  # share of the CPU on their side (k6's payments count as "other" in the phase's cpu row)
  "$LT_K6" run --quiet --no-usage-report --no-color -e BASE_URLS="$(lt_base_urls)" \
    -e TOKENS_FILE="$LT_TOKENS" -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" \
    -e SUMMARY_JSON="$W/k6-openpay.json" -e READ_RATE=0 -e PAY_RATE="$STORM_PAY_RATE" \
    -e DURATION="$((D + 5))s" -e VUS="$C" -e PAYERS=2000 -e CHARGE=100000 \
    "$LT_REPO/loadtest/popular-storm.js" >"$W/k6-openpay.out" 2>&1 &
  local open_pay=$!
  sleep 4 # setup done, payments flowing
  phase_begin "openloop popular-storm (+k6 paying)"
  openloop_each openloop /api/v1/products/popular "$STORM_READ_RATE" --token "$token"
  phase_end
  wait "$open_pay" || true

  # 9. k6 mixed
  phase_begin "k6 mixed"
  run_k6 mixed mixed -e RATE="$MIX_RATE" -e DURATION="${D}s" -e VUS="$C" -e SHOPPERS=2000 \
    -e CHARGE=100000 -e COUPON_LIMIT=1000
  phase_end

  # 10. memory at MEM_CONNS concurrent connections per instance (wrk, popular products)
  phase_begin "wrk ${MEM_CONNS} connections/instance"
  (
    sleep 8
    for i in 0 1; do
      fact "rss_during_mem_$i" "$(rss_kib "${LT_PIDS[$i]}" VmRSS)"
      fact "conns_during_mem_$i" "$(find "/proc/${LT_PIDS[$i]}/fd" -maxdepth 1 -type l 2>/dev/null | wc -l)"
    done
  ) &
  local sampler=$! i
  run_wrk mem get.lua 2 "$MEM_CONNS" 12 /api/v1/products/popular "$token" -- "$token"
  wait "$sampler" || true
  phase_end

  # ledger lag (Prometheus histogram of each instance) and peak RSS
  for i in 0 1; do
    curl -fsS -m 10 "${LT_METRICS[$i]}" >"$W/metrics-$i.txt" || lt_log "scraping instance $i failed"
    fact "rss_peak_$i" "$(rss_kib "${LT_PIDS[$i]}" VmHWM)"
    fact "rss_end_$i" "$(rss_kib "${LT_PIDS[$i]}" VmRSS)"
  done

  # audit (waits for the settlement stream to drain), then MySQL facts
  local audit_rc=0 t_audit=$SECONDS
  lt_cli audit --wait-secs 180 >"$W/audit.txt" 2>&1 || audit_rc=$?
  fact audit_rc "$audit_rc"
  fact audit_seconds "$((SECONDS - t_audit))"
  fact rush_rows "$(lt_sql "$LT_DB_NAME" -e "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = $rush")"
  fact open_rush_rows "$(lt_sql "$LT_DB_NAME" -e "SELECT COUNT(*) FROM user_coupons WHERE coupon_id = $open_rush")"
  local hot
  hot="$(jq -r '.digest.setup.hot | join(",")' "$W/k6-flash.json" 2>/dev/null || true)"
  if [[ -n "$hot" ]]; then
    fact hot_sold_stock "$(lt_sql "$LT_DB_NAME" -e "SELECT CONCAT(CAST(SUM(sold) AS SIGNED), ' ', CAST(SUM(stock_total) AS SIGNED)) FROM products WHERE id IN ($hot)")"
  fi
  fact paid_orders_total "$(lt_sql "$LT_DB_NAME" -e "SELECT COUNT(*) FROM orders WHERE status = 'PAID'")"
  fact load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  fact elapsed_after_build "$((SECONDS - built))"

  local out="${BENCH_OUT:-$LT_REPO/bench/results/$(date -u +%Y-%m-%d).md}"
  mkdir -p "$(dirname "$out")"
  # the figures' labels read the rates actually used
  BENCH_RUSH_RATE="$RUSH_RATE" BENCH_FLASH_RATE="$FLASH_RATE" BENCH_STORM_READ_RATE="$STORM_READ_RATE" \
    BENCH_STORM_PAY_RATE="$STORM_PAY_RATE" BENCH_MIX_RATE="$MIX_RATE" BENCH_MEM_CONNS="$MEM_CONNS" \
    python3 "$LT_REPO/bench/report.py" "$W" "$out"
  lt_log "results saved to ${out#"$LT_REPO"/}"
  if [[ "$(grep '^audit_rc=' "$W/facts.txt" | cut -d= -f2)" != 0 ]]; then
    cat "$W/audit.txt" >&2
    lt_die "flashmart audit FAILED"
  fi
  lt_log "bench done in $((SECONDS - started)) s ($((SECONDS - built)) s after the build)"
}

# scripts/bench-cluster.sh sources this file for its helpers (run_wrk, ticks, ensure_tools, …)
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
