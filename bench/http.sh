#!/usr/bin/env bash
# Requests/s of `GET /api/randomNumber`: Hero (release) against a bare warp handler that
# sends the same JSON envelope (bench/bare-warp), same load generator, same run.
#
#   bench/http.sh                       # 2 threads, 64 connections, 3 rounds of 10 s each
#   THREADS=2 CONNECTIONS=64 DURATION=10s ROUNDS=5 bench/http.sh
#
# The rounds alternate hero and the baseline; the table gives medians and [min-max] of
# requests/s and of server CPU per request (from /proc, independent of wrk's own speed),
# and the ratio per round, so a burst of load from a neighbour skews one round only.
# Loopback only. Installs wrk from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}

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

# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure PID PORT: prints "requests/s server-CPU-us-per-request" of one measured run.
measure() {
  local pid=$1 port=$2 out before after
  # A short warm-up, then the measured run.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/api/randomNumber" >/dev/null
  before=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/api/randomNumber")
  after=$(cpu_ticks "$pid")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx responses from port $port:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    END { printf "%s %.2f\n", rps, ticks * 1e6 / hz / n }' <<<"$out"
}

# Hero logs nothing per request at `info`: the log level does not skew the figure.
start hero_port env RUST_LOG=info NO_COLOR=1 target/release/hero --bind 127.0.0.1 --port 0
start bare_port target/release/bare-warp 0

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /api/randomNumber, $ROUNDS rounds alternating ($(nproc) cores)"
rounds=$tmp/rounds
for round in $(seq "$ROUNDS"); do
  read -r h hc <<<"$(measure "${pids[0]}" "$hero_port")"
  read -r b bc <<<"$(measure "${pids[1]}" "$bare_port")"
  echo "round $round: hero $h req/s ($hc us CPU/req), bare warp $b req/s ($bc us CPU/req)"
  echo "$h $hc $b $bc" >>"$rounds"
done

# Medians and [min-max] over the rounds; the ratio is taken per round (hero and the
# baseline measured back to back), then its median.
python3 - "$rounds" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
def cell(xs, fmt):
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"
h, hc, b, bc = (list(c) for c in zip(*rows))
ratio = [x / y for x, y in zip(h, b)]
cpu_ratio = [x / y for x, y in zip(hc, bc)]
print()
print("| | requests/s | server CPU us/request |")
print("|---|---|---|")
print(f"| hero | {cell(h, '{:,.0f}')} | {cell(hc, '{:.2f}')} |")
print(f"| bare warp | {cell(b, '{:,.0f}')} | {cell(bc, '{:.2f}')} |")
print(f"| hero / bare | {cell(ratio, '{:.3f}')} | {cell(cpu_ratio, '{:.2f}')} |")
print(f"\nmedian ratio {statistics.median(ratio):.3f} (target >= 0.95), rounds: "
      + " ".join(f"{r:.3f}" for r in ratio))
EOF
