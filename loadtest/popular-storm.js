// popular-storm: heavy reads of `GET /api/v1/products/popular` while other users order and pay.
//
// setup() creates PAY_PRODUCTS products with plenty of stock (PAY_STOCK, price PRICE) so
// payments never run out, and charges the payers (the first PAYERS users).
//   readers: READ_RATE/s `GET /api/v1/products/popular` (200 only)
//   payers:  PAY_RATE/s order 1 unit (201; 409 only if stock ran out) + pay (200; 402/409
//            tolerated) — the sales move the ranking while it is being read
//
// Environment (besides lib.js): READ_RATE (default 300), PAY_RATE (default 50), DURATION
// (default 10s), VUS (default 50), PAY_PRODUCTS (8), PAY_STOCK (1000000), PRICE (100),
// PAYERS (default min(users, 500)), CHARGE (default 1000000), P99_MS overrides both p99s
// (defaults: popular 10 ms, order/pay 50 ms). READ_RATE=0 or PAY_RATE=0 leaves that part out
// (bench.sh runs payers only as background traffic while wrk reads popular products).

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  env, envInt, loadUsers, base, params, outcomes, thresholds, summaryHandler, windowMs,
  createProducts, chargeUsers, SUMMARY_TREND_STATS,
} from './lib.js';

const users = loadUsers();
const record = outcomes(['popular', 'order', 'pay']);
const paidOrders = new Counter('paid_orders');
const emptyRankings = new Counter('empty_rankings');

const READ_RATE = envInt('READ_RATE', 300);
const PAY_RATE = envInt('PAY_RATE', 50);
const VUS = envInt('VUS', 50);
const DURATION = env('DURATION', '10s');
const PRODUCTS = envInt('PAY_PRODUCTS', 8);
const STOCK = envInt('PAY_STOCK', 1000000);
const PRICE = envInt('PRICE', 100);
const PAYERS = Math.min(envInt('PAYERS', 500), users.length);
const CHARGE = envInt('CHARGE', 1000000);

const scenarios = {};
if (READ_RATE > 0) {
  scenarios.readers = {
    executor: 'constant-arrival-rate',
    rate: READ_RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: VUS,
    maxVUs: VUS * 4,
    exec: 'read',
  };
}
if (PAY_RATE > 0) {
  scenarios.payers = {
    executor: 'constant-arrival-rate',
    rate: PAY_RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.max(2, Math.floor(VUS / 2)),
    maxVUs: VUS * 4,
    exec: 'orderAndPay',
  };
}

export const options = {
  scenarios,
  thresholds: thresholds(Object.assign(READ_RATE > 0 ? { popular: 10 } : {},
    PAY_RATE > 0 ? { order: 50, pay: 50 } : {})),
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '120s',
};

export function setup() {
  const products = createProducts('k6 popular-storm', PRODUCTS, PRICE, STOCK);
  chargeUsers(users, 0, PAYERS, CHARGE);
  return { products, payers: PAYERS, t0: Date.now() };
}

export function read() {
  const n = exec.scenario.iterationInTest;
  const user = users[n % users.length];
  const res = http.get(`${base(n)}/api/v1/products/popular`, params('popular', user.token, [200]));
  if (record('popular', res, [200]) && n % 50 === 0) {
    // sample the body now and then (parsing every one would cost k6 more than the server)
    const items = res.json('items');
    if (!items || items.length === 0) emptyRankings.add(1);
  }
}

export function orderAndPay(data) {
  const n = exec.scenario.iterationInTest;
  const user = users[n % PAYERS];
  // skewed demand: lower-numbered products sell more, so the ranking has an order
  const pick = Math.min(data.products.length - 1, Math.floor(Math.random() ** 2 * data.products.length));
  const order = http.post(`${base(n)}/api/v1/orders`,
    JSON.stringify({ items: [{ productId: data.products[pick], quantity: 1 }] }),
    params('order', user.token, [201, 409]));
  record('order', order, [201, 409]);
  if (order.status !== 201) return;
  const orderId = order.json('orderId');
  const pay = http.post(`${base(n + 1)}/api/v1/orders/${orderId}/payment`, null,
    params('pay', user.token, [200, 402, 409], { 'Idempotency-Key': `k6-${orderId}` }));
  record('pay', pay, [200, 402, 409]);
  if (pay.status === 200) paidOrders.add(1);
}

export function teardown(data) {
  windowMs.add(Date.now() - data.t0);
}

export const handleSummary = summaryHandler('popular-storm', (data, d) => {
  const v = (n) => (data.metrics[n] ? data.metrics[n].values.count : 0);
  return {
    paidOrders: v('paid_orders'),
    paidOrdersPerSecond: v('paid_orders') / d.windowSeconds,
    emptyRankingsSampled: v('empty_rankings'),
  };
});
