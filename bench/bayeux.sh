#!/usr/bin/env bash
# Bayeux throughput, latency and memory of hero against the npm faye server, measured
# in one run with the same load generator (../shared/tools/bayeux-bench), loopback only.
#
#   bench/bayeux.sh            # fan-out 1000x1000, pairs 50, idle clients 5000 and 10000
#   QUICK=1 bench/bayeux.sh    # smaller scenarios, for a smoke run
#
# Prints one JSON line per scenario (also in target/bench/bayeux.jsonl) and a table of
# hero/faye ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tool=${BAYEUX_BENCH_DIR:-$root/../shared/tools/bayeux-bench}  # override from a worktree
out=$root/target/bench; mkdir -p "$out"; results=$out/bayeux.jsonl; : > "$results"
run_id=$(date +%s)

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p hero
cargo build --release -q --manifest-path "$tool/Cargo.toml" --target-dir "$out/bayeux-bench-target"
bench=$out/bayeux-bench-target/release/bayeux-bench
[ -d tests/js/node_modules ] || (cd tests/js && npm ci --no-audit --no-fund)

if [ -n "${QUICK:-}" ]; then
  fanout=(-n 200 -m 200 --window 10); pairs=(-k 20 --duration-s 3 --window 10); idle=(1000)
else
  fanout=(-n 1000 -m 1000 --window 10); pairs=(-k 50 --duration-s 10 --window 10); idle=(5000 10000)
fi

pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
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

for server in hero faye; do
  for scenario_args in "fanout ${fanout[*]}" "pairs ${pairs[*]}"; do
    if [ $server = hero ]; then start hero target/release/hero --bind 127.0.0.1 --port 0 --public /nonexistent
    else start faye node bench/bayeux/faye-server.mjs; fi
    # shellcheck disable=SC2086
    scenario $server $scenario_args
    stop
  done
  for c in "${idle[@]}"; do
    if [ $server = hero ]; then start hero target/release/hero --bind 127.0.0.1 --port 0 --public /nonexistent
    else start faye node bench/bayeux/faye-server.mjs; fi
    scenario $server connections -c "$c"
    stop
  done
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(label, scenario, **match):
    for r in rows:
        if r.get("label") == label and r.get("scenario") == scenario and all(r.get(k) == v for k, v in match.items()):
            return r
def fmt(x, unit=""):
    return "-" if x is None else (f"{x:,.0f}{unit}" if isinstance(x, (int, float)) else str(x))
print()
print("| scenario | metric | hero | faye | hero/faye |")
print("|---|---|---|---|---|")
for scenario, metric in [("fanout", "msgs_per_s"), ("fanout", "p99_us"), ("pairs", "msgs_per_s"), ("pairs", "p99_us")]:
    h, f = pick("hero", scenario), pick("faye", scenario)
    hv, fv = (h or {}).get(metric), (f or {}).get(metric)
    ratio = f"{hv / fv:.2f}x" if hv and fv else "-"
    ok = "" if (h or {}).get("ok", True) and (f or {}).get("ok", True) else " (NOT OK)"
    print(f"| {scenario} | {metric} | {fmt(hv)} | {fmt(fv)} | {ratio}{ok} |")
conns = sorted({r["params"]["clients"] for r in rows if r.get("scenario") == "connections"})
for c in conns:
    h = pick("hero", "connections", params=next(r["params"] for r in rows if r.get("scenario") == "connections" and r["params"]["clients"] == c))
    f = pick("faye", "connections", params=next(r["params"] for r in rows if r.get("scenario") == "connections" and r["params"]["clients"] == c))
    hv, fv = (h or {}).get("per_conn_bytes"), (f or {}).get("per_conn_bytes")
    ratio = f"{hv / fv:.2f}x" if hv and fv else "-"
    print(f"| idle {c} | server RSS bytes/client | {fmt(hv)} | {fmt(fv)} | {ratio} |")
PY
