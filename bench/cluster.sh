#!/usr/bin/env bash
# Bayeux cluster benchmark: 3 hero nodes on one Redis (hero --redis) against 3 npm faye
# 1.4.3 nodes with the faye-redis 0.2.0 engine on one Redis, measured in one run with the
# same load generator (../shared/tools/bayeux-bench), loopback only. Every client of a
# scenario is spread over the three nodes and every message crosses nodes (see the
# generator's README): the fan-out publisher is on node 3, pair i's publisher on the node
# after its subscriber's.
#
#   bench/cluster.sh                 # fan-out 1000x1000, pairs 50 for 10 s, fan-out 100x1000
#   FANOUT_N=100 FANOUT_M=100 PAIRS_K=10 DURATION=3 FANOUT_SERIES= bench/cluster.sh   # smoke run
#   ROUNDS=3 bench/cluster.sh        # repeat every scenario; the table takes medians [min–max]
#
# Knobs (environment):
#   FANOUT_N=1000 FANOUT_M=1000      main fan-out: subscribers x messages (window 10)
#   FANOUT_SERIES="100"              more fan-out subscriber counts (same M), for Redis
#                                    commands per publish against the number of subscribers
#   PAIRS_K=50 DURATION=10           pairs scenario (window 10), seconds of publishing
#   FANOUT_MAX_S=120                 a fan-out stops publishing after this long (reported as
#                                    capped: the table says so); DRAIN_S=20 for the last deliveries
#   ROUNDS=1  SYSTEMS="hero faye-redis"  BUILD=1 (0: use the binaries as they are)
#   HERO_BIN=target/release/hero  NODE_WORKERS=1 (runtime workers per hero node)
#
# Redis: one redis-server of our own on a free port (no persistence), FLUSHALL + CONFIG
# RESETSTAT before each run; the nodes are started afresh for every run, each
# system/scenario/round with its own namespace. INFO commandstats is sampled every 20 ms
# around each bayeux-bench run (bench/cluster/redis_stats.py; it subtracts its own INFO
# calls). Redis commands per publish: "whole run" (bayeux-bench's start to exit: client
# handshakes, subscribes and disconnects included) and "steady" (from 20% to 90% of the way
# from the first publish to the last: the publishes alone, counted by hero's XADD and
# faye-redis's SUNION, one per publish each). Lua scripts' commands count too.
#
# Prints one line per run, then the table; the enriched JSON lines are in
# target/bench/cluster.jsonl, node logs and samples in target/bench/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tool=${BAYEUX_BENCH_DIR:-$root/../shared/tools/bayeux-bench}
bench_target=${BAYEUX_BENCH_TARGET:-/tmp/bayeux-bench-target}
out=$root/target/bench; logs=$out/cluster; rm -rf "$logs"; mkdir -p "$logs"
results=$out/cluster.jsonl; : > "$results"
stats="python3 $root/bench/cluster/redis_stats.py"
run_id=$(date +%s)

FANOUT_N=${FANOUT_N:-1000}; FANOUT_M=${FANOUT_M:-1000}; FANOUT_SERIES=${FANOUT_SERIES-100}
PAIRS_K=${PAIRS_K:-50}; DURATION=${DURATION:-10}; FANOUT_MAX_S=${FANOUT_MAX_S:-120}
DRAIN_S=${DRAIN_S:-20}; ROUNDS=${ROUNDS:-1}; SYSTEMS=${SYSTEMS:-hero faye-redis}
HERO_BIN=${HERO_BIN:-target/release/hero}; BUILD=${BUILD:-1}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$BUILD" = 1 ]; then
  case " $SYSTEMS " in *" hero "*) cargo build --release -q -p hero ;; esac
  cargo build --release -q --manifest-path "$tool/Cargo.toml" --target-dir "$bench_target"
fi
bench=$bench_target/release/bayeux-bench
[ -x "$bench" ] || { echo "no $bench (BUILD=1 builds it)"; exit 1; }
case " $SYSTEMS " in *" faye-redis "*)
  [ -d bench/bayeux/node_modules ] || (cd bench/bayeux && npm ci --no-audit --no-fund) ;;
esac

# --- processes we start (stopped by pid on exit) ---------------------------------------
redis_pid=; node_pids=(); sampler_pid=
stop_nodes() {
  local p
  for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  node_pids=()
}
stop_sampler() {
  [ -n "$sampler_pid" ] || return 0
  kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=
}
cleanup() {
  stop_sampler; stop_nodes
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  fi
  rm -rf "$redis_dir"
}
redis_dir=$(mktemp -d /tmp/hero-cluster-redis.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM

rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# --- Redis ------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$redis_dir" \
  --protected-mode no --maxclients 10000 > "$logs/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do rcli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
rcli ping | grep -q PONG || { echo "redis-server did not start"; cat "$logs/redis.log"; exit 1; }
echo "redis-server $(redis-server --version | grep -o 'v=[^ ]*') pid $redis_pid port $redis_port"

# start_node LOG CMD...: runs a node, waits (15 s) for its "listening on" line; appends its
# pid to node_pids and its URL to urls. Returns 1 when it did not start.
urls=()
start_node() {
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  node_pids+=($!)
  local port=
  for _ in $(seq 150); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 "${node_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || return 1
  urls+=("ws://127.0.0.1:$port/faye")
}

# start_cluster SYSTEM NAMESPACE LOGPREFIX: FLUSHALL + RESETSTAT, then 3 nodes.
start_cluster() {
  local system=$1 ns=$2 prefix=$3 i
  rcli flushall > /dev/null; rcli config resetstat > /dev/null
  urls=()
  for i in 1 2 3; do
    case $system in
      # Three nodes share two cores here: one runtime worker each (TOKIO_WORKER_THREADS,
      # NODE_WORKERS to change it), as each faye node is one thread. With one worker per
      # core each, six workers and the generator fight over two cores.
      hero) start_node "$prefix-node$i.log" env HERO_CLUSTER__NAMESPACE="$ns" \
              TOKIO_WORKER_THREADS="${NODE_WORKERS:-1}" "$HERO_BIN" \
              --bind 127.0.0.1 --port 0 --public /nonexistent --redis "redis://127.0.0.1:$redis_port" ;;
      faye-redis) start_node "$prefix-node$i.log" env REDIS_PORT="$redis_port" NAMESPACE="$ns" PORT=0 \
              node bench/bayeux/faye-redis-server.mjs ;;
    esac || { echo "  $system node $i did not start; its log ($prefix-node$i.log):"; tail -n 20 "$prefix-node$i.log" | sed 's/^/    /'; return 1; }
  done
}

# run_case CASE ROUND SYSTEM SCENARIO ARGS...: fresh Redis state, 3 fresh nodes, one
# bayeux-bench run with INFO commandstats sampled around it.
run_case() {
  local case=$1 round=$2 system=$3; shift 3
  local tag; tag="$system-${case// /-}-r$round"
  local prefix=$logs/$tag ns="bench-$run_id-$tag"
  local line=$logs/$tag.json samples=$logs/$tag.samples.jsonl t0=0
  : > "$line"; : > "$samples"
  if start_cluster "$system" "$ns" "$prefix"; then
    local args=() u p
    for u in "${urls[@]}"; do args+=(--url "$u"); done
    args+=(--server-pid "${node_pids[0]}")
    for p in "${node_pids[@]:1}"; do args+=(--aux-pid "$p"); done
    args+=(--aux-pid "$redis_pid")
    $stats sample "$redis_port" "$samples" & sampler_pid=$!
    for _ in $(seq 100); do [ -s "$samples" ] && break; sleep 0.05; done  # sampling before we start
    sleep 0.1
    t0=$(date +%s.%N)
    # Bounded: setup (60 s) + publishing + drain + teardown (20 s) + slack.
    local bound=$(( 60 + ${BOUND_PUBLISH_S:-0} + DRAIN_S + 40 ))
    timeout -k 5 "$bound" "$bench" "${args[@]}" --label "$system" --run "$run_id" \
      --drain-s "$DRAIN_S" "$@" > "$line" 2> "$prefix-bench.err" || true
    sleep 0.1
    stop_sampler
    [ -s "$line" ] || echo '{"ok": false, "problems": ["bayeux-bench gave no result (timed out or crashed; see '"$prefix"'-bench.err)"]}' > "$line"
  else
    echo '{"ok": false, "problems": ["a node did not start (see '"$prefix"'-node*.log)"]}' > "$line"
  fi
  stop_nodes
  $stats enrich "$line" "$samples" "$t0" "$case" "$system" "$round" "$results" "$prefix"-node*.log
}

echo "bayeux-bench $("$bench" --version | awk '{print $2}'); systems: $SYSTEMS; rounds: $ROUNDS"
echo "fan-out ${FANOUT_N}x${FANOUT_M} (+ subscribers: ${FANOUT_SERIES:-none}), pairs $PAIRS_K for ${DURATION}s, window 10"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  cases=("fanout ${FANOUT_N}x${FANOUT_M}" "pairs $PAIRS_K")
  for n in $FANOUT_SERIES; do [ "$n" = "$FANOUT_N" ] || cases+=("fanout ${n}x${FANOUT_M}"); done
  for case in "${cases[@]}"; do
    for system in $SYSTEMS; do
      case $case in
        fanout*)
          n=${case#fanout }; n=${n%x*}
          BOUND_PUBLISH_S=$FANOUT_MAX_S run_case "$case" "$round" "$system" \
            fanout -n "$n" -m "$FANOUT_M" --window 10 --max-publish-s "$FANOUT_MAX_S" ;;
        pairs*)
          BOUND_PUBLISH_S=$DURATION run_case "$case" "$round" "$system" \
            pairs -k "$PAIRS_K" --duration-s "$DURATION" --window 10 ;;
      esac
    done
  done
done

$stats report "$results"
