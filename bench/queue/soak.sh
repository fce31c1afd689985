#!/usr/bin/env bash
# Memory over a long run: builds (Release), starts a throwaway Redis, runs soak.js, stops Redis.
# usage: bench/queue/soak.sh [jobs=300000] [concurrency=100]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j2 >/dev/null
eval "$(scripts/services.sh start)" >/dev/null
trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
REX_WORKER_BIN=$PWD/build-release/rex-worker node bench/queue/soak.js "$@"
