#!/usr/bin/env bash
# A private Redis Cluster on loopback: 3 primaries + 3 replicas, AOF always on every node.
#
#   scripts/cluster.sh up       start (or reuse) the six nodes and create the cluster
#   scripts/cluster.sh down     stop the nodes (by PID) and delete their data
#   scripts/cluster.sh status   CLUSTER NODES as one node sees it
#   scripts/cluster.sh url      print the REDIS_URL that selects this cluster
#
# Knobs (environment):
#   FM_CLUSTER_PORT   first node's port; the nodes use PORT .. PORT+5 (default 7101)
#   FM_CLUSTER_DIR    where the nodes keep data, logs and PIDs (default <repo>/.services/cluster-PORT)
#   FM_SVC_TIMEOUT    seconds to wait for the cluster to form (default 60)
#
# `up` on a cluster whose nodes all answer and report cluster_state:ok does nothing, so a node
# that a test killed with `kill -9` comes back (as a replica of the node promoted in its place)
# when `up` runs again.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${FM_CLUSTER_PORT:-7101}"
DIR="${FM_CLUSTER_DIR:-$REPO/.services/cluster-$BASE}"
TIMEOUT="${FM_SVC_TIMEOUT:-60}"
PORTS=("$BASE" $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 4)) $((BASE + 5)))

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
  printf 'cluster: ERROR: %s\n' "$*" >&2
  exit 1
}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null; }
answers() { [[ "$(cli "$1" ping)" == PONG ]]; }
state_ok() { cli "$1" cluster info | tr -d '\r' | grep -qx 'cluster_state:ok'; }
node_pid() { [[ -s "$DIR/$1/redis.pid" ]] && cat "$DIR/$1/redis.pid"; }

url() { # fred's form: the first node, then the others as ?node=…&node=…
  local out="redis-cluster://127.0.0.1:${PORTS[0]}" sep='?' p
  for p in "${PORTS[@]:1}"; do
    out+="${sep}node=127.0.0.1:$p"
    sep='&'
  done
  echo "$out"
}

start_node() {
  local port="$1"
  mkdir -p "$DIR/$port"
  # nodes.conf survives a kill -9, so a restarted node rejoins with its old identity.
  redis-server \
    --port "$port" \
    --bind 127.0.0.1 \
    --daemonize yes \
    --dir "$DIR/$port" \
    --pidfile "$DIR/$port/redis.pid" \
    --logfile "$DIR/$port/redis.log" \
    --cluster-enabled yes \
    --cluster-config-file nodes.conf \
    --cluster-node-timeout 2000 \
    --appendonly yes \
    --appendfsync always \
    --repl-diskless-sync-delay 0 \
    --save '' \
    </dev/null >>"$DIR/$port/redis.log" 2>&1 || die "redis-server on port $port failed to start (log: $DIR/$port/redis.log)"
}

wait_until() { # wait_until WHAT CMD...: poll every 0.1 s for TIMEOUT s
  local what="$1" i
  shift
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "timed out waiting for $what"
}

all_ok() {
  local p
  for p in "${PORTS[@]}"; do state_ok "$p" || return 1; done
}

up() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    die "redis-server and redis-cli are needed (apt-get install redis-server, or run scripts/services.sh up)"
  local p fresh=1
  for p in "${PORTS[@]}"; do
    if [[ -s "$DIR/$p/nodes.conf" ]]; then
      fresh=0
    elif answers "$p"; then
      die "port $p answers but is not a node of $DIR (another cluster or server); set FM_CLUSTER_PORT"
    fi
    if answers "$p"; then continue; fi
    start_node "$p"
  done
  for p in "${PORTS[@]}"; do wait_until "node $p to answer" answers "$p"; done
  if ((fresh)); then
    log "creating the cluster on ports ${PORTS[*]}"
    local hosts=()
    for p in "${PORTS[@]}"; do hosts+=("127.0.0.1:$p"); done
    timeout "$TIMEOUT" redis-cli --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes \
      >"$DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed (log: $DIR/create.log)"
  fi
  wait_until "cluster_state:ok on every node" all_ok
  # Every primary has its replica again (a restarted node rejoins as one).
  wait_until "an online replica for every primary" replicas_ok
  log "cluster up: $(url)"
}

replicas_ok() {
  local p n=0
  for p in "${PORTS[@]}"; do
    if cli "$p" role | head -1 | grep -qx master; then
      # online: the initial sync is done and the replica acknowledges offsets (WAIT counts it)
      cli "$p" info replication | tr -d '\r' | grep -q '^slave[0-9]*:.*state=online' || return 1
      n=$((n + 1))
    fi
  done
  ((n == 3))
}

down() {
  local p pid
  for p in "${PORTS[@]}"; do
    pid="$(node_pid "$p" || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$DIR"
  log "cluster on ports ${PORTS[*]} stopped and removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) cli "$BASE" cluster nodes ;;
  url) url ;;
  *)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
