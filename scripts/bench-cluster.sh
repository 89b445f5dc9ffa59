#!/usr/bin/env bash
# `make bench-cluster`: how evenly a Redis Cluster's primaries share flashmart's script calls
# when independent users buy independent things, and the decision rate on 1 vs 3 primaries.
#
#   scripts/bench-cluster.sh
#
# Release build (FM_BIN skips it); private MariaDB (scripts/services.sh). Then two passes with
# the same load, each on a fresh database + Redis key prefix, demo data and BENCH_CLUSTER_USERS
# bulk users with tokens, and TWO `flashmart serve` instances (REDIS_BUCKETS buckets, default 16):
#   3 primaries   the local 3 + 3 cluster of scripts/cluster.sh, on FM_CLUSTER_PORT (7301..7306)
#   1 primary     one primary owning all 16384 slots + its replica, cluster mode as well, on
#                 FM_CLUSTER_PORT+10/+11 (same client path, fsync and replication cost per
#                 primary; only the number of shards differs). BENCH_CLUSTER_ONE=0 skips it.
# The load (every loop bounded, loopback only), for BENCH_CLUSTER_DURATION s:
#   wrk coupon.lua spread        coupon issues, distinct user × campaign, 2 × REDIS_BUCKETS
#                                campaigns in turn (bench/wrk/coupon.lua's "spread" order)
#   wrk bench/wrk/orderpay.lua   order + pay over 2 × REDIS_BUCKETS products by 4000
#                                pre-charged users
#   k6 loadtest/prepare.js       wallet charges of the other users, rounds of 2000 until the end
# Before and after: INFO commandstats + INFO cpu of every node, CLUSTER NODES, both instances'
# /metrics, /proc CPU of the instances and MariaDB. Prints one markdown table per pass: per
# primary the slots, buckets (bucket tags recomputed as src/cache/keys.rs does), keys, EVALSHA
# calls, share, deviation from the mean (PASS when every primary is within 20 %), Redis CPU per
# call; then decisions/s by kind, script calls/s and where the box's cores went. Saved to
# bench/results/<YYYY-MM-DD>-cluster.md (BENCH_OUT overrides). Everything started here is
# stopped by PID at exit and the nodes' data deleted; the scratch databases are dropped (KEEP=1
# keeps the databases). Exits non-zero when setup fails; a FAIL is reported, not fatal (as in
# `make bench`). About 1.5 min after the build.
#
# Knobs: FM_CLUSTER_PORT (7301; not the tests' 7101), BENCH_CLUSTER_DURATION (25),
# BENCH_CLUSTER_USERS (10000), BENCH_CLUSTER_COUPON_CONNS (12 per instance),
# BENCH_CLUSTER_ORDER_CONNS (6 per instance), BENCH_CLUSTER_MAX_DEVIATION (20 %),
# BENCH_CLUSTER_CAMPAIGNS and BENCH_CLUSTER_PRODUCTS (2 × REDIS_BUCKETS each),
# BENCH_CLUSTER_ONE (1), REDIS_BUCKETS (16), FM_BIN, KEEP, BENCH_OUT.
set -euo pipefail

# the scratch-app helpers (lt_*, via loadtest-smoke.sh), run_wrk, ticks, sys_ticks, rss_kib,
# ensure_tools and svc_pids of `make bench`
# shellcheck source=scripts/bench.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench.sh"

CL_PORT="${FM_CLUSTER_PORT:-7301}"
CL_SECS="${BENCH_CLUSTER_DURATION:-25}"
CL_USERS="${BENCH_CLUSTER_USERS:-10000}"
CL_COUPON_CONNS="${BENCH_CLUSTER_COUPON_CONNS:-12}"
CL_ORDER_CONNS="${BENCH_CLUSTER_ORDER_CONNS:-6}"
CL_MAX_DEV="${BENCH_CLUSTER_MAX_DEVIATION:-20}"
CL_BUCKETS="${REDIS_BUCKETS:-16}"
CL_ONE_PORT=$((CL_PORT + 10))
CL_ORDER_USERS=4000  # users 0..3999 of the token file order and pay (charged 10M won first)
CL_CHARGE_CHUNK=2000 # users charged per k6 round (the rest of the file, in turn)
# campaigns and products are few and hot, users many: with consecutive ids, 2 per bucket puts
# the same coupon and stock work in every bucket (fewer than the buckets leave some idle, and
# which primaries those are decides the shares, not the bucket counts)
CL_CAMPAIGNS="${BENCH_CLUSTER_CAMPAIGNS:-$((2 * CL_BUCKETS))}"
CL_PRODUCTS="${BENCH_CLUSTER_PRODUCTS:-$((2 * CL_BUCKETS))}"
((CL_USERS >= CL_ORDER_USERS + CL_CHARGE_CHUNK)) ||
  lt_die "BENCH_CLUSTER_USERS must be at least $((CL_ORDER_USERS + CL_CHARGE_CHUNK))"
export REDIS_BUCKETS="$CL_BUCKETS"

cl_cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
cl_cluster() { FM_CLUSTER_PORT="$CL_PORT" bash "$LT_REPO/scripts/cluster.sh" "$@"; }

# ------------------------------------------------------------------ the one-primary cluster

# Two cluster-mode nodes in $CL_ROOT/one: the first owns every slot, the second replicates it.
# (redis-cli --cluster create wants three primaries, hence ADDSLOTSRANGE + MEET + REPLICATE.)
CL_ONE_STARTED=0
one_up() {
  local p d i id
  for p in "$CL_ONE_PORT" $((CL_ONE_PORT + 1)); do
    [[ "$(cl_cli "$p" ping 2>/dev/null)" != PONG ]] ||
      lt_die "port $p already answers; set FM_CLUSTER_PORT"
    d="$CL_ROOT/one/$p"
    mkdir -p "$d"
    CL_ONE_STARTED=1
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --dir "$d" \
      --pidfile "$d/redis.pid" --logfile "$d/redis.log" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --appendonly yes \
      --appendfsync always --repl-diskless-sync-delay 0 --save '' </dev/null >/dev/null ||
      lt_die "redis-server on port $p failed to start ($d/redis.log)"
  done
  for ((i = 0; i < 100; i++)); do
    [[ "$(cl_cli $((CL_ONE_PORT + 1)) ping 2>/dev/null)" == PONG ]] && break
    sleep 0.1
  done
  cl_cli "$CL_ONE_PORT" cluster addslotsrange 0 16383 >/dev/null
  id="$(cl_cli "$CL_ONE_PORT" cluster myid)"
  cl_cli $((CL_ONE_PORT + 1)) cluster meet 127.0.0.1 "$CL_ONE_PORT" >/dev/null
  for ((i = 0; i < 300; i++)); do # the replica must know the primary before it can follow it
    cl_cli $((CL_ONE_PORT + 1)) cluster nodes | grep -q "^$id .*master" && break
    sleep 0.1
  done
  cl_cli $((CL_ONE_PORT + 1)) cluster replicate "$id" >/dev/null
  for ((i = 0; i < 300; i++)); do
    if cl_cli "$CL_ONE_PORT" cluster info | tr -d '\r' | grep -qx 'cluster_state:ok' &&
      cl_cli "$CL_ONE_PORT" info replication | tr -d '\r' | grep -q '^slave0:.*state=online'; then
      lt_log "one-primary cluster up on $CL_ONE_PORT (+ replica $((CL_ONE_PORT + 1)))"
      return 0
    fi
    sleep 0.1
  done
  lt_die "the one-primary cluster on $CL_ONE_PORT did not form within 30 s"
}

one_down() {
  ((CL_ONE_STARTED)) || return 0
  local p pid
  for p in "$CL_ONE_PORT" $((CL_ONE_PORT + 1)); do
    pid="$(cat "$CL_ROOT/one/$p/redis.pid" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "${CL_ROOT:?}/one"
  CL_ONE_STARTED=0
}

# ------------------------------------------------------------------ the coupon load


# ------------------------------------------------------------------ measuring

# snapshot TAG PORT...: INFO of every node (+ its main thread's context switches from /proc),
# the instances' /metrics, CPU ticks, wall clock
snapshot() {
  local tag="$1" p i pid f
  shift
  for p in "$@"; do
    f="$W/info-$tag-$p.txt"
    for i in commandstats cpu keyspace server; do cl_cli "$p" info "$i"; done | tr -d '\r' >"$f"
    pid="$(awk -F: '$1 == "process_id" {print $2}' "$f")"
    awk '/^(non)?voluntary_ctxt_switches:/ {gsub(/[ \t]/, ""); print}' "/proc/$pid/status" \
      >>"$f" 2>/dev/null || true
  done
  for i in 0 1; do
    curl -fsS -m 5 "${LT_METRICS[$i]}" >"$W/m-$tag-$i.txt" 2>/dev/null || : >"$W/m-$tag-$i.txt"
  done
  {
    echo "wall_$tag=$(date +%s.%N)"
    echo "app_ticks_$tag=$(($(ticks "${LT_PIDS[0]}") + $(ticks "${LT_PIDS[1]}")))"
    echo "mariadb_ticks_$tag=$(ticks "${SVC_PIDS[1]}")"
    echo "busy_ticks_$tag=$(sys_ticks)"
  } >>"$W/facts.txt"
}

# charge_rounds DEADLINE: wallet charges of users CL_ORDER_USERS.. in rounds of CL_CHARGE_CHUNK
# (k6 prepare.js), until SECONDS reaches DEADLINE; at most 100 rounds.
charge_rounds() {
  local deadline="$1" r from span=$((CL_USERS - CL_ORDER_USERS - CL_CHARGE_CHUNK + 1))
  for ((r = 0; r < 100 && SECONDS < deadline; r++)); do
    from=$((CL_ORDER_USERS + (r * CL_CHARGE_CHUNK) % span))
    /usr/bin/time -f '%U %S' -o "$W/gen-charge-$r.time" \
      "$LT_K6" run --quiet --no-usage-report --no-color -e BASE_URLS="$(lt_base_urls)" \
      -e TOKENS_FILE="$LT_TOKENS" -e ADMIN_TOKEN="$LT_ADMIN_TOKEN" \
      -e SUMMARY_JSON="$W/k6-charge-$r.json" -e CHARGE_FROM="$from" \
      -e CHARGE_COUNT="$CL_CHARGE_CHUNK" -e CHARGE=10000 "$LT_REPO/loadtest/prepare.js" \
      >"$W/k6-charge-$r.out" 2>&1 || {
      lt_log "k6 charge round $r failed: $(tail -n 3 "$W/k6-charge-$r.out")"
      return 0
    }
  done
}

# ------------------------------------------------------------------ one pass

# pass ID LABEL REDIS_URL NODE_PORT...: fresh data, two instances, the load, the measurements
# into $CL_ROOT/ID and its table into $CL_ROOT/ID/section.md (while the nodes still answer);
# instances stopped and the scratch database dropped after. The first port answers CLUSTER.
pass() {
  local id="$1" name="$2" url="$3" products campaigns deadline pids=() pid
  shift 3
  W="$CL_ROOT/$id"
  LT_WORK="$W"
  LT_BASES=()
  LT_METRICS=()
  PH_GEN=0 # run_k6/run_wrk add to it; this script sums the window's *.time files instead
  mkdir -p "$W"
  : >"$W/facts.txt"
  export REDIS_URL="$url"
  lt_fresh fmcl
  lt_seed "$CL_USERS"
  lt_start_instance 0 on
  lt_start_instance 1 on
  lt_admin_login
  run_k6 prep prepare -e PRODUCTS="$CL_PRODUCTS" -e STOCK=1000000 -e PRICE=100 \
    -e CAMPAIGNS="$CL_CAMPAIGNS" -e CAMPAIGN_QUANTITY=10000000 -e CHARGE_FROM=0 \
    -e CHARGE_COUNT="$CL_ORDER_USERS" -e CHARGE=10000000
  products="$(jq -r '.digest.setup.products | join(",")' "$W/k6-prep.json")"
  campaigns="$(jq -r '.digest.setup.campaigns | join(",")' "$W/k6-prep.json")"
  [[ -n "$products" && -n "$campaigns" ]] || lt_die "preparing products and campaigns failed"
  head -n "$CL_ORDER_USERS" "$LT_TOKENS" >"$W/order-tokens.csv"
  {
    echo "name=$name"
    echo "prefix=$LT_PREFIX"
    echo "buckets=$CL_BUCKETS"
    echo "ports=$*"
    echo "hz=$(getconf CLK_TCK)"
    echo "cpus=$(nproc)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  } >>"$W/facts.txt"
  cl_cli "$1" cluster nodes | tr -d '\r' >"$W/nodes-a.txt"

  lt_log "pass '$name': ${CL_SECS} s of coupon issues, order + pay and charges"
  snapshot a "$@"
  deadline=$((SECONDS + CL_SECS))
  run_wrk coupon coupon.lua 1 "$CL_COUPON_CONNS" "$CL_SECS" / \
    "$LT_TOKENS" "$campaigns" 0 2 1 spread -- "$LT_TOKENS" "$campaigns" 1 2 1 spread &
  pids+=($!)
  run_wrk orderpay orderpay.lua "$CL_ORDER_CONNS" "$CL_ORDER_CONNS" "$CL_SECS" / \
    "$W/order-tokens.csv" "$CL_ORDER_USERS" "$products" 0 2 "$CL_ORDER_CONNS" -- \
    "$W/order-tokens.csv" "$CL_ORDER_USERS" "$products" 1 2 "$CL_ORDER_CONNS" &
  pids+=($!)
  charge_rounds "$deadline" &
  pids+=($!)
  CL_LOAD_PIDS=("${pids[@]}")
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  CL_LOAD_PIDS=()
  snapshot b "$@"
  cl_cli "$1" cluster nodes | tr -d '\r' >"$W/nodes-b.txt"
  echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$W/facts.txt"
  # user+sys of the load generators of the window (wrk-*.time by run_wrk, gen-charge-*.time)
  echo "gen_seconds=$(cat "$W"/wrk-*.time "$W"/gen-charge-*.time 2>/dev/null |
    awk 'NF == 2 {s += $1 + $2} END {print s + 0}')" >>"$W/facts.txt"
  report "$W" >"$W/section.md"

  lt_stop_instances
  if [[ "${KEEP:-0}" != 1 ]]; then lt_drop_scratch; fi
  LT_DB_NAME=""
}

# ------------------------------------------------------------------ the table

# report DIR: the markdown section of one pass (needs its first node still answering: the
# recomputed bucket tags are checked against CLUSTER KEYSLOT); DIR/summary.txt gets
# "decisions/s script-calls/s verdict" for the 3-vs-1 line.
report() {
  python3 - "$CL_MAX_DEV" "$1" <<'PY'
import re, subprocess, sys

MAX_DEV = float(sys.argv[1])
SLOTS = 16384


def crc16(data):  # CRC16-XMODEM, Redis Cluster's key hash
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key):
    s = key.find("{")
    if s >= 0:
        e = key.find("}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key.encode()) % SLOTS


def bucket_tag(prefix, i, count):  # src/cache/keys.rs bucket_tag
    w = SLOTS // count
    lo, hi = (i * w + w // 4, i * w + w - w // 4) if w >= 4 else (i * w, i * w + max(w, 1))
    n = 0
    while not lo <= slot(f"{{{prefix}:b{i}.{n}}}") < hi:
        n += 1
    return f"{{{prefix}:b{i}.{n}}}"


def info(path):
    d = {}
    for line in open(path):
        k, sep, v = line.strip().partition(":")
        if sep:
            d[k] = v
    return d


def cmd(d, name):
    text = d.get(f"cmdstat_{name}", "calls=0,usec=0,failed_calls=0")
    m = dict(x.split("=") for x in text.split(","))
    return int(m.get("calls", 0)), int(m.get("usec", 0)), int(m.get("failed_calls", 0))


def cpu(d):
    return float(d.get("used_cpu_sys", 0)) + float(d.get("used_cpu_user", 0))


def keys(d):
    m = re.match(r"keys=(\d+)", d.get("db0", ""))
    return int(m.group(1)) if m else 0


def masters(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 8 and "master" in f[2].split(",") and "fail" not in f[2]:
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            out[port] = [r for r in f[8:] if not r.startswith("[")]
    return out


def metrics(path):
    out = {}
    for line in open(path):
        # greedy: route labels hold braces ("/api/v1/orders/{orderId}/payment")
        m = re.match(r"^(http_requests_total|lua_script_calls_total)\{(.*)\} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out[(m.group(1), tuple(sorted(labels.items())))] = float(m.group(3))
    return out


def f0(x):
    return f"{x:,.0f}"


d = sys.argv[2]
facts = {}
for line in open(f"{d}/facts.txt"):
    k, _, v = line.rstrip("\n").partition("=")
    facts[k] = v
name, prefix, count = facts["name"], facts["prefix"], int(facts["buckets"])
ports = [int(p) for p in facts["ports"].split()]
hz, cpus = int(facts["hz"]), int(facts["cpus"])
wall = float(facts["wall_b"]) - float(facts["wall_a"])
a = {p: info(f"{d}/info-a-{p}.txt") for p in ports}
b = {p: info(f"{d}/info-b-{p}.txt") for p in ports}
prim = masters(f"{d}/nodes-b.txt")
if masters(f"{d}/nodes-a.txt").keys() != prim.keys():
    print(f"WARNING: the primaries changed during pass {name}", file=sys.stderr)
owner = {}
for port, ranges in prim.items():
    for r in ranges:
        lo, _, hi = r.partition("-")
        for s in range(int(lo), int(hi or lo) + 1):
            owner[s] = port
tags = [bucket_tag(prefix, i, count) for i in range(count)]
# the recomputed tag must be the slot Redis computes (a check of this report, not the app)
real = subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "keyslot", tags[0]],
                      capture_output=True, text=True).stdout.strip()
assert real == str(slot(tags[0])), f"CRC16 mismatch: {tags[0]} {real} {slot(tags[0])}"
nbuckets = {p: sum(1 for t in tags if owner.get(slot(t)) == p) for p in prim}
rows, calls = [], {}
for p in sorted(prim):
    c1, u1, e1 = cmd(b[p], "evalsha")
    c0, u0, e0 = cmd(a[p], "evalsha")
    calls[p] = (c1 - c0, u1 - u0, e1 - e0, cpu(b[p]) - cpu(a[p]), keys(b[p]))
total = sum(c[0] for c in calls.values())
# the primaries' main threads: sleeps (epoll, fsync) and preemptions, per EVALSHA
switches = {k: sum(int(b[p].get(k, 0)) - int(a[p].get(k, 0)) for p in prim)
            for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")}
mean = total / len(calls) if calls else 0
devs = []
for p in sorted(prim):
    n, usec, failed, secs, nkeys = calls[p]
    dev = (n - mean) / mean * 100 if mean else 0
    devs.append(abs(dev))
    rows.append(
        f"| 127.0.0.1:{p} | {' '.join(prim[p])} | {nbuckets[p]} | {f0(nkeys)} | {f0(n)}"
        + (f" ({failed} failed)" if failed else "")
        + f" | {n / total * 100 if total else 0:.1f} % | {dev:+.1f} % "
        f"| {secs * 1e6 / n if n else 0:,.0f} µs ({usec / n if n else 0:.0f} µs in scripts) "
        f"| {secs / wall:.2f} |")
worst = max(devs) if devs else 0
verdict = "PASS" if worst <= MAX_DEV else "FAIL"
others = [p for p in ports if p not in prim]
replica_cores = sum(cpu(b[p]) - cpu(a[p]) for p in others) / wall
redis_cores = sum(cpu(b[p]) - cpu(a[p]) for p in ports) / wall

m0, m1 = {}, {}
for i in (0, 1):
    for k, v in metrics(f"{d}/m-a-{i}.txt").items():
        m0[k] = m0.get(k, 0) + v
    for k, v in metrics(f"{d}/m-b-{i}.txt").items():
        m1[k] = m1.get(k, 0) + v
delta = {k: v - m0.get(k, 0) for k, v in m1.items() if v - m0.get(k, 0) > 0}
kinds, scripts, errors = {}, {}, 0
for (metric, labels), v in delta.items():
    lab = dict(labels)
    if metric == "http_requests_total" and lab.get("method") == "POST":
        route = lab.get("route", "")
        if lab.get("status", "").startswith("2") and not re.search("/(admin|auth)/", route):
            kinds[route] = kinds.get(route, 0) + v
        elif lab.get("status", "").startswith("5"):
            errors += v
    elif metric == "lua_script_calls_total":
        scripts[lab.get("script")] = scripts.get(lab.get("script"), 0) + v
decisions = sum(kinds.values())
app = (int(facts["app_ticks_b"]) - int(facts["app_ticks_a"])) / hz / wall
maria = (int(facts["mariadb_ticks_b"]) - int(facts["mariadb_ticks_a"])) / hz / wall
busy = (int(facts["busy_ticks_b"]) - int(facts["busy_ticks_a"])) / hz / wall
gen = float(facts.get("gen_seconds") or 0) / wall
other = busy - app - maria - gen - redis_cores
with open(f"{d}/summary.txt", "w") as f:
    f.write(f"{decisions / wall:.0f} {total / wall:.0f} {verdict if len(prim) > 1 else '-'}\n")

print(f"### {name}: {count} buckets, {wall:.1f} s of load\n")
print("| primary | slots | buckets | keys | EVALSHA calls | share | vs mean "
      "| Redis CPU per call | Redis cores |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
if len(prim) > 1:
    print(f"- **balance: {verdict}** — largest deviation from the mean {worst:.1f} % "
          f"(limit {MAX_DEV:.0f} %)")
print(f"- **decisions: {f0(decisions / wall)}/s** (2xx of the POSTs below; "
      f"{f0(errors)} × 5xx) — "
      + ", ".join(f"`{r}` {f0(v / wall)}/s" for r, v in sorted(kinds.items(), key=lambda x: -x[1])))
print(f"- script calls: {f0(total / wall)}/s EVALSHA on the primaries; "
      f"{f0(sum(scripts.values()) / wall)}/s counted by the instances — "
      + ", ".join(f"{s} {f0(v)}" for s, v in sorted(scripts.items(), key=lambda x: -x[1])))
if decisions:
    print(f"- CPU per decision: app {app * wall * 1e6 / decisions:,.0f} µs · Redis (every node) "
          f"{redis_cores * wall * 1e6 / decisions:,.0f} µs; {total / decisions:.2f} script calls "
          f"per decision")
if total:
    print(f"- primaries' main threads per 1,000 EVALSHA: "
          f"{switches['voluntary_ctxt_switches'] * 1000 / total:,.0f} sleeps (epoll, fsync) · "
          f"{switches['nonvoluntary_ctxt_switches'] * 1000 / total:,.0f} preemptions")
print(f"- cores used (of {cpus}): app {app:.2f} · Redis {redis_cores:.2f} (replicas "
      f"{replica_cores:.2f}) · MariaDB {maria:.2f} · load generators {gen:.2f} · "
      f"other {max(other, 0):.2f} · whole box {busy:.2f}; load average "
      f"{facts.get('load_before')} → {facts.get('load_after')}")
if other > 0.25:  # other sessions' compilers and tests take a share the passes do not share
    print(f"- **other work on the box took {other:.2f} cores during this pass: its rate is not "
          f"comparable with another pass's** (the shares still are)")
print()
PY
}

# ------------------------------------------------------------------ main

CL_LOAD_PIDS=()
CL_CLUSTER_UP=0
cl_cleanup() {
  local rc=$? pid
  for pid in "${CL_LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  lt_stop_instances
  if [[ "${KEEP:-0}" != 1 ]]; then
    lt_drop_scratch
  else
    lt_log "kept database ${LT_DB_NAME:-?}"
  fi
  one_down
  if ((CL_CLUSTER_UP)); then cl_cluster down || true; fi
  lt_log "work files in $CL_ROOT"
  exit "$rc"
}

cl_main() {
  local started=$SECONDS commit out
  ensure_tools
  lt_require python3 curl mariadb redis-cli redis-server wrk jq cargo
  lt_ensure_k6
  lt_services
  if [[ -n "${FM_BIN:-}" ]]; then
    LT_BIN="$(realpath "$FM_BIN")"
  else
    lt_log "release build"
    (cd "$LT_REPO" && cargo build --release --quiet --bin flashmart)
    LT_BIN="${CARGO_TARGET_DIR:-$LT_REPO/target}/release/flashmart"
  fi
  # a dirty tree is named by a hash of its diff, so two runs can tell whether they built the same
  local diff_sha
  commit="$(git -C "$LT_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if ! git -C "$LT_REPO" diff --quiet HEAD -- src lua Cargo.toml 2>/dev/null; then
    diff_sha="$(git -C "$LT_REPO" diff HEAD -- src lua Cargo.toml | sha1sum | cut -c1-8)"
    commit+="+dirty (diff $diff_sha)"
  fi
  CL_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/flashmart-bench-cluster.XXXXXX")"
  trap cl_cleanup EXIT
  trap 'exit 130' INT TERM
  svc_pids
  local built=$SECONDS

  CL_CLUSTER_UP=1
  cl_cluster up
  local p cluster_ports=()
  for ((p = CL_PORT; p < CL_PORT + 6; p++)); do cluster_ports+=("$p"); done
  pass p3 "3 primaries" "$(cl_cluster url)" "${cluster_ports[@]}"
  cl_cluster down
  CL_CLUSTER_UP=0
  if [[ "${BENCH_CLUSTER_ONE:-1}" == 1 ]]; then
    one_up
    pass p1 "1 primary" \
      "redis-cluster://127.0.0.1:$CL_ONE_PORT?node=127.0.0.1:$((CL_ONE_PORT + 1))" \
      "$CL_ONE_PORT" $((CL_ONE_PORT + 1))
    one_down
  fi

  out="${BENCH_OUT:-$LT_REPO/bench/results/$(date -u +%Y-%m-%d)-cluster.md}"
  mkdir -p "$(dirname "$out")"
  {
    echo "# flashmart bench-cluster $(date -u +%Y-%m-%d)"
    echo
    echo "Commit \`$commit\`, $(nproc) cores shared by two \`flashmart serve\` (release),"
    echo "every Redis node (appendfsync always), MariaDB and the load generators. Per pass"
    echo "${CL_SECS} s of wrk coupon issues ($CL_COUPON_CONNS connections per instance,"
    echo "$CL_CAMPAIGNS campaigns in turn), wrk order + pay ($CL_ORDER_CONNS per instance,"
    echo "$CL_PRODUCTS products, $CL_ORDER_USERS users) and k6 wallet charges; $CL_USERS users."
    echo "Produced by \`scripts/bench-cluster.sh\`."
    echo
    cat "$CL_ROOT/p3/section.md"
    if [[ -s "$CL_ROOT/p1/summary.txt" ]]; then
      cat "$CL_ROOT/p1/section.md"
      local d3 c3 d1 c1 _v
      read -r d3 c3 _v <"$CL_ROOT/p3/summary.txt"
      read -r d1 c1 _v <"$CL_ROOT/p1/summary.txt"
      awk -v d3="$d3" -v c3="$c3" -v d1="$d1" -v c1="$c1" 'BEGIN {
        printf "**3 vs 1 primary:** %d vs %d decisions/s (%.2fx), %d vs %d script calls/s.\n",
          d3, d1, (d1 > 0 ? d3 / d1 : 0), c3, c1 }'
    fi
  } >"$out"
  cat "$out"
  lt_log "results saved to ${out#"$LT_REPO"/}"
  lt_log "bench-cluster done in $((SECONDS - started)) s ($((SECONDS - built)) s after the build)"
  if grep -q '^- \*\*balance: FAIL' "$out"; then
    lt_log "the primaries' shares are NOT within ${CL_MAX_DEV} % of the mean"
  fi
}

cl_main "$@"
