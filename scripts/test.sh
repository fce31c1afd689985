#!/usr/bin/env bash
# make test: installs what is missing, builds, runs every test layer, prints "N passed, M failed".
#   layers: format, C unit (ctest), Lua specs (busted under LuaJIT), integration (ctest, real
#   Redis + PostgreSQL), interop (node:test with the npm bullmq), then the C unit and integration
#   layers again in an ASan+UBSan build (clang), and last 30 s chaos runs (tests/chaos: random
#   faults, then invariants checked; the seed is printed) with the normal and the ASan build.
# Environment: REX_TEST_LAYERS="unit busted ..." runs a subset (of format unit busted
# integration interop san chaos); REX_TEST_NO_SAN=1 skips the
# sanitizer build.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

PASSED=0
FAILED=0
SUMMARY=()
record() { # layer passed failed
  PASSED=$((PASSED + $2)); FAILED=$((FAILED + $3))
  SUMMARY+=("$(printf '%-18s %4d passed, %d failed' "$1" "$2" "$3")")
}

want() { [[ -z "${REX_TEST_LAYERS:-}" || " $REX_TEST_LAYERS " == *" $1 "* ]]; }

build() { # dir cmake-args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DREX_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    && cmake --build "$dir" -j2 >"$dir.build.log" 2>&1
}

ctest_layer() { # name builddir label
  local out rc total failed
  out=$(cd "$2" && ctest -L "^$3\$" --output-on-failure --timeout 300 2>&1); rc=$?
  echo "$out" | grep -vE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' || true
  total=$(echo "$out" | sed -nE 's/.*tests failed out of ([0-9]+).*/\1/p' | tail -1)
  failed=$(echo "$out" | sed -nE 's/.* ([0-9]+) tests failed out of.*/\1/p' | tail -1)
  if [[ -z "$total" ]]; then record "$1" 0 1; return; fi
  [[ $rc -ne 0 && "${failed:-0}" -eq 0 ]] && failed=1
  record "$1" $((total - failed)) "$failed"
}

echo "== build (gcc, -Werror)"
mkdir -p build
if ! build build -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
  tail -40 build.configure.log build.build.log 2>/dev/null
  record build 0 1
  echo "${SUMMARY[@]}"; echo "$PASSED passed, $FAILED failed"; exit 1
fi
rm -f build.configure.log build.build.log

if want format; then
  echo "== format (clang-format)"
  if scripts/format.sh --check; then record format 1 0; else record format 0 1; fi
fi

if want unit; then
  echo "== C unit tests"
  ctest_layer "C unit" build unit
fi

if want busted; then
  echo "== Lua specs (busted, LuaJIT)"
  out=$(REX_WORKER_BIN="$ROOT/build/rex-worker" busted -o utfTerminal 2>&1); rc=$?
  echo "$out" | tail -25
  line=$(echo "$out" | grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' | tail -1)
  ok=$(echo "$line" | sed -nE 's/^([0-9]+) success.*/\1/p')
  bad=$(echo "$line" | sed -nE 's/.* ([0-9]+) failures? \/ ([0-9]+) errors? \/ ([0-9]+) pending.*/\1 \2 \3/p')
  if [[ -z "$ok" ]]; then record busted 0 1
  else
    set -- $bad; nb=$(( $1 + $2 + ${3:-0} )) # a pending spec is a test that did not run
    [[ $rc -ne 0 && $nb -eq 0 ]] && nb=1
    record busted "$ok" "$nb"
  fi
fi

SERVICES=""
stop_services() { [[ -n "$SERVICES" ]] && scripts/services.sh stop "$SERVICES"; SERVICES=""; }
trap stop_services EXIT
if want integration || want interop || want san || want chaos; then
  echo "== services"
  if env_lines=$(scripts/services.sh start); then
    eval "$env_lines"
    SERVICES=$REX_SERVICES_DIR
    echo "redis $REDIS_URL, postgres $DATABASE_URL"
  else
    record services 0 1
  fi
fi

if want integration && [[ -n "$SERVICES" ]]; then
  echo "== integration tests"
  ctest_layer integration build integration
fi

node_layer() { # name env-assignments... -- node --test args...
  local name=$1; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done; shift
  local out rc p f
  out=$(env "${envs[@]}" timeout 1500 node --test --test-concurrency=1 "$@" 2>&1); rc=$?
  echo "$out" | grep -E '^(not ok|ok) ' | head -300
  echo "$out" | grep -A40 '^not ok' | head -200
  p=$(echo "$out" | sed -nE 's/^# pass ([0-9]+)/\1/p' | tail -1)
  f=$(echo "$out" | sed -nE 's/^# fail ([0-9]+)/\1/p' | tail -1)
  if [[ -z "$p" ]]; then record "$name" 0 1; return; fi
  [[ $rc -ne 0 && "${f:-0}" -eq 0 ]] && f=1
  record "$name" "$p" "${f:-0}"
}

if want interop && [[ -n "$SERVICES" ]]; then
  echo "== interop tests: rex-worker and its scripts against the npm bullmq"
  node_layer interop REX_BUILD_DIR="$ROOT/build" REX_WORKER_BIN="$ROOT/build/rex-worker" WORKER_IMPL=rex \
    -- tests/interop/
  echo "== interop tests: the same worker scenarios against BullMQ's own Node Worker"
  node_layer "interop (node)" WORKER_IMPL=node -- tests/interop/worker/
fi

if want san && [[ -z "${REX_TEST_NO_SAN:-}" ]]; then
  echo "== sanitizer build (clang, ASan+UBSan)"
  mkdir -p build-san
  if build build-san -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DREX_ASAN=ON -DREX_UBSAN=ON; then
    rm -f build-san.configure.log build-san.build.log
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ctest_layer "C unit (asan)" build-san unit
    if [[ -n "$SERVICES" ]]; then
      ctest_layer "integration (asan)" build-san integration
      echo "== interop worker scenarios with the sanitizer build"
      node_layer "interop (asan)" REX_WORKER_BIN="$ROOT/build-san/rex-worker" WORKER_IMPL=rex \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" \
        -- tests/interop/worker/basic.test.js tests/interop/worker/lifecycle.test.js tests/interop/worker/locks.test.js \
        tests/interop/execute/pending-final.test.js
    fi
  else
    tail -40 build-san.configure.log build-san.build.log 2>/dev/null
    record "build (asan)" 0 1
  fi
fi

# Last: it restarts PostgreSQL and kills worker processes on purpose.
chaos_layer() { # name binary env-assignments...
  local name=$1 bin=$2 out rc; shift 2
  echo "== $name: jobs under random faults (tests/chaos, 30 s)"
  out=$(env "$@" REX_WORKER_BIN="$bin" timeout 900 node tests/chaos/chaos.js 30 2>&1); rc=$?
  echo "$out" | tail -60
  if [[ $rc -eq 0 ]]; then record "$name" 1 0; else record "$name" 0 1; fi
}
if want chaos && [[ -n "$SERVICES" ]]; then
  chaos_layer chaos "$ROOT/build/rex-worker"
  # the same with the sanitizer build: a report in any worker's log is a failure
  if want san && [[ -z "${REX_TEST_NO_SAN:-}" && -x build-san/rex-worker ]]; then
    chaos_layer "chaos (asan)" "$ROOT/build-san/rex-worker" \
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  fi
fi

stop_services
echo
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 && $PASSED -gt 0 ]]
