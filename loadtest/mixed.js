// mixed: a realistic mix of shoppers at RATE iterations/s; each iteration is one action:
//   30% browse the catalog (`GET /products?limit=20`)     20% look at one product
//   15% popular products                                    5% list coupon campaigns
//    5% try to get the coupon (limited campaign)           15% order 1-2 units and pay (1 in 10
//    5% look at the balance                                     orders is cancelled instead)
//    5% look at the order history ("my page")
// setup() creates MIX_PRODUCTS products of MIX_STOCK units and a campaign of COUPON_LIMIT, and
// charges the first SHOPPERS users. Expected statuses are listed per endpoint; anything else
// (5xx, 429, timeouts) fails the run.
//
// Environment (besides lib.js): RATE (default 200), DURATION (default 10s), VUS (default 50),
// MIX_PRODUCTS (10), MIX_STOCK (2000), PRICE (500), COUPON_LIMIT (default 100), SHOPPERS
// (default min(users, 1000)), CHARGE (default 1000000), P99_MS (default 50 for everything).

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  env, envInt, loadUsers, base, params, outcomes, thresholds, summaryHandler, windowMs,
  createProducts, createCampaign, chargeUsers, SUMMARY_TREND_STATS,
} from './lib.js';

const users = loadUsers();
const EPS = ['browse', 'product', 'popular', 'coupons', 'issue', 'order', 'pay', 'cancel',
  'balance', 'history'];
const record = outcomes(EPS);
const paidOrders = new Counter('paid_orders');

const RATE = envInt('RATE', 200);
const VUS = envInt('VUS', 50);
const DURATION = env('DURATION', '10s');
const PRODUCTS = envInt('MIX_PRODUCTS', 10);
const STOCK = envInt('MIX_STOCK', 2000);
const PRICE = envInt('PRICE', 500);
const LIMIT = envInt('COUPON_LIMIT', 100);
const SHOPPERS = Math.min(envInt('SHOPPERS', 1000), users.length);
const CHARGE = envInt('CHARGE', 1000000);

const EXPECTED = {
  browse: [200], product: [200], popular: [200], coupons: [200],
  issue: [201, 409, 410], order: [201, 409], pay: [200, 402, 409], cancel: [200, 409],
  balance: [200], history: [200],
};

const p99 = {};
for (const ep of EPS) p99[ep] = 50;

export const options = {
  scenarios: {
    shoppers: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS * 4,
      exec: 'shop',
    },
  },
  thresholds: thresholds(p99),
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '120s',
};

export function setup() {
  const products = createProducts('k6 mixed', PRODUCTS, PRICE, STOCK);
  const couponId = createCampaign(`k6 mixed ${Date.now()}`, LIMIT);
  chargeUsers(users, 0, SHOPPERS, CHARGE);
  return { products, couponId, shoppers: SHOPPERS, t0: Date.now() };
}

function call(ep, method, url, user, body, headers) {
  const p = params(ep, user.token, EXPECTED[ep], headers);
  const res = method === 'GET' ? http.get(url, p) : http.post(url, body, p);
  record(ep, res, EXPECTED[ep]);
  return res;
}

export function shop(data) {
  const n = exec.scenario.iterationInTest;
  const user = users[(n * 7919) % SHOPPERS];
  const b = base(n);
  const roll = Math.random() * 100;
  if (roll < 30) {
    call('browse', 'GET', `${b}/api/v1/products?limit=20`, user);
  } else if (roll < 50) {
    const id = data.products[n % data.products.length];
    call('product', 'GET', `${b}/api/v1/products/${id}`, user);
  } else if (roll < 65) {
    call('popular', 'GET', `${b}/api/v1/products/popular`, user);
  } else if (roll < 70) {
    call('coupons', 'GET', `${b}/api/v1/coupons`, user);
  } else if (roll < 75) {
    call('issue', 'POST', `${b}/api/v1/coupons/${data.couponId}/issue`, user, null);
  } else if (roll < 90) {
    const items = [{ productId: data.products[n % data.products.length], quantity: 1 + (n % 2) }];
    const order = call('order', 'POST', `${b}/api/v1/orders`, user, JSON.stringify({ items }));
    if (order.status !== 201) return;
    const orderId = order.json('orderId');
    if (n % 10 === 0) {
      call('cancel', 'POST', `${base(n + 1)}/api/v1/orders/${orderId}/cancel`, user, null);
    } else {
      const pay = call('pay', 'POST', `${base(n + 1)}/api/v1/orders/${orderId}/payment`, user,
        null, { 'Idempotency-Key': `k6-${orderId}` });
      if (pay.status === 200) paidOrders.add(1);
    }
  } else if (roll < 95) {
    call('balance', 'GET', `${b}/api/v1/users/${user.id}/balance`, user);
  } else {
    call('history', 'GET', `${b}/api/v1/users/${user.id}/orders?limit=10`, user);
  }
}

export function teardown(data) {
  windowMs.add(Date.now() - data.t0);
}

export const handleSummary = summaryHandler('mixed', (data, d) => {
  const v = (n) => (data.metrics[n] ? data.metrics[n].values.count : 0);
  let total = 0;
  for (const [ep, e] of Object.entries(d.endpoints)) if (ep !== 'setup') total += e.count || 0;
  return {
    requests: total,
    requestsPerSecond: total / d.windowSeconds,
    paidOrders: v('paid_orders'),
  };
});
