#!/usr/bin/env bash
# Soak: a release `hero` on a free 127.0.0.1 port under DURATION seconds (default 600) of
# mixed load (bench/soak/soak.mjs: HTTP, websocket and long-polling actionhero clients
# calling actions and chatting in defaultRoom, faye long-polling clients publishing to
# themselves, clients joining and leaving all the time, at most ~160 at once). Prints the
# server's RSS (VmRSS) every 30 s; fails if a reply was lost or wrong, a chat message did
# not arrive, or RSS after the warm-up (2 minutes) grew past max(10 MB, 20%) above it.
#
#   bench/soak.sh                     # 10 minutes
#   DURATION=60 bench/soak.sh         # a quick check (warm-up: a third of it)
#   WS_CHURN=30 LP_CHURN=10 IDLE=100 FAYE=20 HTTP=4 BOUND_MB=10 BOUND_PCT=20 WARMUP=120 SAMPLE=30 bench/soak.sh
#   BUILD=0 HERO_BIN=target/release/hero bench/soak.sh
#
# Needs Node and tests/js/node_modules (`npm ci` in tests/js). The Node script starts hero
# itself and stops only that process, by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release -q -p hero --bin hero
fi
if [ ! -d tests/js/node_modules/faye ]; then
  (cd tests/js && npm ci --silent)
fi
export HERO_BIN=${HERO_BIN:-$PWD/target/release/hero}
# A hard stop well past the run, in case the generator hangs.
limit=$(( ${DURATION:-600} + 180 ))
exec timeout --signal=INT --kill-after=20 "$limit" node bench/soak/soak.mjs
