#!/usr/bin/env bash
# The same trivial action (`ping` of tests/fixtures/test-plugin), static vs dynamic:
#   1. in-process: N calls through the host's Invoke (and the bare boundary);
#   2. over HTTP on loopback with wrk (bounded: DURATION seconds, CONNS connections).
# Usage: bench/run.sh [N] [DURATION] [CONNS]     (release builds; ~1 minute of load)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
DURATION=${2:-10}
CONNS=${3:-16}

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

for kind in static dynamic; do
  port=$sport; [ $kind = dynamic ] && port=$dport
  echo "== HTTP $kind: wrk -t2 -c$CONNS -d${DURATION}s http://127.0.0.1:$port/api/ping"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/api/ping" | grep -E 'Requests/sec|Latency|50%|99%'
done
