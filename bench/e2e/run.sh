#!/usr/bin/env bash
# execute-workflow end-to-end benchmark: builds (Release), starts throwaway Redis and PostgreSQL,
# runs bench.js (pipelined telemetry vs one round trip per row), stops the servers.
# usage: bench/e2e/run.sh [executions=500] [concurrency=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
bench_setup build-e2e
REX_WORKER_BIN=$PWD/build-e2e/rex-worker node bench/e2e/bench.js "$@"
