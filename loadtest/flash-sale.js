// flash-sale: order + pay on a few hot products with small stock, plus people browsing.
//
// setup() creates HOT_PRODUCTS products of HOT_STOCK units (price PRICE) with ADMIN_TOKEN, and
// charges the buyers (the first BUYERS users of TOKENS_FILE) with CHARGE won each.
//   buyers:   RATE iterations/s; each orders 1 unit of a hot product (201, or 409
//             INSUFFICIENT_STOCK once it is gone) and pays what it got (200; 402/409 tolerated)
//   browsers: BROWSE_RATE/s `GET /api/v1/products?limit=20` following nextCursor
// teardown() reads every hot product back: stock must never be negative (no oversell); the
// audit and bench.sh check sold ≤ stock in MySQL afterwards.
//
// Environment (besides lib.js): RATE (default 100), BROWSE_RATE (default RATE/2), DURATION
// (default 10s), VUS (default 50), HOT_PRODUCTS (3), HOT_STOCK (20), PRICE (1000), BUYERS
// (default min(users, 500)), CHARGE (default 1000000), P99_MS (default 50).

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
  env, envInt, loadUsers, base, params, outcomes, thresholds, summaryHandler, windowMs,
  createProducts, chargeUsers, SUMMARY_TREND_STATS, authHeaders,
} from './lib.js';

const users = loadUsers();
const record = outcomes(['order', 'pay', 'browse']);
const paidOrders = new Counter('paid_orders');
const paidUnits = new Counter('paid_units');
const negativeStock = new Counter('negative_stock');
const stockLeft = new Counter('hot_stock_left');

const RATE = envInt('RATE', 100);
const BROWSE_RATE = envInt('BROWSE_RATE', Math.max(1, Math.floor(RATE / 2)));
const VUS = envInt('VUS', 50);
const DURATION = env('DURATION', '10s');
const HOT = envInt('HOT_PRODUCTS', 3);
const HOT_STOCK = envInt('HOT_STOCK', 20);
const PRICE = envInt('PRICE', 1000);
const BUYERS = Math.min(envInt('BUYERS', 500), users.length);
const CHARGE = envInt('CHARGE', 1000000);

export const options = {
  scenarios: {
    buyers: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS * 4,
      exec: 'buy',
    },
    browsers: {
      executor: 'constant-arrival-rate',
      rate: BROWSE_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(2, Math.floor(VUS / 2)),
      maxVUs: VUS * 2,
      exec: 'browse',
    },
  },
  thresholds: thresholds({ order: 50, pay: 50, browse: 50 }, {
    negative_stock: ['count==0'],
    paid_units: [`count<=${HOT * HOT_STOCK}`],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '120s',
};

export function setup() {
  const hot = createProducts('k6 flash-sale hot', HOT, PRICE, HOT_STOCK);
  chargeUsers(users, 0, BUYERS, CHARGE);
  return { hot, hotStock: HOT_STOCK, buyers: BUYERS, t0: Date.now() };
}

export function buy(data) {
  const n = exec.scenario.iterationInTest;
  const user = users[n % BUYERS];
  const productId = data.hot[n % data.hot.length];
  const order = http.post(`${base(n)}/api/v1/orders`,
    JSON.stringify({ items: [{ productId, quantity: 1 }] }),
    params('order', user.token, [201, 409]));
  record('order', order, [201, 409]);
  if (order.status !== 201) return;
  const orderId = order.json('orderId');
  const pay = http.post(`${base(n + 1)}/api/v1/orders/${orderId}/payment`, null,
    params('pay', user.token, [200, 402, 409], { 'Idempotency-Key': `k6-${orderId}` }));
  record('pay', pay, [200, 402, 409]);
  if (pay.status === 200) {
    paidOrders.add(1);
    paidUnits.add(1);
  }
}

export function browse() {
  const n = exec.scenario.iterationInTest;
  const user = users[n % users.length];
  // first page, then (every other iteration) the next one
  const res = http.get(`${base(n)}/api/v1/products?limit=20`, params('browse', user.token, [200]));
  record('browse', res, [200]);
  if (res.status === 200 && n % 2 === 0) {
    const cursor = res.json('nextCursor');
    if (cursor) {
      const next = http.get(`${base(n + 1)}/api/v1/products?limit=20&cursor=${encodeURIComponent(cursor)}`,
        params('browse', user.token, [200]));
      record('browse', next, [200]);
    }
  }
}

export function teardown(data) {
  windowMs.add(Date.now() - data.t0);
  negativeStock.add(0);
  for (const id of data.hot) {
    const res = http.get(`${base(id)}/api/v1/products/${id}`,
      { headers: authHeaders(users[0].token), tags: { endpoint: 'setup' } });
    if (res.status !== 200) continue;
    const stock = res.json('stock');
    if (stock < 0) negativeStock.add(1);
    stockLeft.add(stock);
  }
}

export const handleSummary = summaryHandler('flash-sale', (data, d) => {
  const v = (n) => (data.metrics[n] ? data.metrics[n].values.count : 0);
  return {
    hotProducts: d.setup && d.setup.hot,
    stockTotal: HOT * HOT_STOCK,
    paidOrders: v('paid_orders'),
    paidUnits: v('paid_units'),
    hotStockLeft: v('hot_stock_left'),
    paidOrdersPerSecond: v('paid_orders') / d.windowSeconds,
  };
});
