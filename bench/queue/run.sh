#!/usr/bin/env bash
# Queue benchmark: builds (Release), starts a throwaway Redis, runs bench.js, stops Redis.
# usage: bench/queue/run.sh [jobs=20000] [reps=3] [concurrencies=1,10,100]
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/deps.sh >/dev/null
. bench/lib/setup.sh
bench_setup build-release
REX_WORKER_BIN=$PWD/build-release/rex-worker REX_FLOOR_BIN=$PWD/build-release/bench/bench_queue_floor \
  node bench/queue/bench.js "$@"
