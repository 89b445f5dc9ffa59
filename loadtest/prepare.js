// prepare: fixtures for the wrk phases of scripts/bench.sh (no load of its own).
//
// setup() creates PRODUCTS products of STOCK units at PRICE won, CAMPAIGNS coupon campaigns of
// CAMPAIGN_QUANTITY coupons (open now), and charges users [CHARGE_FROM, CHARGE_FROM+CHARGE_COUNT)
// of TOKENS_FILE with CHARGE won each; the ids land in SUMMARY_JSON under digest.setup.
//
// Environment (besides lib.js): PRODUCTS (0), STOCK (1000000), PRICE (100), CAMPAIGNS (0),
// CAMPAIGN_QUANTITY (10000000), CHARGE_FROM (0), CHARGE_COUNT (0), CHARGE (10000000).

import {
  envInt, loadUsers, createProducts, createCampaign, chargeUsers, summaryHandler,
} from './lib.js';

const users = loadUsers();

export const options = {
  scenarios: { noop: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'noop' } },
  setupTimeout: '300s',
};

export function setup() {
  const products = envInt('PRODUCTS', 0) > 0
    ? createProducts('bench', envInt('PRODUCTS', 0), envInt('PRICE', 100), envInt('STOCK', 1000000))
    : [];
  const campaigns = [];
  for (let i = 0; i < envInt('CAMPAIGNS', 0); i++) {
    campaigns.push(createCampaign(`bench campaign ${i + 1} ${Date.now()}`,
      envInt('CAMPAIGN_QUANTITY', 10000000)));
  }
  const charged = envInt('CHARGE_COUNT', 0) > 0
    ? chargeUsers(users, envInt('CHARGE_FROM', 0), envInt('CHARGE_COUNT', 0), envInt('CHARGE', 10000000))
    : 0;
  return { products, campaigns, charged };
}

export function noop() {}

export const handleSummary = summaryHandler('prepare');
