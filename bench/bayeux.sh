#!/usr/bin/env bash
# Bayeux throughput, latency and memory of hero against the npm faye server, measured
# in one run with the same load generator (../shared/tools/bayeux-bench), loopback only.
#
#   bench/bayeux.sh            # fan-out 1000x1000, pairs 50, idle clients 10000 and 50000
#   IDLE="10000 19000" bench/bayeux.sh   # other idle-client counts
#   QUICK=1 bench/bayeux.sh    # smaller scenarios, for a smoke run
#
# Also measures bench/bayeux-floor (the least work a fan-out server can do, with and
# without a 1 ms write delay) for fan-out and pairs: what the generator allows here.
#
#   ROUNDS=3 bench/bayeux.sh   # repeat fan-out and pairs; the table takes the medians
#
# Prints one JSON line per scenario (also in target/bench/bayeux.jsonl) and a table of
# ratios to faye.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tool=${BAYEUX_BENCH_DIR:-$root/../shared/tools/bayeux-bench}  # override from a worktree
out=$root/target/bench; mkdir -p "$out"; results=$out/bayeux.jsonl; : > "$results"
run_id=$(date +%s)

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p hero -p bayeux-floor
cargo build --release -q --manifest-path "$tool/Cargo.toml" --target-dir "$out/bayeux-bench-target"
bench=$out/bayeux-bench-target/release/bayeux-bench
[ -d bench/bayeux/node_modules ] || (cd bench/bayeux && npm ci --no-audit --no-fund)

if [ -n "${QUICK:-}" ]; then
  fanout=(-n 200 -m 200 --window 10); pairs=(-k 20 --duration-s 3 --window 10); idle=(1000)
else
  fanout=(-n 1000 -m 1000 --window 10); pairs=(-k 50 --duration-s 10 --window 10)
  read -r -a idle <<<"${IDLE:-10000 50000}"
fi

pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }; pid=; }
trap stop EXIT

# start LABEL CMD...: runs a server, waits for its "listening on" line, sets $pid and $url.
start() {
  local label=$1; shift
  local log=$out/$label.log
  "$@" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "$label did not start"; cat "$log"; exit 1; }
  url=ws://127.0.0.1:$port/faye
}

scenario() {  # LABEL SCENARIO ARGS...
  local label=$1; shift
  "$bench" --url "$url" --label "$label" --run "$run_id" --server-pid "$pid" --out "$results" "$@" \
    | tail -n 1
}

start_server() {  # LABEL
  case $1 in
    hero) start hero target/release/hero --bind 127.0.0.1 --port 0 --public /nonexistent ;;
    faye) start faye node bench/bayeux/faye-server.mjs ;;
    floor) start floor target/release/bayeux-floor ;;
    floor-1ms) start floor-1ms target/release/bayeux-floor --write-delay-us 1000 ;;
  esac
}

for _ in $(seq "${ROUNDS:-1}"); do
  for server in hero faye floor floor-1ms; do
    start_server $server
    scenario $server fanout "${fanout[@]}"
    stop
  done
  for server in hero faye floor; do
    start_server $server
    scenario $server pairs "${pairs[@]}"
    stop
  done
done
# Each idle client takes a file descriptor in the server and one in the generator: a
# count over the limit is measured at the largest that fits, and says so.
fd_room=$(( $(ulimit -n) - 500 ))
for server in hero faye; do
  for c in "${idle[@]}"; do
    if [ "$c" -gt "$fd_room" ]; then
      echo "idle $c: over the open-file limit here ($(ulimit -n), hard $(ulimit -Hn)); measuring $fd_room clients" >&2
      c=$fd_room
    fi
    start_server $server
    scenario $server connections -c "$c"
    stop
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = ["hero", "faye", "floor", "floor-1ms"]
def per_delivery(r, cpu):
    return cpu * 1e6 / r["delivered"] if r.get("delivered") else None
metrics = {
    "msgs_per_s": lambda r: r.get("msgs_per_s"),
    "p99_us": lambda r: r.get("p99_us"),
    # Server CPU from /proc over the run (setup included), per delivered message: it
    # does not depend on how fast the generator is.
    "server_cpu_us_per_delivery": lambda r: per_delivery(r, (r.get("server") or {}).get("cpu_s", 0)),
    "generator_cpu_us_per_delivery": lambda r: per_delivery(r, r.get("client_cpu_s", 0)),
    "per_conn_bytes": lambda r: r.get("per_conn_bytes"),
}
def values(label, scenario, metric, clients=None):
    return [v for r in rows if r.get("label") == label and r.get("scenario") == scenario
            and (clients is None or r["params"].get("clients") == clients)
            for v in [metrics[metric](r)] if v is not None]
def ok(label, scenario):
    return all(r.get("ok", True) for r in rows if r.get("label") == label and r.get("scenario") == scenario)
def fmt(v):
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
def cell(label, scenario, metric, clients=None):
    vs, fs = values(label, scenario, metric, clients), values("faye", scenario, metric, clients)
    if not vs:
        return "-"
    v = statistics.median(vs)
    text = fmt(v) + (f" [{fmt(min(vs))}-{fmt(max(vs))}]" if len(vs) > 1 else "")
    text += "" if ok(label, scenario) else " (NOT OK)"
    return text if label == "faye" or not fs else f"{text} ({v / statistics.median(fs):.2f}x)"
print()
print("| scenario | metric | " + " | ".join(labels) + " |")
print("|---|---|" + "---|" * len(labels))
for scenario in ["fanout", "pairs"]:
    for metric in ["msgs_per_s", "p99_us", "server_cpu_us_per_delivery", "generator_cpu_us_per_delivery"]:
        print(f"| {scenario} | {metric} | " + " | ".join(cell(l, scenario, metric) for l in labels) + " |")
for c in sorted({r["params"]["clients"] for r in rows if r.get("scenario") == "connections"}):
    print(f"| idle {c} | server RSS bytes/client | " + " | ".join(cell(l, "connections", "per_conn_bytes", c) for l in labels) + " |")
print("(median [min-max] over rounds; ratio of medians to faye in brackets)")
PY
