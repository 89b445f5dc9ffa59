#!/usr/bin/env bash
# SQL injection scan with sqlmap (level 3, risk 2) of every endpoint that takes parameters.
#
#   scripts/security/sqlmap.sh        # `make security`
#
# Same server set-up as scripts/security/schemathesis.sh: private services, debug binary, a
# FRESH database (migrated + `seed --demo`), a random Redis key prefix, ONE `flashmart serve` on
# a free loopback port, stopped by its PID on exit. Then, with alice's bearer token, sqlmap runs
# in batch mode against:
#   GET  /api/v1/products?cursor=*&limit=*            (query)
#   GET  /api/v1/products/{productId}*                 (path)
#   GET  /api/v1/users/{userId}*/orders?cursor=*&limit=*  (path + query)
#   POST /api/v1/auth/login      {"email":…*,"password":…*}   (JSON body)
#   POST /api/v1/orders          {"items":[{"productId":…*,"quantity":…*}]}  (JSON body)
#   POST /api/v1/users/{userId}/balance/charge {"amount":…*}  (JSON body)
# Each target starts from a valid request (real ids and cursors) so sqlmap compares true/false
# payloads against a real answer. The run fails if sqlmap reports any injection point, if a
# target did not finish ("do not appear to be injectable" missing), or on a 5xx from the API.
#
# Knobs: SQLMAP_LEVEL (3), SQLMAP_RISK (2), SQLMAP_TARGET_TIMEOUT (seconds per target, 900),
# SQLMAP_ONLY (run only targets whose name contains this), SECURITY_OUT (default
# target/security/sqlmap), SECURITY_KEEP_DB=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

SQLMAP_VERSION="1.10.10" # pinned
LEVEL="${SQLMAP_LEVEL:-3}"
RISK="${SQLMAP_RISK:-2}"
TARGET_TIMEOUT="${SQLMAP_TARGET_TIMEOUT:-900}"
OUT="${SECURITY_OUT:-$REPO/target/security/sqlmap}"
VENV="$REPO/.venv"

log() { printf '[sqlmap.sh] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- tools -------------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if [[ "$("$VENV/bin/sqlmap" --version 2>/dev/null || true)" != "$SQLMAP_VERSION"* ]]; then
  log "installing sqlmap==$SQLMAP_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "sqlmap==$SQLMAP_VERSION"
fi

# --- one fresh server (scripts/lib/scratch-app.sh) ---------------------------------------------
# shellcheck source=scripts/lib/scratch-app.sh
source "$REPO/scripts/lib/scratch-app.sh"
LT_KEEP="${SECURITY_KEEP_DB:-0}"
lt_single_app fmsec
WORK="$LT_WORK"
log "server pid ${LT_PIDS[0]} on $BASE (database $LT_DB_NAME, Redis prefix {$LT_PREFIX})"
# --------------------------------------------------------------------------------------------------

# --- realistic starting values -----------------------------------------------------------------
api() { # METHOD PATH TOKEN [JSON]
  local args=(-fsS -X "$1" "$BASE$2" -H "Authorization: Bearer $3")
  [[ $# -ge 4 ]] && args+=(-H 'content-type: application/json' -d "$4")
  curl "${args[@]}"
}
jget() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"; }
ADMIN_TOKEN="$(curl -fsS "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | jget accessToken)"
ALICE_ID="$(api GET /api/v1/products "$TOKEN" >/dev/null && curl -fsS "$BASE/api/v1/auth/login" \
  -H 'content-type: application/json' \
  -d '{"email":"alice@example.com","password":"flashmart-demo"}' | jget userId)"
# a product with enough stock that thousands of scanner orders never exhaust it
PRODUCT_ID="$(api POST /api/v1/admin/products "$ADMIN_TOKEN" \
  '{"name":"sqlmap target","price":1000,"stock":1000000}' | jget id)"
api POST "/api/v1/users/$ALICE_ID/balance/charge" "$TOKEN" '{"amount":10000}' >/dev/null
for _ in 1 2 3; do
  api POST /api/v1/orders "$TOKEN" "{\"items\":[{\"productId\":$PRODUCT_ID,\"quantity\":1}]}" >/dev/null
done
PRODUCT_CURSOR="$(api GET '/api/v1/products?limit=2' "$TOKEN" | jget nextCursor)"
ORDER_CURSOR="$(api GET "/api/v1/users/$ALICE_ID/orders?limit=1" "$TOKEN" | jget nextCursor)"
[[ -n "$PRODUCT_CURSOR" && "$PRODUCT_CURSOR" != None && -n "$ORDER_CURSOR" && "$ORDER_CURSOR" != None ]] ||
  die "could not obtain real cursors"

# --- targets -----------------------------------------------------------------------------------
# name | sqlmap target arguments (tab-separated: each extra sqlmap argument is one field)
TARGETS=(
  "products-list	-u	$BASE/api/v1/products?cursor=${PRODUCT_CURSOR}*&limit=5*"
  "product-get	-u	$BASE/api/v1/products/${PRODUCT_ID}*"
  "user-orders	-u	$BASE/api/v1/users/${ALICE_ID}*/orders?cursor=${ORDER_CURSOR}*&limit=1*"
  # a wrong login is a 401: tell sqlmap it is an answer, not an authentication problem
  "login	-u	$BASE/api/v1/auth/login	--data	{\"email\":\"alice@example.com*\",\"password\":\"flashmart-demo*\"}	--ignore-code=401"
  "order-create	-u	$BASE/api/v1/orders	--data	{\"items\":[{\"productId\":${PRODUCT_ID}*,\"quantity\":1*}]}"
  "charge	-u	$BASE/api/v1/users/${ALICE_ID}/balance/charge	--data	{\"amount\":1*}"
  # sqlmap's JWT audit of alice's token: alg:none, corrupted signature, wordlist HMAC secret,
  # expired-token acceptance, injection through claims
  "jwt-audit	-u	$BASE/api/v1/users/${ALICE_ID}/balance	--jwt	--ignore-code=401"
)

mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
{
  echo "sqlmap $SQLMAP_VERSION --level $LEVEL --risk $RISK against $BASE ($(date -u +%FT%TZ))"
} >>"$SUMMARY"
failures=0
started_all=$(date +%s)
for entry in "${TARGETS[@]}"; do
  IFS=$'\t' read -r -a fields <<<"$entry"
  name="${fields[0]}"
  target_args=("${fields[@]:1}")
  if [[ -n "${SQLMAP_ONLY:-}" && "$name" != *"$SQLMAP_ONLY"* ]]; then continue; fi
  cmd=(
    "$VENV/bin/sqlmap" --batch --level "$LEVEL" --risk "$RISK"
    "${target_args[@]}"
    --headers "Authorization: Bearer $TOKEN"
    --flush-session --disable-coloring
    # sqlmap's WAF probe adds an unknown query parameter, which the API refuses (400) by design;
    # skip the probe so sqlmap does not switch to "bypass" mode (random UA, browser headers)
    --skip-waf
    --output-dir "$OUT/session"
  )
  log "target $name: sqlmap ${target_args[*]}"
  started=$(date +%s)
  set +e
  timeout --signal=INT --kill-after=30 "$TARGET_TIMEOUT" "${cmd[@]}" >"$OUT/$name.log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - started))
  # sqlmap ends with "HTTP error codes detected during run:" and, on the next line,
  # "400 (Bad Request) - 1707 times, …"
  requests="$(grep -A1 'HTTP error codes detected during run:' "$OUT/$name.log" | tail -n1 || true)"
  verdict="clean"
  # "[INFO] … parameter '#1*' appears to be '…' injectable", the final "sqlmap identified the
  # following injection point(s)", or a heuristic that saw a DBMS error message in an answer
  if [[ "$name" == jwt-audit ]]; then
    if grep -q 'JWT confirmed' "$OUT/$name.log"; then
      verdict="JWT WEAKNESS"
    elif ! grep -q 'found a JSON Web Token' "$OUT/$name.log"; then
      verdict="INCOMPLETE (exit $rc; see $name.log)"
    fi
  elif grep -qE "identified the following injection point|appears to be .* injectable|might be injectable \(possible DBMS" "$OUT/$name.log"; then
    verdict="INJECTABLE"
  elif ((rc == 124)); then
    verdict="TIMEOUT after ${TARGET_TIMEOUT}s"
  elif ! grep -q 'do not appear to be injectable' "$OUT/$name.log"; then
    verdict="INCOMPLETE (exit $rc; see $name.log)"
  elif grep -qE '\b5[0-9]{2} \(' <<<"$requests"; then
    verdict="SERVER ERRORS: $requests"
  fi
  heuristics="$(grep -E 'heuristic .* might be|JWT candidate|no JWT weaknesses' "$OUT/$name.log" | grep -oE '\[(INFO|WARNING|CRITICAL)\] .*' | sort -u || true)"
  printf '%-14s %-10s %4ss  %s\n' "$name" "$verdict" "$elapsed" "HTTP errors: ${requests:-none}" | tee -a "$SUMMARY" >&2
  if [[ -n "$heuristics" ]]; then
    while IFS= read -r line; do printf '                 note: %s\n' "$line"; done <<<"$heuristics" |
      tee -a "$SUMMARY" >&2
  fi
  [[ "$verdict" == clean ]] || failures=$((failures + 1))
done
total=$(($(date +%s) - started_all))

if grep -q '"level":"ERROR"' "$LT_LOG"; then
  log "the server logged errors during the scan:"
  grep '"level":"ERROR"' "$LT_LOG" | head -n 20 >&2
  failures=$((failures + 1))
  echo "server logged errors (see server.log)" >>"$SUMMARY"
fi
cp "$LT_LOG" "$OUT/server.log"
echo "total ${total}s; $failures problem(s)" | tee -a "$SUMMARY" >&2
((failures == 0)) || die "sqlmap found problems; see $SUMMARY and $OUT/*.log"
log "nothing injectable; summary in $SUMMARY"
