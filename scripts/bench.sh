#!/usr/bin/env bash
# `make bench`: flashmart under full load on this machine, side by side with the limits it is
# compared against, as ONE markdown table saved to bench/results/<YYYY-MM-DD>.md.
#
#   scripts/bench.sh
#
# Release build; private services (scripts/services.sh; exported DATABASE_URL + REDIS_URL win);
# a fresh database + Redis key prefix; demo data + BENCH_USERS bulk users with tokens; TWO
# `flashmart serve` instances on free loopback ports, each with its own metrics listener. Then:
#   1. k6 coupon-rush       burst on one campaign of BENCH_RUSH_LIMIT (exactly that many issued)
#   2. wrk coupon issue     max HTTP issue rate, distinct user×campaign pairs (real issues)
#   3. redis-benchmark      the same lua/coupon_issue.lua by EVALSHA (Redis limit)
#   4. conventional_coupon  SELECT … FOR UPDATE transactions straight on MariaDB (the
#                           `cargo bench --bench conventional_coupon` target, run directly)
#   5. k6 flash-sale        order + pay on 3 hot products with small stock, plus browsing
#   6. wrk order + pay      max paid orders/s on products with plenty of stock
#   7. wrk /health/live vs wrk /products/popular, both while k6 pays orders in the background
#   8. k6 popular-storm     popular products at a fixed rate while orders are paid
#   9. k6 mixed             realistic mix
#  10. memory               BENCH_MEM_CONNS (5000) concurrent connections per instance (wrk)
# then scrapes ledger_lag_seconds from both instances, reads peak RSS (VmHWM), runs
# `flashmart audit` and prints the table. Exits non-zero if the audit fails (or setup fails);
# missed targets are reported, not fatal. Every phase is bounded; total ≈ 6-8 min after build.
#
# Knobs (environment): BENCH_DURATION (s per phase, default 15), BENCH_CONC (concurrency of
# every closed-loop tool: wrk connections, redis-benchmark clients, conventional workers, k6
# pre-allocated VUs; default 64), BENCH_USERS (20000), BENCH_RUSH_RATE (3000/s),
# BENCH_RUSH_LIMIT (10000), BENCH_FLASH_RATE (1000/s), BENCH_STORM_READ_RATE (2000/s),
# BENCH_STORM_PAY_RATE (300/s), BENCH_BG_PAY_RATE (300/s), BENCH_MIX_RATE (1500/s),
# BENCH_MEM_CONNS (5000), BENCH_SETTLEMENT_WORKERS (2 = one per instance, the default
# deployment; 1 = only instance 0 settles), FM_BIN (skip the build), KEEP=1, BENCH_OUT.
set -euo pipefail

# shellcheck source=scripts/loadtest-smoke.sh
source "$(dirname "${BASH_SOURCE[0]}")/loadtest-smoke.sh"

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
  local wall1 a0 a1 r m busy
  wall1="$(date +%s.%N)"
  a0="$(ticks "${LT_PIDS[0]}")"
  a1="$(ticks "${LT_PIDS[1]}")"
  r="$(ticks "${SVC_PIDS[0]}")"
  m="$(ticks "${SVC_PIDS[1]}")"
  busy="$(sys_ticks)"
  scrape "$PH_N-b"
  # name wall app redis mariadb loadgen total_busy (all in cores = cpu-seconds / wall seconds)
  awk -v n="$PH_NAME" -v w0="$PH_WALL0" -v w1="$wall1" -v a="$((a0 - PH_A0 + a1 - PH_A1))" \
    -v r="$((r - PH_R))" -v m="$((m - PH_M))" -v g="$PH_GEN" -v b="$((busy - PH_BUSY))" \
    -v hz="$(getconf CLK_TCK)" \
    -v idx="$PH_N" -v rss="$(rss_kib "${LT_PIDS[0]}" VmRSS)/$(rss_kib "${LT_PIDS[1]}" VmRSS)" \
    'BEGIN{w=w1-w0; printf "%s\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\n", idx, n, w, a/hz/w, r/hz/w, m/hz/w, g/w, b/hz/w, rss}' \
    >>"$W/cpu.tsv"
}

# ------------------------------------------------------------------ wrk scripts

write_wrk_scripts() {
  # shared: print one JSON line with the run's figures (and status counts if collected)
  cat >"$W/wrk-report.lua" <<'LUA'
local report = {}
function report.json(summary, latency, statuses)
  local e = summary.errors
  local parts = {}
  for k, v in pairs(statuses or {}) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  io.write(string.format(
    'WRK {"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"non2xx3xx":%d,"timeouts":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ",")))
end
return report
LUA
  # static GET with an optional bearer token: wrk -s get.lua URL -- [token]
  cat >"$W/wrk-get.lua" <<'LUA'
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("wrk-report")
function init(args)
  if args[1] and args[1] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[1] end
end
function done(summary, latency, requests) report.json(summary, latency, nil) end
LUA
  # coupon issue: every request a distinct user×campaign pair (until U×K requests)
  #   wrk -s coupon.lua URL -- TOKENS CAMPAIGNS_CSV PROC NPROC THREADS
  cat >"$W/wrk-coupon.lua" <<'LUA'
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("wrk-report")
local threads, nthreads = {}, 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  threads[#threads + 1] = thread
end
local tokens, campaigns, g, stride = {}, {}, 0, 1
statuses = {}
function init(args)
  for line in io.lines(args[1]) do
    local tok = line:match("^%d+,[^,]*,(.+)$")
    if tok then tokens[#tokens + 1] = "Bearer " .. tok end
  end
  for c in args[2]:gmatch("%d+") do campaigns[#campaigns + 1] = c end
  local p, np, nt = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  g = p * nt + tid
  stride = np * nt
end
function request()
  local n = #tokens
  local u = g % n
  local c = campaigns[(math.floor(g / n) % #campaigns) + 1]
  g = g + stride
  return wrk.format("POST", "/api/v1/coupons/" .. c .. "/issue", { ["Authorization"] = tokens[u + 1] })
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do agg["issue_" .. k] = (agg["issue_" .. k] or 0) + v end
  end
  report.json(summary, latency, agg)
end
LUA
  # order + pay: ONE connection per thread (-t N -c N), so each response belongs to the
  # thread's previous request: create (201 → orderId) then pay it, then the next user.
  #   wrk -s orderpay.lua URL -- TOKENS USERS PRODUCTS_CSV PROC NPROC THREADS
  cat >"$W/wrk-orderpay.lua" <<'LUA'
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("wrk-report")
local threads, nthreads = {}, 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  threads[#threads + 1] = thread
end
local tokens, products, g, stride, paying, order, auth = {}, {}, 0, 1, false, nil, nil
created, paid = {}, {}
function init(args)
  local limit = tonumber(args[2])
  for line in io.lines(args[1]) do
    local tok = line:match("^%d+,[^,]*,(.+)$")
    if tok and #tokens < limit then tokens[#tokens + 1] = "Bearer " .. tok end
  end
  for p in args[3]:gmatch("%d+") do products[#products + 1] = p end
  local p, np, nt = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  g = p * nt + tid
  stride = np * nt
end
function request()
  if paying then
    return wrk.format("POST", "/api/v1/orders/" .. order .. "/payment", { ["Authorization"] = auth })
  end
  auth = tokens[(g % #tokens) + 1]
  local product = products[(g % #products) + 1]
  g = g + stride
  return wrk.format("POST", "/api/v1/orders",
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
    '{"items":[{"productId":' .. product .. ',"quantity":1}]}')
end
function response(status, headers, body)
  if paying then
    paid[status] = (paid[status] or 0) + 1
    paying = false
    return
  end
  created[status] = (created[status] or 0) + 1
  if status == 201 then
    order = body:match('"orderId"%s*:%s*"([^"]+)"')
    paying = order ~= nil
  end
end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("created")) do agg["order_" .. k] = (agg["order_" .. k] or 0) + v end
    for k, v in pairs(t:get("paid")) do agg["pay_" .. k] = (agg["pay_" .. k] or 0) + v end
  end
  report.json(summary, latency, agg)
end
LUA
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
    WRK_DIR="$W" /usr/bin/time -f '%U %S' -o "$W/wrk-$name-$i.time" \
      wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$W/$script" \
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
  CONV_BIN="$(cd "$LT_REPO" && cargo bench --quiet --bench conventional_coupon --no-run \
    --message-format=json 2>/dev/null |
    jq -r 'select(.target.name == "conventional_coupon" and .executable != null) | .executable' |
    tail -n 1)"
  [[ -x "$CONV_BIN" ]] || lt_die "building benches/conventional_coupon.rs failed"
  local built=$SECONDS
  W="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-bench.XXXXXX")"
  LT_WORK="$W"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  : >"$W/cpu.tsv"
  : >"$W/facts.txt"
  write_wrk_scripts
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

  # 2. wrk coupon issue: 25 campaigns of 10M, distinct user×campaign pairs (500k with 20k
  #    users: more than wrk can issue in a phase at ~14k/s, so every call really issues)
  run_k6 prep-coupons prepare -e CAMPAIGNS=25 -e CAMPAIGN_QUANTITY=10000000
  local campaigns
  campaigns="$(jq -r '.digest.setup.campaigns | join(",")' "$W/k6-prep-coupons.json")"
  [[ -n "$campaigns" ]] || lt_die "preparing campaigns failed"
  phase_begin "wrk coupon issue"
  run_wrk coupon wrk-coupon.lua 1 "$HALF" "$D" / \
    "$LT_TOKENS" "$campaigns" 0 2 1 -- "$LT_TOKENS" "$campaigns" 1 2 1
  phase_end

  # 3. Redis limit: the same script by EVALSHA, same concurrency, on its own prefix
  RB_PREFIX="fmrb$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local sha p="{$RB_PREFIX}"
  sha="$(lt_redis -x script load <"$LT_REPO/lua/coupon_issue.lua")"
  lt_redis hset "$p:coupon:1" total 1000000000 issued 0 startsMs 0 endsMs 99999999999999 \
    validMs 604800000 >/dev/null
  phase_begin "redis-benchmark EVALSHA"
  /usr/bin/time -f '%U %S' -o "$W/redis-benchmark.time" \
    redis-benchmark -h "$LT_REDIS_HOST" -p "$LT_REDIS_PORT" -c "$C" -n $((D * 12000)) \
    -r 100000000 --csv EVALSHA "$sha" 7 "$p:coupon:1" "$p:coupon:1:users" \
    "$p:ucoupon:1:__rand_int__" "$p:seq:ucoupon" "$p:ucoupon:index" \
    "$p:user:__rand_int__:coupons" "$p:events" __rand_int__ "req-__rand_int__" \
    "$(date +%s%3N)" "ev-__rand_int__" 1 >"$W/redis-benchmark.csv" 2>"$W/redis-benchmark.err" ||
    lt_log "redis-benchmark failed: $(tail -n 3 "$W/redis-benchmark.err")"
  gen_time "$W/redis-benchmark.time"
  phase_end
  fact rb_issued "$(lt_redis hget "$p:coupon:1" issued)"
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
  run_wrk orderpay wrk-orderpay.lua "$HALF" "$HALF" "$D" / \
    "$W/order-tokens.csv" 4000 "$products" 0 2 "$HALF" -- \
    "$W/order-tokens.csv" 4000 "$products" 1 2 "$HALF"
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
  run_wrk health wrk-get.lua 1 "$HALF" "$D" /health/live -- --
  phase_end
  phase_begin "wrk /products/popular (+k6 paying)"
  run_wrk popular wrk-get.lua 1 "$HALF" "$D" /api/v1/products/popular "$token" -- "$token"
  phase_end
  wait "$BG_K6" || true
  BG_K6=""
  grep -v '^\s*$' "$W/k6-bgpay.out" | tail -n 6 >&2 || true

  # 8. k6 popular-storm at a fixed rate
  phase_begin "k6 popular-storm"
  run_k6 storm popular-storm -e READ_RATE="$STORM_READ_RATE" -e PAY_RATE="$STORM_PAY_RATE" \
    -e DURATION="${D}s" -e VUS="$C" -e PAYERS=2000 -e CHARGE=100000
  phase_end

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
  run_wrk mem wrk-get.lua 2 "$MEM_CONNS" 12 /api/v1/products/popular "$token" -- "$token"
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
    python3 - "$W" "$out" <<'PY'
import json, os, re, sys

W, OUT = sys.argv[1], sys.argv[2]
facts = {}
for line in open(f"{W}/facts.txt"):
    k, _, v = line.rstrip("\n").partition("=")
    facts[k] = v

def load(path):
    try:
        return json.load(open(path))
    except Exception:
        return None

def k6(name):
    d = load(f"{W}/k6-{name}.json")
    rc = open(f"{W}/k6-{name}.rc").read().strip() if os.path.exists(f"{W}/k6-{name}.rc") else "?"
    return (d or {}).get("digest"), rc

def wrk(name):
    total = {"requests": 0, "durationUs": 0, "statuses": {}, "p50": [], "p99": [], "p90": [],
             "errors": 0, "non2xx3xx": 0}
    ok = False
    for i in (0, 1):
        try:
            text = open(f"{W}/wrk-{name}-{i}.out").read()
        except OSError:
            continue
        m = re.search(r"^WRK (\{.*\})$", text, re.M)
        if not m:
            continue
        ok = True
        r = json.loads(m.group(1))
        total["requests"] += r["requests"]
        total["durationUs"] = max(total["durationUs"], r["durationUs"])
        total["errors"] += r["connectErrors"] + r["readErrors"] + r["writeErrors"] + r["timeouts"]
        total["non2xx3xx"] += r["non2xx3xx"]
        for k, v in r["statuses"].items():
            total["statuses"][k] = total["statuses"].get(k, 0) + v
        total["p50"].append(r["p50Us"] / 1000)
        total["p90"].append(r["p90Us"] / 1000)
        total["p99"].append(r["p99Us"] / 1000)
    if not ok:
        return None
    total["rps"] = total["requests"] / (total["durationUs"] / 1e6)
    return total

def f0(x):
    return "—" if x is None else f"{x:,.0f}"

def f1(x):
    return "—" if x is None else f"{x:,.1f}"

def f2(x):
    return "—" if x is None else f"{x:,.2f}"

def ms(vals):
    return "/".join(f2(v) for v in vals) if vals else "—"

def verdict(ok):
    return "—" if ok is None else ("✅ met" if ok else "❌ missed")

def lag_text(bound, finite):
    if bound is None:
        return "—"
    if bound == float("inf"):
        return f"> {max(finite)} s" if finite else "> largest bucket"
    return f"≤ {bound} s"

rows = []
def row(area, figure, value, target, tool, ok=None):
    rows.append(f"| {area} | {figure} | {value} | {target} | {tool} | {verdict(ok)} |")

def ep(d, name):
    return (d or {}).get("endpoints", {}).get(name, {})

def lat(e):
    l = e.get("latencyMs") or {}
    return l.get("p50"), l.get("p95"), l.get("p99")

def codes(e):
    st = e.get("statuses", {})
    cs = e.get("codes", {})
    parts = [f"{k}×{v:,}" for k, v in sorted(st.items())]
    if cs:
        parts.append("(" + ", ".join(f"{k} {v:,}" for k, v in sorted(cs.items())) + ")")
    return " ".join(parts) or "—"

def wrk_codes(w, prefix=""):
    return " ".join(f"{k.replace(prefix, '')}×{v:,}" for k, v in sorted(w["statuses"].items())
                    if k.startswith(prefix)) or "—"

def lat_str(p50, p95, p99):
    return f"p50 {f2(p50)} / p95 {f2(p95)} / p99 {f2(p99)} ms"

# ---- coupons
rush, rush_rc = k6("rush")
e = ep(rush, "issue")
p50, p95, p99 = lat(e)
limit = int(facts.get("rush_limit", 0))
issued201 = (rush or {}).get("extra", {}).get("issued201")
rows_db = int(facts.get("rush_rows", "-1") or -1)
row("coupon", f"k6 coupon-rush: {f0(e.get('count'))} issue requests at {facts.get('conc')} VUs (arrival rate target {os.environ.get('BENCH_RUSH_RATE', '4000')}/s)",
    f"{f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; dropped iterations {f0((rush or {}).get('droppedIterations'))}",
    "p99 < 25 ms", "k6", None if p99 is None else p99 < 25)
row("coupon", "k6 coupon-rush responses by status (code)", codes(e), "only 201/409/410", "k6",
    None if rush is None else (rush.get("unexpectedRate", 1) == 0))
row("coupon", "coupons issued vs limit (rush campaign)",
    f"{f0(issued201)} × 201 in k6, {f0(rows_db)} rows in MySQL, limit {f0(limit)}",
    "exactly the limit", "k6 + MariaDB", issued201 == limit and rows_db == limit)
wc = wrk("coupon")
http_rate = wc["rps"] if wc else None
if wc:
    row("coupon", f"HTTP coupon issue, max rate ({facts.get('conc')} connections over 2 instances, distinct user×campaign)",
        f"{f0(wc['rps'])} req/s; p50 {ms(wc['p50'])} / p90 {ms(wc['p90'])} / p99 {ms(wc['p99'])} ms (per instance)",
        "≥ 20,000 req/s, p99 < 25 ms", "wrk", wc["rps"] >= 20000 and max(wc["p99"]) < 25)
    row("coupon", "HTTP coupon issue responses by status", wrk_codes(wc, "issue_") +
        (f"; socket errors {wc['errors']}" if wc['errors'] else ""), "201 (real issues), no 5xx", "wrk",
        all(not k.startswith("issue_5") for k in wc["statuses"]) and wc["errors"] == 0)
redis_rps = redis_p99 = None
try:
    lines = [l for l in open(f"{W}/redis-benchmark.csv") if l.strip()]
    hdr = [h.strip('"') for h in lines[0].strip().split('","')]
    vals = [v.strip('"') for v in lines[-1].strip().split('","')]
    rb = dict(zip(hdr, vals))
    redis_rps = float(rb["rps"])
    redis_p99 = float(rb.get("p99_latency_ms", "nan"))
    redis_p50 = float(rb.get("p50_latency_ms", "nan"))
except Exception:
    pass
row("coupon", f"Redis limit: coupon_issue.lua by EVALSHA, {facts.get('conc')} clients (issued {f0(int(facts.get('rb_issued') or 0))})",
    f"{f0(redis_rps)} calls/s; p50 {f2(redis_p50) if redis_rps else '—'} / p99 {f2(redis_p99)} ms", "—", "redis-benchmark")
row("coupon", "our HTTP issue rate ÷ Redis limit",
    f2(http_rate / redis_rps) + "×" if http_rate and redis_rps else "—", "≥ 0.3×", "wrk ÷ redis-benchmark",
    None if not (http_rate and redis_rps) else http_rate / redis_rps >= 0.3)
conv = None
try:
    m = re.search(r"^RESULT (\{.*\})$", open(f"{W}/conventional.out").read(), re.M)
    conv = json.loads(m.group(1)) if m else None
except OSError:
    pass
if conv:
    row("coupon", f"conventional design limit: SELECT … FOR UPDATE transaction on MariaDB, {conv['concurrency']} workers, no HTTP",
        f"{f0(conv['issuesPerSecond'])} issues/s; p50 {f2(conv['p50Ms'])} / p99 {f2(conv['p99Ms'])} ms", "—",
        "cargo bench conventional_coupon")
    row("coupon", "our HTTP issue rate ÷ conventional limit",
        f1(http_rate / conv["issuesPerSecond"]) + "×" if http_rate else "—", "≥ 10×", "wrk ÷ cargo bench",
        None if not http_rate else http_rate / conv["issuesPerSecond"] >= 10)
else:
    row("coupon", "conventional design limit", "failed (see conventional.out)", "—", "cargo bench conventional_coupon", False)

# ---- orders
wo = wrk("orderpay")
if wo:
    paid = wo["statuses"].get("pay_200", 0)
    pps = paid / (wo["durationUs"] / 1e6)
    row("order+pay", f"paid orders/s, max rate ({facts.get('conc')} connections, 8 products with plenty of stock)",
        f"{f0(pps)} paid/s ({f0(wo['rps'])} req/s); request p50 {ms(wo['p50'])} / p90 {ms(wo['p90'])} / p99 {ms(wo['p99'])} ms",
        "≥ 3,000 paid/s, p99 < 50 ms", "wrk", pps >= 3000 and max(wo["p99"]) < 50)
    row("order+pay", "order + pay responses by status", wrk_codes(wo) +
        (f"; socket errors {wo['errors']}" if wo['errors'] else ""), "201 then 200, no 5xx", "wrk",
        all(not k.split("_")[1].startswith("5") for k in wo["statuses"]) and wo["errors"] == 0)
flash, flash_rc = k6("flash")
for name in ("order", "pay", "browse"):
    e = ep(flash, name)
    p50, p95, p99 = lat(e)
    row("order+pay", f"k6 flash-sale `{name}` (buyers at {os.environ.get('BENCH_FLASH_RATE', '1000')}/s, browsing at half that)",
        f"{f0(e.get('count'))} req, {f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; {codes(e)}",
        "p99 < 50 ms; 201/409, 200/402/409, 200", "k6", None if p99 is None else p99 < 50)
sold_stock = facts.get("hot_sold_stock", "").split()
fx = (flash or {}).get("extra", {})
if len(sold_stock) == 2:
    sold, stock = int(sold_stock[0]), int(sold_stock[1])
    row("order+pay", "units sold vs stock (3 hot products)",
        f"{f0(fx.get('paidUnits'))} paid in k6, {sold:,} sold in MySQL, stock {stock:,}; {f0(fx.get('hotStockLeft'))} left",
        "zero oversell", "k6 + MariaDB", sold <= stock and (fx.get("paidUnits") or 0) <= stock)
# ledger lag from both instances' histograms
buckets, count = {}, 0.0
for i in (0, 1):
    try:
        for line in open(f"{W}/metrics-{i}.txt"):
            m = re.match(r'ledger_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                buckets[le] = buckets.get(le, 0) + float(m.group(2))
            m = re.match(r"ledger_lag_seconds_count (\S+)", line)
            if m:
                count += float(m.group(1))
    except OSError:
        pass
def quantile_bound(q):
    for le in sorted(buckets):
        if count and buckets[le] >= q * count:
            return le
    return None
lag50, lag99 = quantile_bound(0.5), quantile_bound(0.99)
finite = [le for le in buckets if le != float("inf")]
row("order+pay", f"ledger lag (event acknowledged → committed in MySQL), all {f0(count)} events of the run",
    f"p50 {lag_text(lag50, finite)}, p99 {lag_text(lag99, finite)} (histogram bucket bounds)", "p99 < 1 s", "Prometheus ledger_lag_seconds",
    None if lag99 is None else lag99 <= 1.0)

# ---- popular
wh, wp = wrk("health"), wrk("popular")
bg, _ = k6("bgpay")
if wh and wp:
    row("popular", f"server limit: GET /health/live, {facts.get('conc')} connections over 2 instances, during paying traffic",
        f"{f0(wh['rps'])} req/s; p50 {ms(wh['p50'])} / p99 {ms(wh['p99'])} ms", "—", "wrk")
    row("popular", "GET /api/v1/products/popular, same connections, during paying traffic",
        f"{f0(wp['rps'])} req/s; p50 {ms(wp['p50'])} / p99 {ms(wp['p99'])} ms (saturated)", "—", "wrk")
    row("popular", "popular rate ÷ /health/live rate", f2(wp["rps"] / wh["rps"]) + "×", "≥ 0.8×", "wrk ÷ wrk",
        wp["rps"] / wh["rps"] >= 0.8)
if bg:
    bx = bg.get("extra", {})
    row("popular", "background paying traffic during the two wrk runs",
        f"{f0(bx.get('paidOrdersPerSecond'))} paid orders/s; pay {codes(ep(bg, 'pay'))}", "—", "k6")
storm, storm_rc = k6("storm")
e = ep(storm, "popular")
p50, p95, p99 = lat(e)
row("popular", f"k6 popular-storm: popular at {os.environ.get('BENCH_STORM_READ_RATE', '3000')}/s while paying at {os.environ.get('BENCH_STORM_PAY_RATE', '300')}/s",
    f"{f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; {codes(e)}", "p99 < 10 ms", "k6",
    None if p99 is None else p99 < 10)
for name in ("order", "pay"):
    e = ep(storm, name)
    p50, p95, p99 = lat(e)
    row("popular", f"k6 popular-storm `{name}` (the paying side)",
        f"{f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; {codes(e)}", "p99 < 50 ms", "k6",
        None if p99 is None else p99 < 50)

# ---- mixed
mixed, mixed_rc = k6("mixed")
if mixed:
    worst = max(((n, lat(e)[2] or 0) for n, e in mixed["endpoints"].items() if n != "setup"),
                key=lambda x: x[1], default=("—", None))
    total_codes = {}
    for n, e in mixed["endpoints"].items():
        if n == "setup":
            continue
        for k, v in e.get("statuses", {}).items():
            total_codes[k] = total_codes.get(k, 0) + v
    row("mixed", f"k6 mixed at {os.environ.get('BENCH_MIX_RATE', '2000')}/s (30% browse, 20% product, 15% popular, 15% order+pay, …)",
        f"{f0(mixed['extra'].get('requestsPerSecond'))} req/s; worst p99 {f2(worst[1])} ms (`{worst[0]}`); dropped iterations {f0(mixed.get('droppedIterations'))}; " +
        " ".join(f"{k}×{v:,}" for k, v in sorted(total_codes.items())),
        "no 5xx; p99 < 50 ms", "k6", mixed.get("unexpectedRate", 1) == 0 and (worst[1] or 0) < 50)

# ---- memory
for i in (0, 1):
    peak = int(facts.get(f"rss_peak_{i}", 0) or 0) / 1024
    during = int(facts.get(f"rss_during_mem_{i}", 0) or 0) / 1024
    row("memory", f"instance {i}: peak RSS (VmHWM over the whole run); RSS with {os.environ.get('BENCH_MEM_CONNS', '5000')} connections open ({facts.get(f'conns_during_mem_{i}')} fds)",
        f"peak {f1(peak)} MiB; {f1(during)} MiB at {os.environ.get('BENCH_MEM_CONNS', '5000')} conns", "< 150 MiB", "/proc/PID/status",
        peak < 150 if peak else None)
wm = wrk("mem")
if wm:
    row("memory", f"GET popular with {os.environ.get('BENCH_MEM_CONNS', '5000')} connections per instance",
        f"{f0(wm['rps'])} req/s; p99 {ms(wm['p99'])} ms; socket errors {wm['errors']}; non-2xx {wm['non2xx3xx']}", "—", "wrk")

# ---- audit
audit_ok = facts.get("audit_rc") == "0"
row("audit", "flashmart audit after the run (stream drained, ledger, Redis = MySQL)",
    f"{'passed' if audit_ok else 'FAILED'} in {facts.get('audit_seconds')} s; {facts.get('paid_orders_total')} paid orders in MySQL",
    "passes", "flashmart audit", audit_ok)

# ---- per phase: CPU split, settlement throughput, ledger lag
def metrics_of(tag):
    m = {"lag": {}, "lag_count": 0.0, "applied": 0.0, "commit_sum": 0.0, "commit_count": 0.0}
    for i in (0, 1):
        try:
            lines = open(f"{W}/m-{tag}-{i}.txt").read().splitlines()
        except OSError:
            continue
        for line in lines:
            g = re.match(r'ledger_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
            if g:
                le = float("inf") if g.group(1) == "+Inf" else float(g.group(1))
                m["lag"][le] = m["lag"].get(le, 0) + float(g.group(2))
                continue
            g = re.match(r"ledger_lag_seconds_count (\S+)", line)
            if g:
                m["lag_count"] += float(g.group(1))
                continue
            g = re.match(r"settlement_events_applied_total(\{[^}]*\})? (\S+)", line)
            if g:
                m["applied"] += float(g.group(2))
                continue
            g = re.match(r"settlement_commit_seconds_(sum|count) (\S+)", line)
            if g:
                m["commit_" + g.group(1)] += float(g.group(2))
    return m

def lag_bound(buckets, n, q):
    for le in sorted(buckets):
        if n and buckets[le] >= q * n:
            return le
    return None


for line in open(f"{W}/cpu.tsv"):
    idx, name, wall, app, redis, maria, gen, busy, rss = line.rstrip("\n").split("\t")
    rss_mib = "/".join(f"{int(x or 0) / 1024:.0f}" for x in rss.split("/"))
    other = float(busy) - float(app) - float(redis) - float(maria) - float(gen)
    a, b = metrics_of(f"{idx}-a"), metrics_of(f"{idx}-b")
    n = b["lag_count"] - a["lag_count"]
    diff = {le: b["lag"].get(le, 0) - a["lag"].get(le, 0) for le in b["lag"]}
    applied = b["applied"] - a["applied"]
    commits = b["commit_count"] - a["commit_count"]
    settle = (f"; settled {applied:,.0f} events ({applied / float(wall):,.0f}/s, "
              f"{commits:,.0f} batch commits), ledger lag p99 "
              f"{lag_text(lag_bound(diff, n, 0.99), [le for le in diff if le != float('inf')])}") if n > 0 else "; nothing settled"
    row("phase", f"{name} ({wall} s): cores used",
        f"app {app} · redis {redis} · mariadb {maria} · load generator {gen} · other {max(other, 0):.2f} (of {facts.get('cpus')})" + settle
        + f"; instance RSS after {rss_mib} MiB",
        "—", "/proc/PID/stat, /metrics")

head = [
    f"# flashmart bench {os.path.basename(OUT)[:-3]}",
    "",
    f"Commit `{facts.get('commit')}`, {facts.get('cpus')} cores shared by load generators, two `flashmart serve` (release), "
    f"Redis (appendfsync always) and MariaDB. Concurrency {facts.get('conc')} for every closed-loop tool, "
    f"{facts.get('duration')} s per phase, {facts.get('settlement_workers')} settlement worker(s). Load average before {facts.get('load_before')}, after {facts.get('load_after')} "
    "(other work on the box is counted as `other` in the cpu rows). Produced by `scripts/bench.sh`"
    f" in {facts.get('elapsed_after_build')} s after the build.",
    "",
    "| area | figure | measured | target | tool | verdict |",
    "|---|---|---|---|---|---|",
]
text = "\n".join(head + rows) + "\n"
open(OUT, "w").write(text)
print(text)
PY
  lt_log "results saved to ${out#"$LT_REPO"/}"
  if [[ "$(grep '^audit_rc=' "$W/facts.txt" | cut -d= -f2)" != 0 ]]; then
    cat "$W/audit.txt" >&2
    lt_die "flashmart audit FAILED"
  fi
  lt_log "bench done in $((SECONDS - started)) s ($((SECONDS - built)) s after the build)"
}

main "$@"
