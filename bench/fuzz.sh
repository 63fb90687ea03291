#!/usr/bin/env bash
# Runs every fuzz target (host/src/fuzz/: Bayeux parser and processor, channel matching,
# params pipeline, static path resolver, websocket verb decoder) in release, CASES inputs
# each, and prints per target the inputs run, the seconds and the crashes.
#
#   bench/fuzz.sh                      # 10,000,000 inputs per target, 2 test threads
#   CASES=100000 bench/fuzz.sh         # a quick run
#   SEED=0x1234 FILTER=fuzz_bayeux bench/fuzz.sh   # one seed, some targets
#
# The targets are ordinary tests: `cargo test -p hero --lib fuzz` runs a short,
# fixed-seed pass of each. Here the seed is new each run (printed) unless SEED is given;
# a crash prints its case number, and `HERO_FUZZ_SEED=<seed> HERO_FUZZ_REPLAY=<case>
# cargo test -p hero --lib <target> -- --nocapture` replays it alone with its input.
# Full log: target/bench/fuzz.log. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=${CASES:-10000000}
SEED=${SEED:-$(date +%s)}
THREADS=${THREADS:-2}
FILTER=${FILTER:-fuzz}
log=target/bench/fuzz.log
mkdir -p target/bench

cargo test --release -q -p hero --lib --no-run 2>&1 | grep -v '^\s*Executable' || true
echo "fuzz: $CASES inputs per target, seed $SEED, $THREADS test threads (log: $log)"
start=$(date +%s)
set +e
HERO_FUZZ_CASES=$CASES HERO_FUZZ_SEED=$SEED \
  cargo test --release -q -p hero --lib "$FILTER" -- --nocapture --test-threads="$THREADS" \
  >"$log" 2>&1
status=$?
set -e
end=$(date +%s)

printf '\n%-16s %14s %10s %12s %8s\n' target inputs seconds inputs/s crashes
grep -aoE 'fuzz [a-z-]+: [0-9]+ inputs, [0-9.]+ s \([0-9]+/s\), [0-9]+ crashes' "$log" |
  sed -E 's/fuzz ([a-z-]+): ([0-9]+) inputs, ([0-9.]+) s \(([0-9]+)\/s\), ([0-9]+) crashes/\1 \2 \3 \4 \5/' |
  while read -r target inputs secs rate crashes; do
    printf '%-16s %14s %10s %12s %8s\n' "$target" "$inputs" "$secs" "$rate" "$crashes"
  done
grep -aoE 'fuzz [a-z-]+: .*' "$log" | grep -avE ' inputs, |: case ' || true
grep -aE 'CRASH' "$log" | cut -c1-400 || true
echo
echo "wall time $((end - start)) s; cargo test exit $status"
grep -aE '^test result' "$log" || true
exit "$status"
