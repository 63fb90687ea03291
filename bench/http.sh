#!/usr/bin/env bash
# Requests/s of `GET /api/randomNumber`: Hero (release) against a bare warp handler that
# sends the same JSON envelope (bench/bare-warp), same load generator, same run.
#
#   bench/http.sh                       # 2 threads, 64 connections, 2 rounds of 10 s each
#   THREADS=2 CONNECTIONS=64 DURATION=10s ROUNDS=2 bench/http.sh
#
# The rounds alternate hero and the baseline and the best round of each counts, so a
# burst of load from a neighbour on a shared machine skews the ratio less.
# Loopback only. Installs wrk from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -q -p hero --bin hero
cargo build --release -q -p bare-warp

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start VAR CMD...: runs CMD (which logs `listening on http://ADDR:PORT`) in the
# background and sets VAR to its port.
start() {
  local var=$1 log="$tmp/$1.log"
  shift
  "$@" >"$log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 200); do
    local port
    port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    if [ -n "$port" ]; then printf -v "$var" '%s' "$port"; return; fi
    sleep 0.05
  done
  echo "did not start: $*" >&2
  cat "$log" >&2
  exit 1
}

# measure PORT: prints the requests/s of one measured run.
measure() {
  local port=$1 out
  # A short warm-up, then the measured run.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/api/randomNumber" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/api/randomNumber")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx responses from port $port:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '/Requests\/sec/ { print $2 }' <<<"$out"
}

# Hero logs nothing per request at `info`: the log level does not skew the figure.
start hero_port env RUST_LOG=info NO_COLOR=1 target/release/hero --bind 127.0.0.1 --port 0
start bare_port target/release/bare-warp 0

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /api/randomNumber, best of $ROUNDS rounds ($(nproc) cores)"
hero_rps=0
bare_rps=0
for round in $(seq "$ROUNDS"); do
  h=$(measure "$hero_port")
  b=$(measure "$bare_port")
  echo "round $round: hero $h req/s, bare warp $b req/s"
  hero_rps=$(awk -v a="$hero_rps" -v b="$h" 'BEGIN { print (b > a ? b : a) }')
  bare_rps=$(awk -v a="$bare_rps" -v b="$b" 'BEGIN { print (b > a ? b : a) }')
done
echo "hero:      $hero_rps requests/s"
echo "bare warp: $bare_rps requests/s"
awk -v h="$hero_rps" -v b="$bare_rps" 'BEGIN { printf "ratio:     %.2f (target >= 0.80)\n", h / b }'
