#!/usr/bin/env bash
# Run a command with DATABASE_URL / REDIS_URL taken from .services/env
# (written by `scripts/services.sh up`), except that a variable already
# exported by the caller wins.
#
#   scripts/with-env.sh [--optional] CMD [ARGS...]
#
# Without --optional it fails if either variable is still unset afterwards.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="$REPO/.services/env"

optional=0
if [[ "${1:-}" == --optional ]]; then
  optional=1
  shift
fi
(($# > 0)) || {
  echo "usage: $0 [--optional] CMD [ARGS...]" >&2
  exit 2
}

caller_db="${DATABASE_URL:-}"
caller_redis="${REDIS_URL:-}"
if [[ -f "$ENV_FILE" && (-z "$caller_db" || -z "$caller_redis") ]]; then
  # shellcheck source=/dev/null
  source "$ENV_FILE"
fi
if [[ -n "$caller_db" ]]; then export DATABASE_URL="$caller_db"; fi
if [[ -n "$caller_redis" ]]; then export REDIS_URL="$caller_redis"; fi

# A local development signing key, generated once and kept under .services/ (git-ignored),
# unless the caller exported JWT_SECRET. Production must set its own.
if [[ -z "${JWT_SECRET:-}" ]]; then
  key_file="$REPO/.services/jwt_secret"
  if [[ ! -s "$key_file" ]]; then
    mkdir -p "$REPO/.services"
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$key_file")
  fi
  JWT_SECRET="$(cat "$key_file")"
  export JWT_SECRET
fi

if ((!optional)); then
  for v in DATABASE_URL REDIS_URL; do
    if [[ -z "${!v:-}" ]]; then
      echo "with-env: $v is not set and ${ENV_FILE#"$REPO"/} does not provide it; run: make services-up" >&2
      exit 1
    fi
  done
fi

exec "$@"
