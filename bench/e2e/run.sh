#!/usr/bin/env bash
# execute-workflow end-to-end benchmark: builds (Release), starts throwaway Redis and PostgreSQL,
# runs bench.js (pipelined telemetry vs one round trip per row), stops the servers.
# usage: bench/e2e/run.sh [executions=500] [concurrency=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-e2e -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-e2e -j2 >/dev/null
eval "$(scripts/services.sh start)" >/dev/null
trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
REX_WORKER_BIN=$PWD/build-e2e/rex-worker node bench/e2e/bench.js "$@"
