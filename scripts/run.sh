#!/usr/bin/env bash
# `make run`: private services, migrations, demo data, a local data-platform receiver, then the
# API on BIND_ADDR (default 127.0.0.1:8080). Ctrl-C stops the API and the receiver.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WITH_ENV=(bash "$REPO/scripts/with-env.sh")

bash scripts/services.sh up
cargo build --release --bin flashmart
BIN="$REPO/target/release/flashmart"
"${WITH_ENV[@]}" "$BIN" migrate
"${WITH_ENV[@]}" "$BIN" seed --demo

# Paid orders are delivered to EXTERNAL_PLATFORM_URL; without one of your own, a local receiver
# (`flashmart dev-platform`) shows them arriving.
if [[ -z "${EXTERNAL_PLATFORM_URL:-}" ]]; then
  secret_file="$REPO/.services/platform_secret"
  [[ -s "$secret_file" ]] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$secret_file")
  export EXTERNAL_PLATFORM_SECRET
  EXTERNAL_PLATFORM_SECRET="$(cat "$secret_file")"
  export EXTERNAL_PLATFORM_URL="http://127.0.0.1:9999/events"
  "$BIN" dev-platform --bind 127.0.0.1:9999 &
  platform_pid=$!
  trap 'kill "$platform_pid" 2>/dev/null || true' EXIT
fi

bind="${BIND_ADDR:-127.0.0.1:8080}"
cat <<EOT

flashmart is starting on http://$bind  (metrics: http://${METRICS_ADDR:-127.0.0.1:9898}/metrics)
Log in as a demo user and call the API, e.g.:

  TOKEN=\$(curl -s http://$bind/api/v1/auth/login -H 'content-type: application/json' \\
    -d '{"email":"alice@example.com","password":"flashmart-demo"}' \\
    | sed 's/.*"accessToken":"\\([^"]*\\)".*/\\1/')
  curl -s http://$bind/api/v1/products -H "authorization: Bearer \$TOKEN"

Paid orders are delivered to $EXTERNAL_PLATFORM_URL (GET it to list what arrived).
EOT
"${WITH_ENV[@]}" "$BIN" serve
