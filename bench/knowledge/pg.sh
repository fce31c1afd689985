#!/usr/bin/env bash
# Knowledge against PostgreSQL (bench/knowledge/pg.js): builds (Release), starts throwaway Redis and
# PostgreSQL, runs the benchmark, stops the servers.
# usage: bench/knowledge/pg.sh [documents=1000] [concurrency=2] [sizes=10000,100000]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
bench_setup build-release
REX_WORKER_BIN=$PWD/build-release/rex-worker node bench/knowledge/pg.js "$@"
