#!/usr/bin/env bash
# Chaos run (tests/chaos/chaos.js): builds, starts throwaway Redis and PostgreSQL, runs
# execute-workflow jobs from a Node bullmq producer through rex-worker processes while faults are
# injected at random, then checks that nothing was lost, finished twice or written twice, and
# stops the servers. Exits non-zero on a violation.
# usage: scripts/chaos.sh [seconds=60] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
eval "$(scripts/services.sh start)" >/dev/null
trap 'scripts/services.sh stop "$REX_SERVICES_DIR"' EXIT
REX_WORKER_BIN=$PWD/build/rex-worker node tests/chaos/chaos.js "$@"
