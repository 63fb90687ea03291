#!/usr/bin/env bash
# The same trivial action (`ping` of tests/fixtures/test-plugin), static vs dynamic:
#   1. in-process: N calls through the host's Invoke (and the bare boundary);
#   2. over HTTP on loopback with wrk (bounded: DURATION seconds, CONNS connections).
# Usage: bench/run.sh [N] [DURATION] [CONNS]     (release builds; ~1 minute of load)
#        ROUNDS=5 bench/run.sh ...               (HTTP rounds, alternating; default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
DURATION=${2:-10}
CONNS=${3:-16}
ROUNDS=${ROUNDS:-3}

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release -q -p hero -p hero-bench -p hero-test-plugin
LIB=target/release/libhero_test_plugin.so

echo "== in-process ($N calls each)"
target/release/hero-bench "$LIB" "$N"

dir=$(mktemp -d)
trap 'kill $pids 2>/dev/null || true; rm -rf "$dir"' EXIT
cp "$LIB" "$dir/"
mkdir -p "$dir/none"
pids=""

# start LOG BIN ARGS...: waits for the listening line and sets $port. Not called in a
# command substitution: that subshell would lose the pid the EXIT trap must kill.
start() {
  local log=$1; shift
  RUST_LOG=warn,hero::cli=info "$@" --bind 127.0.0.1 --port 0 >"$log" 2>&1 &
  pids="$pids $!"
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && return
    sleep 0.1
  done
  echo "server did not start: $(cat "$log")" >&2; exit 1
}

start "$dir/static.log" target/release/hero-bench-server --plugins "$dir/none"; sport=$port
start "$dir/dynamic.log" target/release/hero --plugins "$dir"; dport=$port
curl -sf "http://127.0.0.1:$sport/api/ping" | grep -q pong
curl -sf "http://127.0.0.1:$dport/api/ping" | grep -q pong

# cpu PID: the process's user+system CPU so far, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
spid=$(echo $pids | awk '{print $1}'); dpid=$(echo $pids | awk '{print $2}')
ticks=$(getconf CLK_TCK)

# ROUNDS rounds, the order alternating, so drift on a shared machine favours neither.
echo "== HTTP: wrk -t2 -c$CONNS -d${DURATION}s /api/ping, $ROUNDS rounds (req/s, server CPU per request)"
ratios=()
for round in $(seq "$ROUNDS"); do
  order="static dynamic"; [ $((round % 2)) -eq 0 ] && order="dynamic static"
  declare -A rps=() us=()
  for kind in $order; do
    port=$sport; pid=$spid
    [ $kind = dynamic ] && { port=$dport; pid=$dpid; }
    before=$(cpu "$pid")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/api/ping")
    after=$(cpu "$pid")
    requests=$(echo "$out" | grep -o '[0-9]* requests in' | grep -o '^[0-9]*')
    rps[$kind]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    us[$kind]=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
  done
  ratio=$(awk -v d="${rps[dynamic]}" -v s="${rps[static]}" 'BEGIN {printf "%.3f", d / s}')
  ratios+=("$ratio")
  echo "round $round: static ${rps[static]} req/s ${us[static]} us/req, dynamic ${rps[dynamic]} req/s ${us[dynamic]} us/req, dynamic/static $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{r[NR] = $1} END {printf "dynamic/static req/s: median %s, range %s-%s over %d rounds\n", r[int((NR + 1) / 2)], r[1], r[NR], NR}'
