#!/usr/bin/env bash
# Queue benchmark: builds (Release), starts a throwaway Redis, runs bench.js, stops Redis.
# usage: bench/queue/run.sh [jobs=20000] [reps=3] [concurrencies=1,10,100]
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/deps.sh >/dev/null
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j2 >/dev/null
eval "$(scripts/services.sh start)" >/dev/null
trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
REX_WORKER_BIN=$PWD/build-release/rex-worker REX_FLOOR_BIN=$PWD/build-release/bench/bench_queue_floor \
  node bench/queue/bench.js "$@"
