#!/usr/bin/env bash
# Browser tests of the storefront (part of `make test`): Debian's Chromium driven by the npm
# package playwright-core (pinned in web-tests/package-lock.json; it never downloads a browser).
#
# What it does: starts the private services, builds the debug binary, creates a FRESH database
# (migrated + `seed --demo`) and a random Redis key prefix, starts ONE `flashmart serve` on a
# free loopback port (scripts/lib/scratch-app.sh), runs web-tests/storefront.test.mjs with node's test runner, and stops the
# server (by its PID), runs `flashmart audit` (ledger, Redis = MySQL), drops the database and
# deletes the prefix's keys on exit.
# Screenshots of the main pages: web-tests/artifacts/*.png (git-ignored).
#
# Needs: node >= 20 with npm, /usr/bin/chromium (`apt-get install -y chromium`; .ci/run does it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
ARTIFACTS_DIR="${ARTIFACTS_DIR:-$REPO/web-tests/artifacts}"

log() { printf '[browser-tests.sh] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- tools -------------------------------------------------------------------------------------
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is missing: apt-get install -y chromium"
command -v node >/dev/null || die "node is missing (apt-get install -y nodejs npm)"
want="$(node -p 'require("./web-tests/package-lock.json").packages["node_modules/playwright-core"].version')"
have="$(node -p 'require("./web-tests/node_modules/playwright-core/package.json").version' 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
  log "installing web-tests dependencies (npm ci: playwright-core $want)"
  (cd web-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# --- one fresh server (scripts/lib/scratch-app.sh) ---------------------------------------------
# shellcheck source=scripts/lib/scratch-app.sh
source "$REPO/scripts/lib/scratch-app.sh"
unset HSTS_MAX_AGE_SECS
lt_single_app fmweb
log "server pid ${LT_PIDS[0]} on $BASE (database $LT_DB_NAME, Redis prefix {$LT_PREFIX})"

# --- the tests -----------------------------------------------------------------------------------
rm -rf "$ARTIFACTS_DIR"
mkdir -p "$ARTIFACTS_DIR"
BASE_URL="$BASE" ARTIFACTS_DIR="$ARTIFACTS_DIR" \
  node --test --test-concurrency=1 --test-reporter=spec web-tests/storefront.test.mjs
if grep -q '"level":"ERROR"' "$LT_LOG"; then
  log "the server logged errors during the run:"
  grep '"level":"ERROR"' "$LT_LOG" | head -n 20 >&2
  exit 1
fi
# everything the pages did went through the services: the books must balance afterwards
lt_cli audit --wait-secs 30 >"$LT_WORK/audit.log" 2>&1 || {
  cat "$LT_WORK/audit.log" >&2
  die "flashmart audit found violations after the browser tests"
}
log "passed (audit clean); screenshots in $ARTIFACTS_DIR"
