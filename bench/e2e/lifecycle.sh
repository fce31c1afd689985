#!/usr/bin/env bash
# The execute-workflow lifecycle without the queue (bench/e2e/lifecycle.lua): builds (Release),
# starts a throwaway PostgreSQL (and Redis), migrates, runs it, stops the servers.
# usage: bench/e2e/lifecycle.sh [executions=2000] [jit.p mode, e.g. Fi1] [report file]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
bench_setup build-e2e
REX_ENV_FILE=/dev/null LOG_LEVEL=warn build-e2e/rex-worker migrate >/dev/null
REX_ENV_FILE=/dev/null LOG_LEVEL=warn build-e2e/rex-worker lua bench/e2e/lifecycle.lua "$@"
