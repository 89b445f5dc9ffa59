// coupon-rush: many users, one first-come campaign, a burst of issue requests.
//
// Each iteration is one `POST /api/v1/coupons/{id}/issue` by the next user of TOKENS_FILE
// (iteration n → user n mod USERS), spread round robin over BASE_URLS. Once every user has
// asked, users ask again (→ 409 COUPON_ALREADY_ISSUED), as people hammering the button do.
//
// Expected: 201 (issued), 409 COUPON_ALREADY_ISSUED, 410 COUPON_SOLD_OUT. Anything else (5xx,
// 429, timeouts) fails the run. Never more than the campaign's quantity is issued; with
// EXPECT_SOLD_OUT=1 exactly the quantity must be issued.
//
// Environment (besides lib.js): COUPON_ID (else setup creates a campaign of COUPON_LIMIT with
// ADMIN_TOKEN), COUPON_LIMIT (default 100), RATE (issue requests/s, default 200), DURATION
// (default 10s), VUS (pre-allocated VUs, default 50; max 4×), USER_OFFSET (default 0),
// USERS (use only the first N users of the file), P99_MS (default 25).

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  env, envInt, loadUsers, base, params, outcomes, thresholds, summaryHandler, windowMs,
  createCampaign, SUMMARY_TREND_STATS, authHeaders,
} from './lib.js';

const users = loadUsers();
const record = outcomes(['issue']);
const issued = new Counter('coupons_issued');
const remainingAfter = new Counter('coupon_remaining_after');

const LIMIT = envInt('COUPON_LIMIT', 100);
const RATE = envInt('RATE', 200);
const VUS = envInt('VUS', 50);
const DURATION = env('DURATION', '10s');
const OFFSET = envInt('USER_OFFSET', 0);
const USERS = Math.min(envInt('USERS', users.length), users.length);

const extra = { coupons_issued: [`count<=${LIMIT}`] };
if (env('EXPECT_SOLD_OUT', '0') === '1') extra.coupons_issued.push(`count>=${LIMIT}`);

export const options = {
  scenarios: {
    rush: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS * 4,
      exec: 'issue',
    },
  },
  thresholds: thresholds({ issue: 25 }, extra),
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '60s',
  discardResponseBodies: false,
};

export function setup() {
  let couponId = envInt('COUPON_ID', 0);
  if (!couponId) couponId = createCampaign(`k6 coupon rush ${Date.now()}`, LIMIT);
  return { couponId, limit: LIMIT, users: USERS, t0: Date.now() };
}

export function issue(data) {
  const n = exec.scenario.iterationInTest;
  const user = users[(OFFSET + n) % USERS];
  const res = http.post(`${base(n)}/api/v1/coupons/${data.couponId}/issue`, null,
    params('issue', user.token, [201, 409, 410]));
  record('issue', res, [201, 409, 410]);
  if (res.status === 201) issued.add(1);
}

export function teardown(data) {
  windowMs.add(Date.now() - data.t0);
  // what the API says is left (Redis's count), for the report
  const res = http.get(`${base(0)}/api/v1/coupons`,
    { headers: authHeaders(users[0].token), tags: { endpoint: 'setup' } });
  if (res.status === 200) {
    const c = (res.json('items') || []).find((x) => x.couponId === data.couponId);
    if (c) remainingAfter.add(c.remainingQuantity);
  }
}

export const handleSummary = summaryHandler('coupon-rush', (data, d) => {
  const v = (n) => (data.metrics[n] ? data.metrics[n].values.count : 0);
  return {
    couponId: d.setup && d.setup.couponId,
    limit: LIMIT,
    issued201: v('coupons_issued'),
    remainingAfter: data.metrics.coupon_remaining_after ? v('coupon_remaining_after') : null,
  };
});
