// execute-workflow lifecycle rules (rex-behaviour.md §2 with decisions.md §3), each checked on
// the persisted rows: skipping missing or canceled executions, cancel during a run, a missing
// workflow, an invalid graph stored in the database, authorization, domain config, API keys.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const { scenario, sleep } = require('../lib/worker');
const X = require('./lib');

const USER = '22222222-2222-4222-8222-222222222222';

function linear(nodes) {
  const edges = [];
  for (let i = 1; i < nodes.length; i++) {
    edges.push({ id: `e${i}`, source: nodes[i - 1].id, target: nodes[i].id });
  }
  return { name: 'lifecycle', nodes, edges };
}

const SLOW = linear([
  { id: 'trigger', type: 'manual-trigger', config: {} },
  { id: 'wait1', type: 'test-sleep', config: { ms: 500 } },
  { id: 'wait2', type: 'test-sleep', config: { ms: 500 } },
  { id: 'wait3', type: 'test-sleep', config: { ms: 500 } },
  { id: 'out', type: 'output', config: {} },
]);

test.before(() => X.migrate());

test('an execution canceled before pickup: job completes, nothing runs or is written', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, status: 'canceled' });
  const ev = await s.waitFor('completed', executionId);
  assert.equal(ev.returnvalue, null);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'canceled');
  assert.equal(got.execution.has_started_at, false);
  assert.equal(got.steps.length, 0);
  assert.equal(got.snapshots.length, 0);
});

test('a job whose execution row is missing completes without running', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const executionId = crypto.randomUUID();
  await s.queue.add('execute-workflow', { executionId, workflowId: crypto.randomUUID(), userId: USER,
    triggerPayload: {}, executionAuthorizationId: crypto.randomUUID() },
  { ...X.REX_JOB_OPTS, jobId: executionId });
  await s.waitFor('completed', executionId);
  assert.equal(X.rows(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)}`).length, 0);
});

test('a cancel request seen between steps ends the execution canceled / Stopped by user', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { a: 1 } });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)}
    AND node_id = 'wait1'`);
  // what REX's backend does on a stop request
  X.psql(`UPDATE executions SET status = 'canceled', error_message = 'Stopped by user',
    finished_at = now() WHERE id = ${X.lit(executionId)}`);
  await s.waitFor('completed', executionId, 15000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'canceled');
  assert.equal(got.execution.error_message, 'Stopped by user');
  assert.equal(got.execution.has_finished_at, true);
  const ran = got.steps.filter((r) => r.status === 'completed').map((r) => r.node_id);
  assert.ok(ran.includes('wait1'));
  assert.ok(!ran.includes('out'), `out must not run: ${JSON.stringify(got.steps.map((r) => [r.node_id, r.status]))}`);
  assert.equal(got.snapshots[got.snapshots.length - 1].reason, 'error');
});

test('a stop request that lands between the pickup read and the "running" update wins', async (t) => {
  // This session holds the execution row, so the worker's "running" update waits for it after
  // the pickup read saw `pending`; then it stops the execution as REX's backend does and commits.
  const s = await scenario(t, { major: 5, env: X.workerEnv(), start: false });
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { a: 1 } });
  const id = X.lit(executionId);
  const stop = spawn('psql', [X.dbUrl(), '-XAtq', '-c', `BEGIN;
    SELECT 1 FROM executions WHERE id = ${id} FOR UPDATE; SELECT pg_sleep(1.5);
    UPDATE executions SET status = 'canceled', error_message = 'Stopped by user', finished_at = now()
    WHERE id = ${id}; COMMIT;`], { stdio: 'ignore' });
  t.after(() => stop.kill());
  await X.waitRow(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' AND state = 'active'
    AND pid <> pg_backend_pid()`);
  await s.start();
  await s.waitFor('completed', executionId, 15000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'canceled');
  assert.equal(got.execution.error_message, 'Stopped by user');
  assert.deepEqual(got.steps.filter((r) => r.node_id === 'out'), [], 'out must not run');
});

test('a missing workflow fails the execution with "Workflow <id> not found" (decision)', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  // the execution refers to a workflow that is gone (FK cascade disabled for this delete)
  const executionId = crypto.randomUUID();
  X.psql(`INSERT INTO executions (id, workflow_id, status) VALUES (${X.lit(executionId)}, ${X.lit(workflowId)}, 'pending');
    INSERT INTO execution_authorizations (execution_id, workflow_id, user_id, expires_at, id)
      VALUES (${X.lit(executionId)}, ${X.lit(workflowId)}, ${X.lit(USER)}, now() + interval '30 minutes', ${X.lit(executionId)});
    SET session_replication_role = replica; DELETE FROM workflows WHERE id = ${X.lit(workflowId)}`);
  await s.queue.add('execute-workflow', { executionId, workflowId, userId: USER, triggerPayload: {},
    executionAuthorizationId: executionId }, { ...X.REX_JOB_OPTS, jobId: executionId });
  await s.waitFor('completed', executionId);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'failed');
  assert.equal(got.execution.error_message, `Workflow ${workflowId} not found`);
  assert.equal(got.execution.has_finished_at, true);
  assert.equal(got.steps.length, 0);
});

test('an invalid graph stored in the database fails the execution with every problem, no node runs', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const wf = {
    name: 'bad',
    nodes: [
      { id: 'a', type: 'manual-trigger', config: {} },
      { id: 'b', type: 'no-such-node', config: {} },
      { id: 'c', type: 'log', config: {} },
    ],
    edges: [{ source: 'a', target: 'c' }, { source: 'c', target: 'a' }],
  };
  const workflowId = X.insertWorkflow(wf, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER });
  const ev = await s.waitFor('completed', executionId);
  assert.equal(ev.returnvalue, null);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'failed');
  assert.match(got.execution.error_message, /no-such-node/);
  assert.match(got.execution.error_message, /cycle/i);
  assert.equal(got.steps.filter((r) => r.status === 'completed').length, 0);

  // nodes that are not a list at all
  const w2 = X.insertWorkflow(wf, { userId: USER, nodesJson: '{"not": "a list"}' });
  const r2 = await X.trigger(s.queue, { workflowId: w2, userId: USER });
  await s.waitFor('completed', r2.executionId);
  const g2 = X.persisted(r2.executionId);
  assert.equal(g2.execution.status, 'failed');
  assert.ok(g2.execution.error_message.length > 0);
});

test('authorization: missing token fails the execution and the job without retries', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, authorization: false });
  const ev = await s.waitFor('failed', executionId);
  assert.equal(ev.failedReason, 'Execution authorization token missing from job payload');
  assert.equal((await s.job(executionId)).attemptsMade, 1);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'failed');
  assert.equal(got.execution.error_message, 'Execution authorization token missing from job payload');
  assert.equal(got.steps.length, 0);
});

test('authorization: revoked and expired tokens are refused; a valid one is marked validated', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv(), start: false });
  const workflowId = X.insertWorkflow(linear([{ id: 't', type: 'manual-trigger', config: {} }]), { userId: USER });
  const bad = await X.trigger(s.queue, { workflowId, userId: USER });
  X.psql(`UPDATE execution_authorizations SET revoked = true WHERE id = ${X.lit(bad.executionAuthorizationId)}`);
  const expired = await X.trigger(s.queue, { workflowId, userId: USER });
  X.psql(`UPDATE execution_authorizations SET expires_at = now() - interval '1 minute' WHERE id = ${X.lit(expired.executionAuthorizationId)}`);
  const good = await X.trigger(s.queue, { workflowId, userId: USER });
  await s.start();
  const ev = await s.waitFor('failed', bad.executionId);
  assert.equal(ev.failedReason, 'Execution authorization is invalid, revoked, or expired');
  const ev2 = await s.waitFor('failed', expired.executionId);
  assert.equal(ev2.failedReason, 'Execution authorization is invalid, revoked, or expired');
  assert.equal(X.persisted(expired.executionId).execution.status, 'failed');
  await s.waitFor('completed', good.executionId);
  assert.equal(X.persisted(good.executionId).execution.status, 'completed');
  const [a] = X.rows(`SELECT validated_at IS NOT NULL AS v FROM execution_authorizations WHERE id = ${X.lit(good.executionAuthorizationId)}`);
  assert.equal(a.v, true);
});

test('domain config: rows merged by specificity, the queued config on top, node defaults injected', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const user = crypto.randomUUID();
  X.ensureUser(user);
  const wf = linear([
    { id: 't', type: 'manual-trigger', config: {} },
    { id: 'out', type: 'output', config: {} },
  ]);
  const workflowId = X.insertWorkflow(wf, { userId: user });
  X.psql(`INSERT INTO domain_configs (user_id, workflow_id, config) VALUES
    (${X.lit(user)}, ${X.lit(workflowId)}, '{"a": {"c": 2}, "k": "both"}'),
    (${X.lit(user)}, NULL, '{"a": {"b": 1, "c": 1}, "k": "user", "arr": [1, 2]}')`);
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: user,
    domainConfig: { a: { d: 3 }, arr: [9] } });
  await s.waitFor('completed', executionId);
  const got = X.persisted(executionId);
  assert.equal(got.snapshots[0].reason, 'init');
  assert.deepEqual(got.snapshots[0].state.memory.domainConfig,
    { a: { b: 1, c: 2, d: 3 }, k: 'both', arr: [9] });
});

// A local OpenAI-compatible endpoint that records the bearer token it was given.
// A local OpenAI-compatible chat endpoint.
const fakeLlm = (t) => X.fakeProvider(t, () => ({ choices: [{ message: { content: 'hello from the fake model' } }],
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, model: 'fake' }));
const { STORED_KEY, STORED_KEY_PLAINTEXT: PLAINTEXT } = X;

function llmWorkflow(url) {
  return linear([
    { id: 't', type: 'manual-trigger', config: {} },
    { id: 'ask', type: 'llm', config: { provider: 'openai', baseUrl: url, model: 'fake', prompt: 'Say hi' } },
    { id: 'out', type: 'output', config: {} },
  ]);
}

test('API keys: REX ciphertext decrypted with the master key and sent to the provider', async (t) => {
  const llm = await fakeLlm(t);
  const s = await scenario(t, { major: 5, env: X.workerEnv({ REX_HTTP_ALLOWLIST: '127.0.0.1' }), start: false });
  const w = await s.start();
  const user = crypto.randomUUID();
  X.ensureUser(user);
  X.psql(`INSERT INTO api_keys (user_id, provider, encrypted_key, label) VALUES
    (${X.lit(user)}, 'openai', ${X.lit(STORED_KEY)}, 'test')`);
  const workflowId = X.insertWorkflow(llmWorkflow(llm.url), { userId: user });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: user });
  await s.waitFor('completed', executionId);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'completed', got.execution.error_message);
  assert.equal(llm.seen.length, 1);
  assert.equal(llm.seen[0].auth, `Bearer ${PLAINTEXT}`);
  const stderr = w.stderr;
  assert.ok(!stderr.includes(PLAINTEXT), 'the key never appears in the logs');
});

test('API keys: a wrong master key fails the node with a clear error, no secret in logs or rows', async (t) => {
  const llm = await fakeLlm(t);
  const wrongMaster = 'not-the-master-key';
  const s = await scenario(t, { major: 5,
    env: X.workerEnv({ REX_HTTP_ALLOWLIST: '127.0.0.1', ENCRYPTION_MASTER_KEY: wrongMaster, LOG_LEVEL: 'debug' }),
    start: false });
  const w = await s.start();
  const user = crypto.randomUUID();
  X.ensureUser(user);
  X.psql(`INSERT INTO api_keys (user_id, provider, encrypted_key, label) VALUES
    (${X.lit(user)}, 'openai', ${X.lit(STORED_KEY)}, 'test')`);
  const workflowId = X.insertWorkflow(llmWorkflow(llm.url), { userId: user });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: user });
  await s.waitFor('completed', executionId);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'failed');
  assert.match(got.execution.error_message, /openai API key cannot be decrypted/);
  assert.match(got.execution.error_message, /wrong ENCRYPTION_MASTER_KEY/);
  assert.equal(llm.seen.length, 0);
  const everything = w.stderr + JSON.stringify(got);
  for (const secret of [PLAINTEXT, STORED_KEY, wrongMaster, 'gGl1X2+2P4NtE8HWMKa4v60i']) {
    assert.ok(!everything.includes(secret), `secret leaked: ${secret}`);
  }
});

test('alert rules: a latency-breach rule inserts an alert event after the final status', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const user = crypto.randomUUID();
  X.ensureUser(user);
  const workflowId = X.insertWorkflow(linear([
    { id: 't', type: 'manual-trigger', config: {} },
    { id: 'w', type: 'test-sleep', config: { ms: 60 } },
  ]), { userId: user });
  X.psql(`INSERT INTO alert_rules (user_id, workflow_id, rule_type, severity, threshold) VALUES
    (${X.lit(user)}, ${X.lit(workflowId)}, 'latency-breach', 'critical', 50),
    (${X.lit(user)}, NULL, 'latency-breach', 'warn', 100000)`);
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: user });
  await s.waitFor('completed', executionId);
  const events = X.rows(`SELECT rule_type, severity, message, payload, workflow_id FROM alert_events
    WHERE user_id = ${X.lit(user)}`);
  assert.deepEqual(events, [{ rule_type: 'latency-breach', severity: 'critical',
    message: `Latency threshold breached on execution ${executionId}`,
    payload: { executionId, thresholdMs: 50 }, workflow_id: workflowId }]);
});
