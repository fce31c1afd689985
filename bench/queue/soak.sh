#!/usr/bin/env bash
# Memory over a long run: builds (Release), starts a throwaway Redis, runs soak.js, stops Redis.
# usage: bench/queue/soak.sh [jobs=300000] [concurrency=100]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
bench_setup build-release
REX_WORKER_BIN=$PWD/build-release/rex-worker node bench/queue/soak.js "$@"
