#!/usr/bin/env bash
# make demo: installs what is missing, builds, then
#   1. runs an example workflow locally with `rex-worker run` (step timeline on stderr),
#   2. runs the same workflow as a queue job: throwaway Redis on loopback, `rex-worker serve`,
#      `rex-worker add`, and reads the job's result back from Redis as a BullMQ client would,
#   3. runs REX's own job end to end: throwaway PostgreSQL, `rex-worker migrate`, a workflow and a
#      pending execution inserted as REX's backend does, an `execute-workflow` job enqueued with
#      REX's options, and the telemetry the worker persisted.
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

echo
echo "== 3. REX's execute-workflow: PostgreSQL telemetry"
echo "postgres: $DATABASE_URL (throwaway, loopback)"
kill -TERM "$WPID"; wait "$WPID" 2>/dev/null || true; WPID=""
"$BIN" migrate
Q() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }
TENANT=00000000-0000-0000-0000-000000000001
USER_ID=$(cat /proc/sys/kernel/random/uuid)
WF_ID=$(cat /proc/sys/kernel/random/uuid)
EXEC_ID=$(cat /proc/sys/kernel/random/uuid)
AUTH_ID=$(cat /proc/sys/kernel/random/uuid)
WF_NODES=$("$BIN" lua /dev/stdin <<'LUA'
local json = require("rex.json")
local f = assert(io.open("examples/order-pipeline.json")); local wf = json.decode(f:read("*a")); f:close()
io.write(json.encode(wf.nodes), "\n", json.encode(wf.edges))
LUA
)
NODES=$(echo "$WF_NODES" | sed -n 1p)
EDGES=$(echo "$WF_NODES" | sed -n 2p)
Q -c "INSERT INTO users (id, email, name, password_hash) VALUES ('$USER_ID', 'demo@example.test', 'Demo', 'x')"
Q -v nodes="$NODES" -v edges="$EDGES" <<SQL
INSERT INTO workflows (id, tenant_id, user_id, name, status, nodes, edges)
  VALUES ('$WF_ID', '$TENANT', '$USER_ID', 'order pipeline', 'active', :'nodes'::jsonb, :'edges'::jsonb);
SQL
Q -c "INSERT INTO executions (id, tenant_id, workflow_id, status, trigger_payload)
  VALUES ('$EXEC_ID', '$TENANT', '$WF_ID', 'pending', '{\"customer\":\" Cy \",\"amount\":\"990\"}')"
Q -c "INSERT INTO execution_authorizations (id, tenant_id, execution_id, workflow_id, user_id, action,
  attributes, expires_at, revoked) VALUES ('$AUTH_ID', '$TENANT', '$EXEC_ID', '$WF_ID', '$USER_ID',
  'execute', '{\"trigger\":\"api\",\"hasHyperparameterProfile\":false}', now() + interval '30 minutes', false)"
LOG_LEVEL=warn "$BIN" serve &
WPID=$!
"$BIN" add execute-workflow \
  "{\"executionId\":\"$EXEC_ID\",\"executionAuthorizationId\":\"$AUTH_ID\",\"workflowId\":\"$WF_ID\",\"userId\":\"$USER_ID\",\"triggerPayload\":{\"customer\":\" Cy \",\"amount\":\"990\"}}" \
  --opts "{\"jobId\":\"$EXEC_ID\",\"attempts\":3,\"backoff\":{\"type\":\"exponential\",\"delay\":2000},\"removeOnComplete\":{\"count\":1000},\"removeOnFail\":{\"count\":5000}}" >/dev/null
for _ in $(seq 100); do
  st=$(Q -c "SELECT status FROM executions WHERE id = '$EXEC_ID'")
  [[ "$st" == completed || "$st" == failed || "$st" == canceled ]] && break
  sleep 0.1
done
echo "execution $EXEC_ID:"
Q -F ' | ' -c "SELECT status, started_at IS NOT NULL AS started, finished_at IS NOT NULL AS finished, coalesce(error_message, '') FROM executions WHERE id = '$EXEC_ID'" | sed 's/^/  /'
echo "steps (execution_steps):"
Q -F ' | ' -c "SELECT node_id, node_type, status, coalesce(error, '') FROM execution_steps WHERE execution_id = '$EXEC_ID' ORDER BY created_at, ctid" | sed 's/^/  /'
echo "context snapshots: $(Q -c "SELECT count(*) FROM execution_context_snapshots WHERE execution_id = '$EXEC_ID'"), step attempts: $(Q -c "SELECT count(*) FROM execution_step_attempts WHERE execution_id = '$EXEC_ID'")"
