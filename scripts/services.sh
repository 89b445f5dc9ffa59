#!/usr/bin/env bash
# Private MariaDB + Redis instances for local development, tests and CI.
#
#   scripts/services.sh up       start (or reuse) MariaDB and Redis, write .services/env
#   scripts/services.sh down     stop what `up` started (by PID), keep the data
#   scripts/services.sh status   show whether each service is running
#   scripts/services.sh env      print .services/env (export DATABASE_URL=... REDIS_URL=...)
#
# If DATABASE_URL and REDIS_URL are both already set, `up` and `down` do nothing:
# the caller brings its own services.
#
# Knobs (environment):
#   FM_DB_PORT       MariaDB TCP port        (default 3307)
#   FM_REDIS_PORT    Redis TCP port          (default 6380)
#   FM_SVC_TIMEOUT   seconds to wait for a service to start/stop (default 60)
#
# Layout (all under <repo>/.services/, git-ignored):
#   mariadb/        MariaDB data dir          mariadb.pid  mariadb.log (error log)
#   redis/          Redis data dir (AOF)      redis.pid    redis.log
#   env             export lines for DATABASE_URL / REDIS_URL
#   lock            serialises concurrent invocations
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$REPO/.services"

DB_PORT="${FM_DB_PORT:-3307}"
REDIS_PORT="${FM_REDIS_PORT:-6380}"
TIMEOUT="${FM_SVC_TIMEOUT:-60}"

DB_NAME=flashmart
DB_USER=flashmart
DB_PASS=flashmart

DB_DIR="$SVC/mariadb"
DB_PID="$SVC/mariadb.pid"
DB_SERVER_PID="$DB_DIR/mariadbd.pid" # written by mariadbd itself, late
DB_LOG="$SVC/mariadb.log"
REDIS_DIR="$SVC/redis"
REDIS_PID="$SVC/redis.pid" # written by redis-server itself (--pidfile)
REDIS_LOG="$SVC/redis.log"
ENV_FILE="$SVC/env"

# mariadbd lives in /usr/sbin, which is not on a normal user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

external() { [[ -n "${DATABASE_URL:-}" && -n "${REDIS_URL:-}" ]]; }

# ---------------------------------------------------------------- processes

# pid_alive PID NAME: PID exists, is not a zombie, and its command is NAME
# (guards against a stale pid file whose PID was reused by something else).
pid_alive() {
  local pid="$1" name="$2" comm
  proc_running "$pid" || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  [[ "$comm" == "$name" ]]
}

# proc_running PID: PID exists and is not a zombie. (This box's PID 1 does not
# reap orphans, so a stopped daemon can linger as <defunct>.)
proc_running() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # field 3 of /proc/PID/stat is the state; Z = zombie (exited, not reaped yet)
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

read_pid() { { tr -dc '0-9' <"$1"; } 2>/dev/null || true; }

# Prints the PID of our mariadbd if it is running, else nothing.
db_pid() {
  local pid f
  for f in "$DB_PID" "$DB_SERVER_PID"; do
    pid="$(read_pid "$f")"
    if [[ -n "$pid" ]] && pid_alive "$pid" mariadbd; then
      echo "$pid"
      return
    fi
  done
}

redis_pid() {
  local pid
  pid="$(read_pid "$REDIS_PID")"
  if [[ -n "$pid" ]] && pid_alive "$pid" redis-server; then echo "$pid"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

db_admin() { mariadb-admin --no-defaults --protocol=tcp -h127.0.0.1 -P"$DB_PORT" -uroot "$@"; }
db_sql() { mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$DB_PORT" -uroot "$@"; }
db_ping() { db_admin --connect-timeout=2 ping >/dev/null 2>&1; }
redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

# stop_pid PID NAME LABEL: SIGTERM, wait up to TIMEOUT s, then SIGKILL.
stop_pid() {
  local pid="$1" name="$2" label="$3" i
  log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    pid_alive "$pid" "$name" || return 0
    sleep 0.1
  done
  log "$label (pid $pid) did not exit after ${TIMEOUT}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" "$name" || return 0
    sleep 0.1
  done
  die "$label (pid $pid) is still alive"
}

# ---------------------------------------------------------------- install

ensure_installed() {
  local missing=() c
  for c in mariadbd mariadb-install-db mariadb mariadb-admin redis-server redis-cli; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    die "missing commands: ${missing[*]}. Install them with: sudo apt-get install -y mariadb-server redis-server
       (or point DATABASE_URL and REDIS_URL at existing servers)"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "missing commands: ${missing[*]} and no apt-get; install MariaDB and Redis server by hand"
  log "missing ${missing[*]}; installing mariadb-server redis-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update </dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends mariadb-server redis-server </dev/null
  for c in "${missing[@]}"; do
    command -v "$c" >/dev/null 2>&1 || die "still missing '$c' after apt-get install"
  done
}

# ---------------------------------------------------------------- MariaDB

db_socket() {
  # unix socket paths are limited to 107 bytes; deep checkouts fall back to /tmp
  local s="$DB_DIR/mariadbd.sock"
  if ((${#s} > 100)); then s="/tmp/flashmart-mariadb-$DB_PORT.sock"; fi
  echo "$s"
}

db_fail() {
  log "$1"
  if [[ -f "$DB_LOG" ]]; then
    echo "---- last 30 lines of $DB_LOG ----" >&2
    tail -n 30 "$DB_LOG" >&2
    echo "----" >&2
  fi
  exit 1
}

db_up() {
  local pid i user
  pid="$(db_pid)"
  if [[ -n "$pid" ]]; then
    # ours is running; it may still be starting up (another `up` in flight)
    for ((i = 0; i < TIMEOUT * 10; i++)); do
      if db_ping; then
        echo "$pid" >"$DB_PID"
        log "mariadb already running (pid $pid, port $DB_PORT)"
        return 0
      fi
      pid_alive "$pid" mariadbd || break
      sleep 0.1
    done
    db_fail "mariadb (pid $pid) is running but does not answer on 127.0.0.1:$DB_PORT (wrong FM_DB_PORT?)"
  fi
  rm -f "$DB_PID"

  if port_in_use "$DB_PORT"; then
    die "port 127.0.0.1:$DB_PORT is already in use by something we did not start; stop it or set FM_DB_PORT"
  fi

  user="$(id -un)"
  if [[ ! -d "$DB_DIR/mysql" ]]; then
    log "initialising mariadb data dir $DB_DIR"
    mkdir -p "$DB_DIR"
    if ! mariadb-install-db --no-defaults --datadir="$DB_DIR" --user="$user" \
      --auth-root-authentication-method=normal --skip-test-db \
      >>"$DB_LOG" 2>&1 </dev/null; then
      rm -rf "$DB_DIR"
      db_fail "mariadb-install-db failed"
    fi
  fi

  log "starting mariadb on 127.0.0.1:$DB_PORT"
  # A 1 GiB buffer pool and 512 MiB redo log instead of the 128/96 MiB defaults: under
  # settlement load the small defaults force checkpoint flush storms that stall every
  # fsync on the disk (Redis AOF included). innodb_flush_log_at_trx_commit stays 1.
  # setsid + nohup + redirected stdio: the server outlives this script and the
  # shell (or make) that called it, and holds none of their pipes. 9>&- closes
  # the lock fd so the server does not keep our flock forever.
  nohup setsid mariadbd --no-defaults \
    --datadir="$DB_DIR" \
    --user="$user" \
    --port="$DB_PORT" \
    --bind-address=127.0.0.1 \
    --socket="$(db_socket)" \
    --pid-file="$DB_SERVER_PID" \
    --log-error="$DB_LOG" \
    --skip-log-bin \
    --max-connections=2000 \
    --innodb-flush-log-at-trx-commit=1 \
    --innodb-buffer-pool-size=1G \
    --innodb-log-file-size=512M \
    --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_unicode_ci \
    --default-time-zone=+00:00 \
    </dev/null >>"$DB_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$DB_PID"

  for ((i = 0; i < TIMEOUT * 10; i++)); do
    db_ping && break
    # $pid may briefly still be nohup/setsid before they exec mariadbd
    if ! proc_running "$pid" && ! pid_alive "$(read_pid "$DB_SERVER_PID")" mariadbd; then
      rm -f "$DB_PID"
      db_fail "mariadbd exited during startup"
    fi
    sleep 0.1
  done
  if ! db_ping; then
    if pid_alive "$pid" mariadbd; then stop_pid "$pid" mariadbd mariadb; fi
    rm -f "$DB_PID"
    db_fail "mariadb did not answer on 127.0.0.1:$DB_PORT within ${TIMEOUT}s"
  fi
  # prefer the server's own pid (identical unless setsid had to fork)
  if pid_alive "$(read_pid "$DB_SERVER_PID")" mariadbd; then read_pid "$DB_SERVER_PID" >"$DB_PID"; fi
  log "mariadb up (pid $(read_pid "$DB_PID"))"

  # idempotent: database + password user reachable over TCP (sqlx can do
  # neither unix-socket nor ed25519 auth). Tests create/drop databases, so
  # the user gets everything.
  db_sql --batch <<SQL || db_fail "creating database/user failed"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('$DB_PASS');
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$DB_PASS');
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('$DB_PASS');
ALTER USER '$DB_USER'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$DB_PASS');
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

db_down() {
  local pid
  pid="$(db_pid)"
  if [[ -z "$pid" ]]; then
    log "mariadb not running"
  else
    stop_pid "$pid" mariadbd mariadb
    log "mariadb stopped"
  fi
  rm -f "$DB_PID"
}

# ---------------------------------------------------------------- Redis

redis_fail() {
  log "$1"
  if [[ -f "$REDIS_LOG" ]]; then
    echo "---- last 30 lines of $REDIS_LOG ----" >&2
    tail -n 30 "$REDIS_LOG" >&2
    echo "----" >&2
  fi
  exit 1
}

redis_up() {
  local pid i
  pid="$(redis_pid)"
  if [[ -n "$pid" ]]; then
    for ((i = 0; i < TIMEOUT * 10; i++)); do
      if redis_ping; then
        log "redis already running (pid $pid, port $REDIS_PORT)"
        return 0
      fi
      pid_alive "$pid" redis-server || break
      sleep 0.1
    done
    redis_fail "redis (pid $pid) is running but does not answer on 127.0.0.1:$REDIS_PORT (wrong FM_REDIS_PORT?)"
  fi
  rm -f "$REDIS_PID"

  if port_in_use "$REDIS_PORT"; then
    die "port 127.0.0.1:$REDIS_PORT is already in use by something we did not start; stop it or set FM_REDIS_PORT"
  fi

  mkdir -p "$REDIS_DIR"
  log "starting redis on 127.0.0.1:$REDIS_PORT"
  # --daemonize: redis forks, calls setsid() and writes --pidfile itself.
  # stdout/stderr also go to the log (config errors are printed before --logfile applies)
  # shellcheck disable=SC2094
  redis-server \
    --port "$REDIS_PORT" \
    --bind 127.0.0.1 \
    --daemonize yes \
    --dir "$REDIS_DIR" \
    --pidfile "$REDIS_PID" \
    --logfile "$REDIS_LOG" \
    --appendonly yes \
    --appendfsync always \
    --save '' \
    </dev/null >>"$REDIS_LOG" 2>&1 9>&- ||
    redis_fail "redis-server failed to start"

  for ((i = 0; i < TIMEOUT * 10; i++)); do
    if redis_ping && [[ -n "$(redis_pid)" ]]; then
      log "redis up (pid $(redis_pid))"
      return 0
    fi
    sleep 0.1
  done
  pid="$(redis_pid)"
  if [[ -n "$pid" ]]; then stop_pid "$pid" redis-server redis; fi
  redis_fail "redis did not answer on 127.0.0.1:$REDIS_PORT within ${TIMEOUT}s"
}

redis_down() {
  local pid
  pid="$(redis_pid)"
  if [[ -z "$pid" ]]; then
    log "redis not running"
  else
    # SIGTERM: redis fsyncs the AOF and exits cleanly
    stop_pid "$pid" redis-server redis
    log "redis stopped"
  fi
  rm -f "$REDIS_PID"
}

# ---------------------------------------------------------------- commands

write_env() {
  local tmp="$ENV_FILE.tmp.$$"
  cat >"$tmp" <<EOF
export DATABASE_URL=mysql://$DB_USER:$DB_PASS@127.0.0.1:$DB_PORT/$DB_NAME
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
EOF
  mv -f "$tmp" "$ENV_FILE"
}

lock() {
  mkdir -p "$SVC"
  exec 9>"$SVC/lock"
  flock -w $((TIMEOUT * 3)) 9 || die "another services.sh is holding $SVC/lock"
}

cmd_up() {
  if external; then
    log "DATABASE_URL and REDIS_URL are set; using those, not starting private services"
    return 0
  fi
  ensure_installed
  lock
  db_up
  redis_up
  write_env
  log "env written to ${ENV_FILE#"$REPO"/} (source it, or: eval \"\$(scripts/services.sh env)\")"
}

cmd_down() {
  if external; then
    log "DATABASE_URL and REDIS_URL are set; not stopping anything (unset them to stop the private services)"
    return 0
  fi
  [[ -d "$SVC" ]] || {
    log "nothing to stop (no .services/)"
    return 0
  }
  lock
  redis_down
  db_down
}

cmd_status() {
  local pid rc=0
  if external; then
    echo "external: DATABASE_URL=${DATABASE_URL%%://*}://... REDIS_URL=$REDIS_URL (up/down are no-ops)"
  fi
  pid="$(db_pid)"
  if [[ -n "$pid" ]]; then
    if db_ping; then
      echo "mariadb: running (pid $pid, 127.0.0.1:$DB_PORT, data ${DB_DIR#"$REPO"/})"
    else
      echo "mariadb: process $pid alive but not answering on 127.0.0.1:$DB_PORT"
      rc=1
    fi
  else
    echo "mariadb: not running"
    rc=1
  fi
  pid="$(redis_pid)"
  if [[ -n "$pid" ]]; then
    if redis_ping; then
      echo "redis:   running (pid $pid, 127.0.0.1:$REDIS_PORT, data ${REDIS_DIR#"$REPO"/})"
    else
      echo "redis:   process $pid alive but not answering on 127.0.0.1:$REDIS_PORT"
      rc=1
    fi
  else
    echo "redis:   not running"
    rc=1
  fi
  return "$rc"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no ${ENV_FILE#"$REPO"/}; run: scripts/services.sh up"
  cat "$ENV_FILE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
