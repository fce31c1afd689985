// The three REX fixtures enqueued exactly as REX's backend does (bullmq 5.x, executions and
// authorization rows first), run by `rex-worker serve`, compared with what the original Node
// worker persisted (original-persisted-rows.json): statuses, order, attempts, snapshot sequences
// and reasons, inputs, outputs, messages. Differences decided in decisions.md are asserted too:
// w1 runs its transformer expression in Lua (spec/fixtures/w1-oracle-pipeline-branch-lua.json);
// snapshot rows carry the tenant id (the original's schema had none).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const { ROOT } = require('../lib/harness');
const { scenario } = require('../lib/worker');
const X = require('./lib');

const ORIGINAL = JSON.parse(fs.readFileSync(path.join(X.FIXTURES, 'original-persisted-rows.json'), 'utf8'));
const USER = '11111111-1111-4111-8111-111111111111';

const VOLATILE = new Set(['timestamp', 'collectedAt', 'ingestedAt', 'durationMs', 'corpusId',
  'documentId', 'chunkId', 'executionId', 'updatedAt', 'startedAt', 'capturedAt', 'readAt',
  'evaluatedAt', 'storedAt']);

function normalize(v, dropMatches) {
  if (Array.isArray(v)) return v.map((x) => normalize(x, dropMatches));
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) {
      if (VOLATILE.has(k) || (dropMatches && k === 'matches')) continue;
      out[k] = normalize(v[k], dropMatches);
    }
    return out;
  }
  return v;
}

const CASES = [
  { name: 'w1-oracle-pipeline-branch', file: path.join(ROOT, 'spec', 'fixtures', 'w1-oracle-pipeline-branch-lua.json') },
  { name: 'w2-oracle-knowledge', file: path.join(X.FIXTURES, 'w2-oracle-knowledge.json'), dropMatches: true },
  { name: 'w4-oracle-failing-retry', file: path.join(X.FIXTURES, 'w4-oracle-failing-retry.json') },
];

test.before(() => X.migrate());

for (const c of CASES) {
  test(`${c.name}: persisted rows match the original's`, async (t) => {
    const orig = ORIGINAL[c.name];
    const s = await scenario(t, { major: 5, env: X.workerEnv() });
    const wf = X.loadFixture(c.file);
    // the workflow keeps its fixture id (the scope ids inside w2 refer to it)
    X.psql(`DELETE FROM workflows WHERE id = ${X.lit(wf.id)}`);
    const workflowId = X.insertWorkflow(wf, { userId: USER, id: wf.id });
    const { executionId, executionAuthorizationId } = await X.trigger(s.queue,
      { workflowId, userId: USER, payload: wf.samplePayload, domainConfig: {} });
    const ev = await s.waitFor('completed', executionId, 20000);
    assert.equal(ev.returnvalue, null);
    const got = X.persisted(executionId);

    // execution row
    const oe = orig.execution;
    assert.equal(got.execution.status, oe.status);
    assert.equal(got.execution.error_message, oe.error_message);
    assert.deepEqual(got.execution.trigger_payload, oe.trigger_payload);
    assert.equal(got.execution.has_started_at, true);
    assert.equal(got.execution.has_finished_at, true);
    assert.equal(got.execution.tenant_id, oe.tenant_id);

    // authorization validated, not revoked
    const [auth] = X.rows(`SELECT action, attributes, revoked, validated_at IS NOT NULL AS validated
      FROM execution_authorizations WHERE id = ${X.lit(executionAuthorizationId)}`);
    assert.deepEqual(auth, orig.authorization);

    // steps: order, statuses, errors, inputs, outputs, tenant
    assert.deepEqual(got.steps.map((r) => [r.node_id, r.node_type, r.status, r.error]),
      orig.steps.map((r) => [r.node_id, r.node_type, r.status, r.error]));
    for (let i = 0; i < orig.steps.length; i++) {
      assert.deepEqual(normalize(got.steps[i].input, c.dropMatches),
        normalize(orig.steps[i].input, c.dropMatches), `input of ${orig.steps[i].node_id}`);
      assert.deepEqual(normalize(got.steps[i].output, c.dropMatches),
        normalize(orig.steps[i].output, c.dropMatches), `output of ${orig.steps[i].node_id}`);
      assert.equal(got.steps[i].tenant_id, orig.steps[i].tenant_id);
      assert.ok(Number.isInteger(got.steps[i].duration_ms));
    }

    // attempts
    assert.deepEqual(got.attempts.map((a) => [a.node_id, a.node_type, a.attempt, a.status, a.reason]),
      orig.attempts.map((a) => [a.node_id, a.node_type, a.attempt, a.status, a.reason]));

    // snapshots: sequences, reasons, nodes; the final state's stable parts
    assert.deepEqual(got.snapshots.map((r) => [r.sequence, r.reason, r.node_id, r.node_type]),
      orig.snapshots.map((r) => [r.sequence, r.reason, r.node_id, r.node_type]));
    const gf = got.snapshots[got.snapshots.length - 1].state;
    const of = orig.snapshots[orig.snapshots.length - 1].state;
    assert.equal(gf.version, of.version);
    assert.deepEqual(gf.control, of.control);
    assert.deepEqual(Object.keys(gf.memory).sort(), Object.keys(of.memory).sort());
    assert.deepEqual(normalize(gf.memory.triggerPayload), normalize(of.memory.triggerPayload));
    assert.deepEqual(gf.retrieval.totalRequests, of.retrieval.totalRequests);
    // decision: snapshot rows carry the workflow's tenant
    for (const r of got.snapshots) assert.equal(r.tenant_id, X.TENANT);

    // retrieval events (ids of runtime corpora differ run to run)
    const strip = (e) => {
      const o = { ...e };
      delete o.corpus_id;
      delete o.duration_ms;
      return o;
    };
    assert.deepEqual(got.retrievalEvents.map(strip), orig.retrievalEvents.map(strip));
    for (const e of got.retrievalEvents) assert.match(e.corpus_id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(got.guardrailEvents, orig.guardrailEvents);
  });
}

test('the original w1 (JavaScript expression) fails at validation before any node runs', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const wf = X.loadFixture('w1-oracle-pipeline-branch');
  const workflowId = X.insertWorkflow(wf, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: wf.samplePayload });
  await s.waitFor('completed', executionId, 20000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'failed');
  assert.match(got.execution.error_message, /Lua, not JavaScript/);
  assert.equal(got.steps.length, 0);
});
