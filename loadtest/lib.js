// Shared helpers of the flashmart k6 scenarios (loadtest/*.js).
//
// Environment (every scenario):
//   BASE_URLS      comma-separated instances, used round robin (default http://127.0.0.1:8080)
//   TOKENS_FILE    `flashmart seed --users N --tokens-out FILE` output: userId,email,accessToken
//   ADMIN_TOKEN    bearer token of an admin (setup() creates products/campaigns with it)
//   SUMMARY_JSON   where handleSummary writes the JSON summary (default summary-<name>.json)
//   VUS, DURATION, RATE   load shape (each scenario documents its defaults)
//   P99_MS         latency threshold override (ms) for every endpoint of the scenario
//   MAX_ERROR_RATE tolerated share of unexpected responses (default 0: any 5xx, timeout or
//                  status outside the expected set fails the run)
//
// Every request is tagged `endpoint:<name>` and counted per status (`st_<endpoint>_<status>`)
// and, for 4xx/5xx, per problem `code` (`pc_<endpoint>_<CODE>`), so the summary carries
// rejection counts by code without exporting every sample.

import http from 'k6/http';
import { Counter, Gauge, Rate } from 'k6/metrics';
import { SharedArray } from 'k6/data';

// ------------------------------------------------------------------ configuration

export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envInt(name, fallback) {
  const v = env(name, undefined);
  if (v === undefined) return fallback;
  const n = parseInt(v, 10);
  if (Number.isNaN(n)) throw new Error(`${name} must be an integer, got ${v}`);
  return n;
}

export function envFloat(name, fallback) {
  const v = env(name, undefined);
  if (v === undefined) return fallback;
  const n = parseFloat(v);
  if (Number.isNaN(n)) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

/** Duration string ("10s", "1m") → seconds (for rates). */
export function seconds(duration) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration);
  if (!m) throw new Error(`unsupported duration ${duration}`);
  const n = parseFloat(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2]];
}

export const BASES = env('BASE_URLS', 'http://127.0.0.1:8080')
  .split(',')
  .map((s) => s.trim().replace(/\/+$/, ''))
  .filter((s) => s.length > 0);

/** Round robin over the instances by a monotonically increasing number (iteration, VU). */
export function base(n) {
  return BASES[Math.abs(n) % BASES.length];
}

// ------------------------------------------------------------------ users

/** Load-test users from TOKENS_FILE (init context only), shared by every VU. */
export function loadUsers() {
  return new SharedArray('users', () => {
    const path = env('TOKENS_FILE', '');
    if (!path) throw new Error('TOKENS_FILE must name the `seed --tokens-out` file');
    const users = [];
    for (const line of open(path).split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const parts = t.split(',');
      if (parts.length < 3) continue;
      users.push({ id: parseInt(parts[0], 10), token: parts[2] });
    }
    if (users.length === 0) throw new Error(`no users in ${path}`);
    return users;
  });
}

export function authHeaders(token, extra) {
  const h = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  return extra ? Object.assign(h, extra) : h;
}

// ------------------------------------------------------------------ outcome accounting

const STATUSES = [0, 200, 201, 400, 401, 402, 403, 404, 405, 409, 410, 413, 415, 422, 429,
  500, 502, 503, 504];
const CODES = ['COUPON_ALREADY_ISSUED', 'COUPON_NOT_ACTIVE', 'COUPON_NOT_FOUND',
  'COUPON_SOLD_OUT', 'FORBIDDEN', 'IDEMPOTENCY_KEY_REUSED', 'INSUFFICIENT_BALANCE',
  'INSUFFICIENT_STOCK', 'INTERNAL_ERROR', 'INVALID_AMOUNT', 'INVALID_COUPON',
  'MALFORMED_REQUEST', 'NOT_FOUND', 'ORDER_NOT_CANCELLABLE', 'ORDER_NOT_FOUND',
  'ORDER_NOT_PAYABLE', 'PAYLOAD_TOO_LARGE', 'PRODUCT_NOT_FOUND', 'RATE_LIMITED',
  'SERVICE_UNAVAILABLE', 'UNAUTHORIZED', 'USER_NOT_FOUND', 'VALIDATION_FAILED'];

/** Unexpected responses (5xx, network errors, statuses outside the expected set). */
export const unexpected = new Rate('unexpected_responses');
/** Measured window: setup end → teardown start, ms (set in teardown). */
export const windowMs = new Gauge('window_ms');

/**
 * Builds the counters of the given endpoints (init context only). Returns
 * `record(endpoint, res, expected)` which counts the response, tags it and feeds
 * `unexpected_responses`; it returns true when the status is expected.
 */
export function outcomes(endpoints) {
  const st = {};
  const pc = {};
  for (const ep of endpoints) {
    st[ep] = {};
    pc[ep] = {};
    for (const s of STATUSES) st[ep][s] = new Counter(`st_${ep}_${s}`);
    st[ep].other = new Counter(`st_${ep}_other`);
    for (const c of CODES) pc[ep][c] = new Counter(`pc_${ep}_${c}`);
    pc[ep].OTHER = new Counter(`pc_${ep}_OTHER`);
  }
  return function record(endpoint, res, expected) {
    const s = res.status;
    (st[endpoint][s] || st[endpoint].other).add(1);
    if (s >= 400 || s === 0) {
      const m = s === 0 ? null : /"code"\s*:\s*"([A-Z_]+)"/.exec(res.body || '');
      if (m) (pc[endpoint][m[1]] || pc[endpoint].OTHER).add(1);
    }
    const ok = expected.indexOf(s) >= 0;
    unexpected.add(!ok, { endpoint });
    return ok;
  };
}

/** Parameters of a request: endpoint tag, expected statuses (for http_req_failed), headers. */
export function params(endpoint, token, expected, extraHeaders) {
  return {
    headers: authHeaders(token, extraHeaders),
    tags: { endpoint, name: endpoint },
    responseCallback: http.expectedStatuses(...expected),
    timeout: env('REQUEST_TIMEOUT', '10s'),
  };
}

/** Latency + correctness thresholds for the endpoints (P99_MS overrides every p99). */
export function thresholds(p99ByEndpoint, extra) {
  const t = {
    unexpected_responses: [`rate<=${envFloat('MAX_ERROR_RATE', 0)}`],
    http_req_failed: [`rate<=${envFloat('MAX_ERROR_RATE', 0)}`],
  };
  const override = env('P99_MS', '');
  for (const [ep, p99] of Object.entries(p99ByEndpoint)) {
    const limit = override !== '' ? parseFloat(override) : p99;
    t[`http_req_duration{endpoint:${ep}}`] = [`p(99)<${limit}`];
    // referenced so per-endpoint counts appear in the summary
    t[`http_reqs{endpoint:${ep}}`] = ['count>=0'];
  }
  return Object.assign(t, extra || {});
}

export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'];

// ------------------------------------------------------------------ admin helpers (setup)

function adminToken() {
  const t = env('ADMIN_TOKEN', '');
  if (!t) throw new Error('ADMIN_TOKEN must be set (setup creates products/campaigns)');
  return t;
}

/** Creates `count` products via the admin API; returns their ids. */
export function createProducts(prefix, count, price, stock) {
  const token = adminToken();
  const ids = [];
  const tag = `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  for (let i = 0; i < count; i++) {
    const res = http.post(`${base(i)}/api/v1/admin/products`,
      JSON.stringify({ name: `${prefix} ${tag} #${i + 1}`, price, stock }),
      { headers: authHeaders(token), tags: { endpoint: 'setup' } });
    if (res.status !== 201) throw new Error(`create product: ${res.status} ${res.body}`);
    ids.push(res.json('id'));
  }
  return ids;
}

/** Creates a coupon campaign open now; returns its id. */
export function createCampaign(name, totalQuantity) {
  const now = Date.now();
  const body = {
    name,
    discountType: 'FIXED',
    discountValue: 1000,
    minOrderAmount: 0,
    totalQuantity,
    issueStartsAt: new Date(now - 60_000).toISOString(),
    issueEndsAt: new Date(now + 86_400_000).toISOString(),
    validDays: 7,
  };
  const res = http.post(`${base(0)}/api/v1/admin/coupons`, JSON.stringify(body),
    { headers: authHeaders(adminToken()), tags: { endpoint: 'setup' } });
  if (res.status !== 201) throw new Error(`create campaign: ${res.status} ${res.body}`);
  return res.json('couponId');
}

/** Charges users[from .. from+count) with `amount` won each (batched). */
export function chargeUsers(users, from, count, amount) {
  const n = Math.min(count, users.length - from);
  for (let i = 0; i < n; i += 50) {
    const reqs = [];
    for (let j = i; j < Math.min(i + 50, n); j++) {
      const u = users[from + j];
      reqs.push(['POST', `${base(j)}/api/v1/users/${u.id}/balance/charge`,
        JSON.stringify({ amount }), { headers: authHeaders(u.token), tags: { endpoint: 'setup' } }]);
    }
    for (const res of http.batch(reqs)) {
      if (res.status !== 200) throw new Error(`charge: ${res.status} ${res.body}`);
    }
  }
  return n;
}

// ------------------------------------------------------------------ summary

function metricValues(data, name) {
  const m = data.metrics[name];
  return m ? m.values : undefined;
}

/** Compact per-scenario digest: counts by endpoint/status/code, latency, rate. */
export function digest(name, data) {
  const windowS = (metricValues(data, 'window_ms') || {}).value / 1000
    || data.state.testRunDurationMs / 1000;
  const endpoints = {};
  for (const [metric, m] of Object.entries(data.metrics)) {
    let g = /^http_req_duration\{endpoint:([a-z_]+)\}$/.exec(metric);
    if (g) {
      const e = (endpoints[g[1]] = endpoints[g[1]] || { statuses: {}, codes: {} });
      e.latencyMs = {
        p50: m.values.med, p95: m.values['p(95)'], p99: m.values['p(99)'], max: m.values.max,
      };
      continue;
    }
    g = /^http_reqs\{endpoint:([a-z_]+)\}$/.exec(metric);
    if (g) {
      const e = (endpoints[g[1]] = endpoints[g[1]] || { statuses: {}, codes: {} });
      e.count = m.values.count;
      e.perSecond = m.values.count / windowS;
      continue;
    }
    g = /^st_([a-z_]+?)_(\d+|other)$/.exec(metric);
    if (g) {
      const e = (endpoints[g[1]] = endpoints[g[1]] || { statuses: {}, codes: {} });
      e.statuses[g[2]] = m.values.count;
      continue;
    }
    g = /^pc_([a-z_]+?)_([A-Z_]+)$/.exec(metric);
    if (g) {
      const e = (endpoints[g[1]] = endpoints[g[1]] || { statuses: {}, codes: {} });
      e.codes[g[2]] = m.values.count;
    }
  }
  const thresholdsOk = Object.values(data.metrics)
    .every((m) => !m.thresholds || Object.values(m.thresholds).every((t) => t.ok));
  const failed = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) {
      if (!t.ok) failed.push(`${metric}: ${expr}`);
    }
  }
  return {
    scenario: name,
    windowSeconds: windowS,
    thresholdsOk,
    failedThresholds: failed,
    droppedIterations: (metricValues(data, 'dropped_iterations') || {}).count || 0,
    unexpectedRate: (metricValues(data, 'unexpected_responses') || {}).rate || 0,
    endpoints,
    setup: data.setup_data || null,
    extra: {},
  };
}

function fmt(n, d) {
  return n === undefined || n === null || Number.isNaN(n) ? '-' : Number(n).toFixed(d);
}

/** `handleSummary` factory: writes {digest, k6 data} to SUMMARY_JSON and a short text. */
export function summaryHandler(name, extraFn) {
  return function handleSummary(data) {
    const d = digest(name, data);
    if (extraFn) d.extra = extraFn(data, d) || {};
    const lines = [`\n== ${name}: window ${fmt(d.windowSeconds, 1)} s, thresholds ${d.thresholdsOk ? 'ok' : 'FAILED'}, dropped iterations ${d.droppedIterations}`];
    for (const [ep, e] of Object.entries(d.endpoints)) {
      if (ep === 'setup') continue;
      const st = Object.entries(e.statuses).map(([k, v]) => `${k}:${v}`).join(' ');
      const cs = Object.entries(e.codes).map(([k, v]) => `${k}:${v}`).join(' ');
      lines.push(`  ${ep.padEnd(10)} ${fmt(e.count, 0).padStart(8)} req ${fmt(e.perSecond, 1).padStart(9)}/s  p50 ${fmt(e.latencyMs && e.latencyMs.p50, 2)} p95 ${fmt(e.latencyMs && e.latencyMs.p95, 2)} p99 ${fmt(e.latencyMs && e.latencyMs.p99, 2)} ms  [${st}] ${cs}`);
    }
    for (const f of d.failedThresholds) lines.push(`  threshold failed: ${f}`);
    if (Object.keys(d.extra).length) lines.push(`  ${JSON.stringify(d.extra)}`);
    const out = env('SUMMARY_JSON', `summary-${name}.json`);
    return {
      stdout: lines.join('\n') + '\n',
      [out]: JSON.stringify({ digest: d, k6: data }, null, 1),
    };
  };
}
