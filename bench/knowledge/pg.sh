#!/usr/bin/env bash
# Knowledge against PostgreSQL (bench/knowledge/pg.js): builds (Release), starts throwaway Redis and
# PostgreSQL, runs the benchmark, stops the servers.
# usage: bench/knowledge/pg.sh [documents=1000] [concurrency=2] [sizes=10000,100000]
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j2 >/dev/null
eval "$(scripts/services.sh start)" >/dev/null
trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
REX_WORKER_BIN=$PWD/build-release/rex-worker node bench/knowledge/pg.js "$@"
