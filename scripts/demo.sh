#!/usr/bin/env bash
# make demo: installs what is missing, builds, then
#   1. runs an example workflow locally with `rex-worker run` (step timeline on stderr),
#   2. runs the same workflow as a queue job: throwaway Redis on loopback, `rex-worker serve`,
#      `rex-worker add`, and reads the job's result back from Redis as a BullMQ client would.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/deps.sh --no-npm
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 >/dev/null
BIN=$ROOT/build/rex-worker
export REX_ENV_FILE=/dev/null

echo "== 1. rex-worker run examples/order-pipeline.json"
"$BIN" run examples/order-pipeline.json --input '{"customer":"  Ada  ","amount":"420","note":"mail ada@example.com"}' \
  >/tmp/rex-demo-run.json
"$BIN" lua /dev/stdin /tmp/rex-demo-run.json <<'LUA'
local json = require("rex.json")
local f = assert(io.open(arg[1])); local r = json.decode(f:read("*a")); f:close()
print(("status %s; output %s"):format(r.status, json.encode(r.output)))
LUA

echo
echo "== 2. the same workflow through the queue"
eval "$(scripts/services.sh start)" >/dev/null
WPID=""
cleanup() {
  [[ -n "$WPID" ]] && kill -TERM "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
  scripts/services.sh stop "$REX_SERVICES_DIR"
}
trap cleanup EXIT
echo "redis: $REDIS_URL (throwaway, loopback)"
QUEUE_NAME=demo REX_JOBS_PATH="$ROOT/examples/jobs" LOG_LEVEL=warn "$BIN" serve &
WPID=$!
DATA=$("$BIN" lua /dev/stdin <<'LUA'
local json = require("rex.json")
local f = assert(io.open("examples/order-pipeline.json")); local wf = json.decode(f:read("*a")); f:close()
io.write(json.encode({ workflow = wf, input = { customer = " Bo ", amount = "75", note = "n/a" } }))
LUA
)
ID=$(QUEUE_NAME=demo "$BIN" add run-workflow "$DATA" --opts '{"attempts":2,"removeOnComplete":false}')
echo "added job $ID to queue 'demo'"
for _ in $(seq 100); do
  [[ -n "$(redis-cli -u "$REDIS_URL" hget "bull:demo:$ID" finishedOn)" ]] && break
  sleep 0.1
done
echo "job $ID finished; returnvalue as stored for BullMQ clients:"
redis-cli -u "$REDIS_URL" hget "bull:demo:$ID" returnvalue
echo "job log:"
redis-cli -u "$REDIS_URL" lrange "bull:demo:$ID:logs" 0 -1 | sed 's/^/  /'
