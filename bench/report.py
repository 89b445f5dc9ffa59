#!/usr/bin/env python3
"""The table of `make bench`: reads the phase outputs in a work directory (facts.txt, the
wrk-*.out JSON lines printed by bench/wrk/report.lua, k6 summaries, cpu.tsv, …) and writes one
markdown table of figure, measurement, target and verdict.

    python3 bench/report.py WORK_DIR OUT.md

Called by scripts/bench.sh; the BENCH_*_RATE / BENCH_MEM_CONNS variables label the figures
with the rates actually used.
"""
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

def phase_cpu():
    """Phase walls and cores by phase name, from cpu.tsv."""
    out = {}
    try:
        for line in open(f"{W}/cpu.tsv"):
            cols = line.rstrip("\n").split("\t")
            out[cols[1]] = {"wall": float(cols[2]), "app": float(cols[3]), "redis": float(cols[4]),
                            "maria": float(cols[5])}
    except OSError:
        pass
    return out

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
def openloop_result(name):
    """benches/openloop.rs's RESULT line in {W}/{name}.out, or None."""
    try:
        for line in open(f"{W}/{name}.out"):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
    except OSError:
        pass
    return None

def openloop_figures(results):
    """Rate, per-instance percentiles, queued requests, statuses and errors of openloop runs."""
    return (f"{sum(r['rate'] for r in results):,.0f} req/s; p50 {'/'.join(f2(r['p50']) for r in results)} / "
            f"p90 {'/'.join(f2(r['p90']) for r in results)} / p99 {'/'.join(f2(r['p99']) for r in results)} / "
            f"max {'/'.join(f2(r['max']) for r in results)} ms (per instance); queued behind busy connections "
            f"{sum(r['queued'] for r in results):,}; statuses "
            f"{' '.join(f'{k}×{v:,}' for r in results for k, v in r['statuses'].items())}; "
            f"errors {sum(r['errors'] for r in results)}")

orush = [r for r in (openloop_result("openrush-0"), openloop_result("openrush-1")) if r]
if orush:
    open_issued = sum(r["statuses"].get("201", 0) for r in orush)
    open_rows = int(facts.get("open_rush_rows", "-1") or -1)
    expected = all(set(r["statuses"]) <= {"201", "409", "410"} and r["errors"] == 0 for r in orush)
    row("coupon", f"the same rush from benches/openloop.rs (open loop, one thread per instance, each "
        f"sending its half of the users; latency from each request's due time), a campaign of its own",
        openloop_figures(orush), "p99 < 25 ms, only 201/409/410", "openloop",
        max(r["p99"] for r in orush) < 25 and expected)
    row("coupon", "coupons issued vs limit (openloop rush campaign)",
        f"{f0(open_issued)} × 201, {f0(open_rows)} rows in MySQL, limit {f0(limit)}",
        "exactly the limit", "openloop + MariaDB", open_issued == limit and open_rows == limit)
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
rbb_rps = None
rbb_issued = int(facts.get("rb_batch_issued") or 0)
rbb_phase = phase_cpu().get(f"redis-benchmark EVALSHA x{facts.get('rb_batch')}")
if rbb_issued and rbb_phase:
    rbb_rps = rbb_issued / rbb_phase["wall"]
row("coupon", f"Redis limit, batched: coupon_issue.lua deciding {facts.get('rb_batch', '—')} requests per call, {facts.get('conc')} clients",
    f"{f0(rbb_rps)} decisions/s" + (f" ({f2(rbb_rps / redis_rps)}× one per call)" if rbb_rps and redis_rps else ""),
    "—", "redis-benchmark")
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
woc = wrk("orderpay-capped")
if woc:
    paid = woc["statuses"].get("pay_200", 0)
    row("order+pay", "paid orders/s with the load generator capped at 4 connections (its phase row has the ledger lag)",
        f"{f0(paid / (woc['durationUs'] / 1e6))} paid/s; request p50 {ms(woc['p50'])} / p99 {ms(woc['p99'])} ms; "
        + wrk_codes(woc), "—", "wrk")
flash, flash_rc = k6("flash")
for name in ("order", "pay", "browse"):
    e = ep(flash, name)
    p50, p95, p99 = lat(e)
    row("order+pay", f"k6 flash-sale `{name}` (buyers at {os.environ.get('BENCH_FLASH_RATE', '1000')}/s, browsing at half that)",
        f"{f0(e.get('count'))} req, {f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; {codes(e)}",
        "p99 < 50 ms; 201/409, 200/402/409, 200", "k6", None if p99 is None else p99 < 50)
def phase_tag(name):
    """The index bench.sh gave phase `name` (its metrics scrapes are m-<index>-a/b), or None."""
    try:
        for line in open(f"{W}/cpu.tsv"):
            cols = line.rstrip("\n").split("\t")
            if len(cols) > 1 and cols[1] == name:
                return cols[0]
    except OSError:
        pass
    return None

def scrape_lines(tag):
    """The lines of both instances' /metrics scrapes `tag` (m-<tag>-<i>.txt; a missing one adds none)."""
    for i in (0, 1):
        try:
            yield from open(f"{W}/m-{tag}-{i}.txt").read().splitlines()
        except OSError:
            continue

def lag_bound(buckets, n, q):
    """The smallest histogram bucket bound holding at least q of n observations, or None."""
    for le in sorted(buckets):
        if n and buckets[le] >= q * n:
            return le
    return None

def route_histogram(tag, method, route):
    """Both instances' http_request_duration_seconds buckets of one route ({le: count}, every
    status) in the scrape `tag`."""
    out = {}
    for line in scrape_lines(tag):
        if not line.startswith("http_request_duration_seconds_bucket{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[:line.rindex("}")]))
        if labels.get("method") != method or labels.get("route") != route:
            continue
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        out[le] = out.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return out

flash_tag = phase_tag("k6 flash-sale")
for name, method, route in (("order", "POST", "/api/v1/orders"),
                            ("pay", "POST", "/api/v1/orders/{orderId}/payment")):
    if not flash_tag:
        break
    before = route_histogram(f"{flash_tag}-a", method, route)
    after = route_histogram(f"{flash_tag}-b", method, route)
    diff = {le: after[le] - before.get(le, 0) for le in after}
    n = diff.get(float("inf"), 0)
    if not n:
        continue
    p50, p99 = lag_bound(diff, n, 0.5), lag_bound(diff, n, 0.99)
    show = lambda b: "—" if b is None else ("> 10 s" if b == float("inf") else f"≤ {b * 1000:g} ms")
    row("order+pay", f"flash-sale `{name}` measured by the server (both instances' "
        f"http_request_duration_seconds, request in to response out; k6's own scheduling not included)",
        f"{n:,.0f} req; p50 {show(p50)} / p99 {show(p99)} (histogram bucket bounds)",
        "p99 ≤ 50 ms", "Prometheus histogram", None if p99 is None else p99 <= 0.05)
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
def paying_side(digest, label):
    """The order and pay rows of a k6 run that pays orders beside the reads (p99 < 50 ms)."""
    for name in ("order", "pay"):
        e = ep(digest, name)
        p50, p95, p99 = lat(e)
        row("popular", f"{label} `{name}` (the paying side)",
            f"{f0(e.get('perSecond'))} req/s; {lat_str(p50, p95, p99)}; {codes(e)}", "p99 < 50 ms", "k6",
            None if p99 is None else p99 < 50)

paying_side(storm, "k6 popular-storm")

ol = [r for r in (openloop_result("openloop-0"), openloop_result("openloop-1")) if r]
if ol:
    worst = max(r["p99"] for r in ol)
    ok = all(set(r["statuses"]) == {"200"} and r["errors"] == 0 for r in ol)
    row("popular", f"the same popular reads from benches/openloop.rs (open loop, one thread per instance, "
        f"latency from each request's due time) while k6 pays at {os.environ.get('BENCH_STORM_PAY_RATE', '300')}/s",
        openloop_figures(ol),
        "p99 < 10 ms", "openloop", worst < 10 and ok)
    paying_side(k6("openpay")[0], "openloop popular-storm, k6")

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
    for line in scrape_lines(tag):
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



# ---- cost per decision: server CPU (instances + Redis + MariaDB, /proc) ÷ decisions made
phases = phase_cpu()

def cost_row(area, what, phase, decisions, target_us, note=""):
    ph = phases.get(phase)
    if not ph or not decisions:
        row(area, f"cost per {what}", "—", f"≤ {target_us} µs" if target_us else "—", "/proc ÷ decisions")
        return
    per = lambda cores: cores * ph["wall"] * 1e6 / decisions
    server = per(ph["app"] + ph["redis"] + ph["maria"])
    if ph["redis"] == 0 and ph["maria"] == 0:
        note += "; Redis and MariaDB not attributed (services not started by the bench)"
        target_us = None
    row(area, f"cost per {what} ({phase}{note})",
        f"server {server:,.0f} µs (app {per(ph['app']):,.0f} · Redis {per(ph['redis']):,.0f} · "
        f"MariaDB {per(ph['maria']):,.0f}) over {decisions:,} decisions",
        f"server ≤ {target_us} µs" if target_us else "—", "/proc ÷ decisions",
        None if not target_us else server <= target_us)

cost_row("cost", "issued coupon", "wrk coupon issue",
         (wc or {}).get("statuses", {}).get("issue_201", 0), 50)
cost_row("cost", "paid order", "wrk order + pay", (wo or {}).get("statuses", {}).get("pay_200", 0), 200,
         "; order + pay, settlement included")
wp = wrk("popular")
cost_row("cost", "popular read", "wrk /products/popular (+k6 paying)",
         (wp["requests"] - wp["non2xx3xx"]) if wp else 0, None, "; k6's payments share the CPU")
rb_issued = int(facts.get("rb_issued") or 0)
if phases.get("redis-benchmark EVALSHA", {}).get("redis") and rb_issued:
    ph = phases["redis-benchmark EVALSHA"]
    row("cost", "Redis CPU per decision, one decision per call (redis-benchmark EVALSHA)",
        f"{ph['redis'] * ph['wall'] * 1e6 / rb_issued:,.0f} µs", "—", "/proc ÷ issued")

for line in open(f"{W}/cpu.tsv"):
    idx, name, wall, app, redis, maria, gen, busy, rss, settler = (
        line.rstrip("\n").split("\t") + ["0"])[:10]
    rss_mib = "/".join(f"{int(x or 0) / 1024:.0f}" for x in rss.split("/"))
    other = float(busy) - float(app) - float(redis) - float(maria) - float(gen)
    a, b = metrics_of(f"{idx}-a"), metrics_of(f"{idx}-b")
    n = b["lag_count"] - a["lag_count"]
    diff = {le: b["lag"].get(le, 0) - a["lag"].get(le, 0) for le in b["lag"]}
    applied = b["applied"] - a["applied"]
    commits = b["commit_count"] - a["commit_count"]
    # settlement's own cost per event: the instances' settlement threads, and MariaDB (all of
    # its work in the phase, which is nearly all settlement's)
    def per_event(cores):
        return f"{float(cores) * float(wall) * 1e6 / applied:,.0f}" if applied else "—"
    settle = (f"; settled {applied:,.0f} events ({applied / float(wall):,.0f}/s, "
              f"{commits:,.0f} batch commits; µs per event: settlement thread {per_event(settler)} · "
              f"MariaDB {per_event(maria)}), ledger lag p99 "
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
