// Database faults during execute-workflow: a connection killed mid-run (a transient failure
// injected from the server side), PostgreSQL restarted mid-run, a statement timeout, and a
// database without the optional telemetry tables. After a fault the job fails, BullMQ retries it,
// the retry removes the earlier telemetry in one transaction, and the final rows equal one clean
// run; no execution is left `running`.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn, execFileSync } = require('node:child_process');
const { ROOT } = require('../lib/harness');
const { scenario, sleep } = require('../lib/worker');
const X = require('./lib');

const USER = '33333333-3333-4333-8333-333333333333';

const WF = {
  name: 'faults',
  nodes: [
    { id: 'trigger', type: 'manual-trigger', config: {} },
    { id: 'clean', type: 'data-cleaner', config: { operations: ['trim'] } },
    { id: 'wait1', type: 'test-sleep', config: { ms: 400 } },
    { id: 'wait2', type: 'test-sleep', config: { ms: 400 } },
    { id: 'check', type: 'json-validator', config: { requiredFields: ['name'] } },
    { id: 'out', type: 'output', config: {} },
  ],
  edges: [
    { source: 'trigger', target: 'clean' }, { source: 'clean', target: 'wait1' },
    { source: 'wait1', target: 'wait2' }, { source: 'wait2', target: 'check' },
    { source: 'check', target: 'out' },
  ],
};
const PAYLOAD = { name: '  Ada  ' };

const VOLATILE = new Set(['timestamp', 'updatedAt', 'startedAt', 'durationMs', 'duration_ms',
  'collectedAt', 'executionId', 'workflowId']);
function normalize(v) {
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) if (!VOLATILE.has(k)) out[k] = normalize(v[k]);
    return out;
  }
  return v;
}

// The rows of one execution reduced to what must equal a clean run's.
function shape(executionId) {
  const p = X.persisted(executionId);
  return {
    status: p.execution.status,
    error: p.execution.error_message,
    // one set of rows, whatever their heap order: rows of one statement share created_at, and
    // after a re-run's cleanup new rows may land in freed space before older pages
    steps: p.steps.map((r) => normalize({ node: r.node_id, status: r.status, output: r.output, error: r.error }))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
    attempts: p.attempts.map((a) => [a.node_id, a.attempt, a.status, a.reason])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])),
    snapshots: p.snapshots.map((r) => [r.sequence, r.reason, r.node_id]),
  };
}

let clean; // a clean run's shape, computed once

async function cleanRun(t) {
  if (clean) return clean;
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(WF, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: PAYLOAD });
  await s.waitFor('completed', executionId, 15000);
  clean = shape(executionId);
  assert.equal(clean.status, 'completed');
  assert.equal(clean.steps.length, 6);
  return clean;
}

function killWorkerConnections() {
  return X.psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = 'rex-worker' AND pid <> pg_backend_pid()`);
}

test.before(() => X.migrate());

test('clean run of the fault workflow', async (t) => {
  await cleanRun(t);
});

test('connection killed mid-run: job retried, earlier telemetry removed, rows equal a clean run', async (t) => {
  const want = await cleanRun(t);
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(WF, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: PAYLOAD });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'wait1'`);
  assert.ok(Number(killWorkerConnections()) >= 1);
  // the attempt fails and BullMQ schedules the retry (exponential backoff 2000 ms)
  await s.waitFor('delayed', executionId, 10000);
  assert.match((await s.job(executionId)).failedReason, /connection|terminat|server closed/i);
  await s.waitFor('completed', executionId, 20000);
  assert.equal((await s.job(executionId)).attemptsMade, 2);
  assert.deepEqual(shape(executionId), want);
});

test('PostgreSQL restarted mid-run: the job is retried and ends with one clean set of rows', async (t) => {
  const want = await cleanRun(t);
  const dir = process.env.REX_SERVICES_DIR;
  if (!dir) return t.skip('REX_SERVICES_DIR is not set');
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(WF, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: PAYLOAD });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'wait1'`);
  execFileSync(path.join(ROOT, 'scripts', 'services.sh'), ['restart-postgres', dir], { stdio: 'ignore' });
  await s.waitFor('completed', executionId, 30000);
  assert.ok(s.of('delayed', executionId).length >= 1, 'the attempt during the restart failed and was retried');
  assert.ok((await s.job(executionId)).attemptsMade >= 2);
  assert.deepEqual(shape(executionId), want);
});

test('statement timeout while a table is locked: retried, then completes cleanly', async (t) => {
  const want = await cleanRun(t);
  const s = await scenario(t, { major: 5, env: X.workerEnv({ REX_PG_STATEMENT_TIMEOUT_MS: '300' }) });
  const workflowId = X.insertWorkflow(WF, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: PAYLOAD });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'clean'`);
  const locker = spawn('psql', [process.env.DATABASE_URL, '-Xq', '-c',
    'BEGIN; LOCK TABLE execution_steps IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.2); COMMIT;'],
  { stdio: 'ignore' });
  const done = new Promise((r) => locker.on('exit', r));
  await s.waitFor('delayed', executionId, 10000);
  assert.match((await s.job(executionId)).failedReason, /statement timeout|canceling statement/i);
  await done;
  await s.waitFor('completed', executionId, 20000);
  assert.deepEqual(shape(executionId), want);
});

test('a database without the optional telemetry tables: warned once each, executions still complete', async (t) => {
  const dbName = `rex_missing_${process.pid}_${Date.now()}`;
  X.psql(`CREATE DATABASE ${dbName}`);
  const u = new URL(process.env.DATABASE_URL);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  t.after(() => { try { X.psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`); } catch (_) { /* gone */ } });
  X.migrate({ DATABASE_URL: url });
  X.psql(`DROP TABLE execution_step_attempts, execution_context_snapshots, execution_retrieval_events,
    guardrail_events, execution_authorizations, alert_events, alert_rules`, url);
  const s = await scenario(t, { major: 5, env: X.workerEnv({ DATABASE_URL: url, WORKER_CONCURRENCY: '1' }), start: false });
  const w = await s.start();
  const user = crypto.randomUUID();
  X.psql(`INSERT INTO users (id, email, name, password_hash) VALUES (${X.lit(user)}, ${X.lit(`${user}@x.test`)}, 'u', 'x')`, url);
  const workflowId = crypto.randomUUID();
  X.psql(`INSERT INTO workflows (id, user_id, name, nodes, edges) VALUES (${X.lit(workflowId)}, ${X.lit(user)}, 'w',
    ${X.jsonLit(WF.nodes)}, ${X.jsonLit(WF.edges)})`, url);
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const executionId = crypto.randomUUID();
    X.psql(`INSERT INTO executions (id, workflow_id, trigger_payload) VALUES (${X.lit(executionId)}, ${X.lit(workflowId)}, ${X.jsonLit(PAYLOAD)})`, url);
    await s.queue.add('execute-workflow', { executionId, workflowId, userId: user, triggerPayload: PAYLOAD },
      { ...X.REX_JOB_OPTS, jobId: executionId });
    ids.push(executionId);
  }
  for (const id of ids) await s.waitFor('completed', id, 20000);
  for (const id of ids) {
    const [e] = X.rows(`SELECT status FROM executions WHERE id = ${X.lit(id)}`, url);
    assert.equal(e.status, 'completed');
    const steps = X.rows(`SELECT node_id, status FROM execution_steps WHERE execution_id = ${X.lit(id)} ORDER BY created_at, ctid`, url);
    assert.deepEqual(steps.map((r) => r.status), ['completed', 'completed', 'completed', 'completed', 'completed', 'completed']);
  }
  const count = (msg) => w.stderr.split('\n').filter((l) => l.includes(msg)).length;
  assert.equal(count('Execution step attempts table not found; skipping persistence'), 1);
  assert.equal(count('Execution context snapshot table not found; skipping persistence'), 1);
  assert.equal(count('Execution authorizations table not found'), 1);
  assert.equal(count('Alert tables missing; skipping alert evaluation'), 1);
});

// Worker A (short locks) in the middle of an execution (its first sleep done), and a clean
// run's rows to compare with.
async function midRun(t) {
  const want = await cleanRun(t);
  const fast = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '500' };
  const s = await scenario(t, { major: 5, env: X.workerEnv(fast), start: false });
  const a = await s.start();
  const workflowId = X.insertWorkflow(WF, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: PAYLOAD });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'wait1'`);
  return { want, s, a, executionId };
}

test('a worker killed mid-run: stalled recovery re-runs the execution cleanly on another worker', async (t) => {
  const { want, s, a, executionId } = await midRun(t);
  await a.stop('SIGKILL');
  assert.equal(X.persisted(executionId).execution.status, 'running');
  await s.start();
  await s.waitFor('completed', executionId, 20000);
  assert.ok(s.of('stalled', executionId).length >= 1, 'the job was recovered as stalled');
  assert.deepEqual(shape(executionId), want);
});

test('a worker frozen past its lock: another worker re-runs the execution; thawed, the first writes nothing more', async (t) => {
  const { want, s, a, executionId } = await midRun(t);
  const id = X.lit(executionId);
  a.proc.kill('SIGSTOP'); // a VM pause: its lock expires while it is in the middle of the run
  const [{ started_at: frozenRun }] = X.rows(`SELECT started_at FROM executions WHERE id = ${id}`);
  const b = await s.start();
  await s.waitFor('completed', executionId, 20000);
  await b.waitLog(/Re-run of an execution: earlier telemetry removed/);
  const after = shape(executionId);
  const [{ started_at: newRun }] = X.rows(`SELECT started_at FROM executions WHERE id = ${id}`);
  assert.notEqual(newRun, frozenRun, 'the re-run is the execution\'s run now');
  a.proc.kill('SIGCONT'); // it goes on with its run: every write it still makes is refused
  await a.waitLog(/Execution run superseded/, 10000);
  await a.waitLog(/could not complete job/, 10000);
  assert.deepEqual(after, want);
  assert.deepEqual(shape(executionId), want, 'the thawed run added or changed nothing');
  assert.equal(s.of('completed', executionId).length, 1);
});

test('a table with an unexpected column type: a clear error, execution failed, no retries', async (t) => {
  const dbName = `rex_badtype_${process.pid}_${Date.now()}`;
  X.psql(`CREATE DATABASE ${dbName}`);
  const u = new URL(process.env.DATABASE_URL);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  t.after(() => { try { X.psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`); } catch (_) { /* gone */ } });
  X.migrate({ DATABASE_URL: url });
  X.psql('ALTER TABLE execution_steps ALTER COLUMN output TYPE text', url);
  const s = await scenario(t, { major: 5, env: X.workerEnv({ DATABASE_URL: url }) });
  const user = crypto.randomUUID();
  X.psql(`INSERT INTO users (id, email, name, password_hash) VALUES (${X.lit(user)}, ${X.lit(`${user}@x.test`)}, 'u', 'x')`, url);
  const workflowId = crypto.randomUUID();
  X.psql(`INSERT INTO workflows (id, user_id, name, nodes, edges) VALUES (${X.lit(workflowId)}, ${X.lit(user)}, 'w',
    ${X.jsonLit(WF.nodes)}, ${X.jsonLit(WF.edges)})`, url);
  const executionId = crypto.randomUUID();
  X.psql(`INSERT INTO executions (id, workflow_id) VALUES (${X.lit(executionId)}, ${X.lit(workflowId)})`, url);
  await s.queue.add('execute-workflow', { executionId, workflowId, userId: user, triggerPayload: {} },
    { ...X.REX_JOB_OPTS, jobId: executionId });
  const ev = await s.waitFor('failed', executionId);
  assert.match(ev.failedReason, /execution_steps\.output has type text, expected jsonb/);
  assert.equal((await s.job(executionId)).attemptsMade, 1);
  const [e] = X.rows(`SELECT status, error_message FROM executions WHERE id = ${X.lit(executionId)}`, url);
  assert.equal(e.status, 'failed');
  assert.match(e.error_message, /rex-worker migrate/);
});
