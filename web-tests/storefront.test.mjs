// Browser tests of the flashmart storefront: a real Chromium (Debian's, /usr/bin/chromium)
// driven by playwright-core against a real `flashmart serve` (real MariaDB, real Redis).
//
// Run by scripts/browser-tests.sh, which starts the server with demo data and passes:
//   BASE_URL, ADMIN_EMAIL, ADMIN_PASSWORD, REDIS_URL, REDIS_KEY_PREFIX, ARTIFACTS_DIR.
// Screenshots of the main pages go to ARTIFACTS_DIR (git-ignored) for a reviewer to look at.
// Nothing here sleeps for a fixed time: every wait polls for an outcome with a generous deadline.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = need("BASE_URL");
const ARTIFACTS = need("ARTIFACTS_DIR");
const DEADLINE_MS = 30_000;
const PASSWORD = "browser-test-password";

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (run scripts/browser-tests.sh)`);
  return value;
}

/** ₩ with thousands separators, as the pages print money. */
function won(n) {
  return (n < 0 ? "-" : "") + "₩" + Math.abs(n).toLocaleString("en-US");
}

let browser;
let adminToken;
let products; // name -> {id, price, stock}
const cspViolations = [];

async function api(method, pathname, body, token = adminToken) {
  const response = await fetch(BASE + pathname, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${pathname} -> ${response.status}: ${text}`);
  return JSON.parse(text);
}

/** A first-come campaign made through the admin API (the storefront only issues them). */
async function campaign(name, { quantity, startsInMs = -60_000, percent = 10, cap = 50_000 }) {
  const now = Date.now();
  const created = await api("POST", "/api/v1/admin/coupons", {
    name,
    discountType: "PERCENT",
    discountValue: percent,
    maxDiscount: cap,
    minOrderAmount: 0,
    totalQuantity: quantity,
    issueStartsAt: new Date(now + startsInMs).toISOString(),
    issueEndsAt: new Date(now + startsInMs + 3_600_000).toISOString(),
    validDays: 7,
  });
  return created.couponId;
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Signs a new shopper up through the sign-up page; ends on the shop. */
async function signUp(page, name) {
  const email = `${name.toLowerCase().replace(/\W/g, "")}-${randomUUID().slice(0, 8)}@example.com`;
  await page.goto(BASE + "/signup");
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel(/^Password/).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(BASE + "/");
  await page.getByRole("heading", { name: "Shop" }).waitFor();
  return email;
}

/** Submits a form by clicking `button` and returns the HTTP status of the POST it sent. */
async function submit(page, button) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.request().isNavigationRequest()),
    button.click(),
  ]);
  await page.waitForLoadState();
  return response.status();
}

async function charge(page, amount) {
  await page.goto(BASE + "/me");
  await page.getByLabel("Amount to charge (won)").fill(String(amount));
  await submit(page, page.getByRole("button", { name: "Charge" }));
  await page.waitForURL(BASE + "/me?done=charged");
}

async function text(locator) {
  return (await locator.textContent()).trim();
}

/** Polls `read` until it returns a truthy value, or fails after the deadline. */
async function eventually(what, read) {
  const until = Date.now() + DEADLINE_MS;
  let last;
  while (Date.now() < until) {
    last = await read();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${what} did not happen within ${DEADLINE_MS} ms (last: ${JSON.stringify(last)})`);
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // playwright gives every launch a fresh temporary --user-data-dir of its own
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const login = await api("POST", "/api/v1/auth/login", {
    email: need("ADMIN_EMAIL"),
    password: need("ADMIN_PASSWORD"),
  }, null);
  adminToken = login.accessToken;
  const list = await api("GET", "/api/v1/products?limit=100");
  products = Object.fromEntries(list.items.map((p) => [p.name, p]));
});

after(async () => {
  await browser?.close();
});

test("a shopper signs up, charges, gets a coupon, orders two products with it, pays and sees it on my page", async () => {
  const couponName = `Browser ten ${randomUUID().slice(0, 6)}`;
  await campaign(couponName, { quantity: 5 });
  const { context, page } = await newPage();
  await signUp(page, "Dana");
  await shot(page, "01-shop");

  await charge(page, 200_000);
  assert.equal(await text(page.locator("#balance")), won(200_000));

  await page.goto(BASE + "/coupons");
  const card = page.locator("li.card", { hasText: couponName });
  assert.equal(await submit(page, card.getByRole("button", { name: /Get coupon/ })), 201);
  await page.getByText(/Coupon issued/).waitFor();
  await shot(page, "02-coupon-issued");

  const hub = products["USB-C Hub"];
  const caseP = products["Phone Case"];
  await page.goto(BASE + "/");
  await page.getByLabel("Quantity of USB-C Hub", { exact: true }).fill("2");
  await page.getByLabel("Quantity of Phone Case", { exact: true }).fill("1");
  const option = await page.locator("#coupon option", { hasText: couponName }).getAttribute("value");
  assert.ok(Number(option) > 0, "the new coupon is offered on the order form");
  await page.getByLabel("Coupon", { exact: true }).selectOption(option);
  await page.getByRole("button", { name: "Review order" }).click();
  await page.getByRole("heading", { name: "Review your order" }).waitFor();
  const subtotal = 2 * hub.price + caseP.price;
  const discount = Math.min(Math.floor((subtotal * 10) / 100), 50_000);
  const total = subtotal - discount;
  assert.equal(await text(page.locator("dd.subtotal")), won(subtotal));
  assert.equal(await text(page.locator("dd.discount")), won(-discount));
  assert.equal(await text(page.locator("dd.total")), won(total));
  await shot(page, "03-review");

  await submit(page, page.getByRole("button", { name: "Place order" }));
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  const orderId = page.url().split("/").pop();
  assert.equal(await text(page.locator(".status")), "PENDING");
  const countdown = page.locator(".countdown");
  const first = await text(countdown);
  assert.match(first, /^\d+:\d\d$/);
  await eventually("the countdown ticks", async () => (await text(countdown)) !== first);
  await shot(page, "04-order-pending");

  assert.equal(await submit(page, page.getByRole("button", { name: `Pay ${won(total)}` })), 303);
  await page.waitForURL(`${BASE}/orders/${orderId}?done=paid`);
  assert.equal(await text(page.locator(".status")), "PAID");

  await page.goto(BASE + "/me");
  assert.equal(await text(page.locator("#balance")), won(200_000 - total));
  const order = page.locator(`article[data-order-id="${orderId}"]`);
  assert.equal(await text(order.locator(".status")), "PAID");
  assert.equal(await text(order.locator("dd.subtotal")), won(subtotal));
  assert.equal(await text(order.locator("dd.discount")), won(-discount));
  assert.equal(await text(order.locator("dd.total")), won(total));
  const lines = await order.locator("tbody tr").allTextContents();
  assert.equal(lines.length, 2);
  assert.ok(lines.some((l) => l.includes("USB-C Hub") && l.includes(won(2 * hub.price))));
  assert.ok(lines.some((l) => l.includes("Phone Case") && l.includes(won(caseP.price))));
  const coupon = page.locator("table.coupons tr", { hasText: couponName });
  assert.equal(await text(coupon.locator(".status")), "USED");
  await shot(page, "05-my-page");

  // the paid units reach the top-5 (the ranking is cached for at most a second)
  await eventually("USB-C Hub shows among the popular products", async () => {
    await page.goto(BASE + "/");
    return (await page.locator("ol.popular").count()) > 0 &&
      (await text(page.locator("ol.popular"))).includes("USB-C Hub");
  });
  await shot(page, "06-shop-popular");
  await context.close();
});

test("a shopper short of balance sees the charge prompt and pays after charging", async () => {
  const { context, page } = await newPage();
  await signUp(page, "Eli");
  await charge(page, 10_000);
  const mouse = products["Gaming Mouse"];
  await page.goto(BASE + "/");
  await page.getByLabel("Quantity of Gaming Mouse", { exact: true }).fill("1");
  await page.getByRole("button", { name: "Review order" }).click();
  await submit(page, page.getByRole("button", { name: "Place order" }));
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  const orderUrl = page.url();

  assert.equal(await submit(page, page.getByRole("button", { name: /^Pay / })), 402);
  await page.getByRole("heading", { name: "Please charge first" }).waitFor();
  assert.equal(await text(page.locator("#shortfall")), won(mouse.price - 10_000));
  await page.getByText("INSUFFICIENT_BALANCE").waitFor();
  assert.equal(await page.getByLabel("Amount to charge (won)").inputValue(), String(mouse.price - 10_000));
  await shot(page, "07-charge-first");

  await submit(page, page.getByRole("button", { name: "Charge" }));
  await page.waitForURL(orderUrl + "?done=charged");
  assert.equal(await text(page.locator("#balance")), won(mouse.price));
  await submit(page, page.getByRole("button", { name: `Pay ${won(mouse.price)}` }));
  await page.waitForURL(orderUrl + "?done=paid");
  assert.equal(await text(page.locator(".status")), "PAID");
  await page.goto(BASE + "/me");
  assert.equal(await text(page.locator("#balance")), won(0));
  await context.close();
});

test("a second browser context sees the coupon event over once the campaign is exhausted", async () => {
  const name = `Browser last one ${randomUUID().slice(0, 6)}`;
  await campaign(name, { quantity: 1 });
  const later = `Browser tomorrow ${randomUUID().slice(0, 6)}`;
  await campaign(later, { quantity: 10, startsInMs: 86_400_000 });
  const first = await newPage();
  const second = await newPage();
  await signUp(first.page, "Fay");
  await signUp(second.page, "Gus");
  await first.page.goto(BASE + "/coupons");
  await second.page.goto(BASE + "/coupons");
  const button = (page) => page.locator("li.card", { hasText: name }).getByRole("button", { name: /Get coupon/ });
  await button(second.page).waitFor(); // both see the button while a coupon is left

  assert.equal(await submit(first.page, button(first.page)), 201);
  assert.equal(await submit(second.page, button(second.page)), 410);
  await second.page.getByText(/the event is over/).waitFor();
  await second.page.getByText("COUPON_SOLD_OUT").waitFor();
  await shot(second.page, "08-coupon-event-over");

  await second.page.goto(BASE + "/coupons");
  const card = second.page.locator("li.card", { hasText: name });
  assert.equal(await text(card.locator(".state")), "Event over");
  assert.equal(await card.getByRole("button").count(), 0);
  const future = second.page.locator("li.card", { hasText: later });
  assert.equal(await text(future.locator(".state")), "Not started yet");
  await first.context.close();
  await second.context.close();
});

test("an expired session goes back to log-in, and log-out ends a session", async () => {
  const { context, page } = await newPage();
  const email = await signUp(page, "Hal");
  const cookie = (await context.cookies()).find((c) => c.name === "fm_session");
  assert.ok(cookie, "a session cookie is set");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Lax");

  // let the session's Redis entry lapse, as its TTL does after ACCESS_TOKEN_TTL_SECONDS
  const hash = createHash("sha256").update(cookie.value).digest("hex");
  const key = `{${need("REDIS_KEY_PREFIX")}}:session:${hash}`;
  const set = execFileSync("redis-cli", ["-u", need("REDIS_URL"), "PEXPIRE", key, "1"]).toString().trim();
  assert.equal(set, "1", "the session is stored in Redis under the hash of its cookie");

  await eventually("the expired session is sent to log-in", async () => {
    await page.goto(BASE + "/me");
    return page.url() === BASE + "/login?ended=1";
  });
  await page.getByText("Your session has ended").waitFor();
  assert.equal((await context.cookies()).find((c) => c.name === "fm_session"), undefined);
  await shot(page, "09-session-ended");

  // log in again with the keyboard only
  await page.goto(BASE + "/login");
  for (let i = 0; i < 12 && (await page.evaluate(() => document.activeElement?.id)) !== "email"; i++) {
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement?.id), "email");
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(BASE + "/");

  await submit(page, page.getByRole("button", { name: "Log out" }));
  await page.waitForURL(BASE + "/login");
  await page.goto(BASE + "/me");
  assert.equal(page.url(), BASE + "/login");
  await context.close();
});

test("a form without the CSRF token is refused and changes nothing", async () => {
  const { context, page } = await newPage();
  await signUp(page, "Ivy");
  await page.goto(BASE + "/me");
  await page.locator('form[action="/me/charge"] input[name="csrf"]').evaluate((el) => el.remove());
  await page.getByLabel("Amount to charge (won)").fill("5000");
  assert.equal(await submit(page, page.getByRole("button", { name: "Charge" })), 403);
  await page.getByText("CSRF_REJECTED").waitFor();
  await shot(page, "10-csrf-refused");

  await page.goto(BASE + "/me");
  await page.locator('form[action="/me/charge"] input[name="csrf"]').evaluate((el) => {
    el.value = "forged" + el.value.slice(6);
  });
  await page.getByLabel("Amount to charge (won)").fill("5000");
  assert.equal(await submit(page, page.getByRole("button", { name: "Charge" })), 403);

  await page.goto(BASE + "/me");
  assert.equal(await text(page.locator("#balance")), won(0));
  await context.close();
});

test("pages fit a phone, load only our own assets and show errors with the API's code", async () => {
  const { context, page } = await newPage({ viewport: { width: 390, height: 844 } });
  await signUp(page, "Jo");
  const response = await page.goto(BASE + "/");
  const csp = response.headers()["content-security-policy"];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /style-src 'self'/);
  assert.match(csp, /form-action 'self'/);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, "rgb(247, 248, 250)", "our style sheet is applied");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
  await shot(page, "11-phone-shop");
  await page.goto(BASE + "/me");
  await shot(page, "12-phone-my-page");

  const missing = await page.goto(BASE + "/orders/00000000-0000-7000-8000-000000000000");
  assert.equal(missing.status(), 404);
  await page.getByText("ORDER_NOT_FOUND").waitFor();
  const bad = await page.goto(BASE + "/orders/not-an-order");
  assert.equal(bad.status(), 400);
  await page.getByText("VALIDATION_FAILED").waitFor();
  await shot(page, "13-error-page");
  assert.deepEqual(cspViolations, [], "no page broke its content security policy");
  await context.close();
});
