// "No half-written execution left `running` forever": PostgreSQL down across every attempt of a
// job. The last attempt cannot write the final status, so it is journaled in Redis under the
// queue's keys (`<prefix>:<queue>:rex:pending-final`, see lua/rex/execution.lua); once PostgreSQL
// is back, the next execute-workflow job of the queue applies it, or an idle worker does within
// REX_IDLE_INTERVAL_MS. And a job BullMQ fails without running it (the stalled limit, after the
// worker running it died) ends its execution too. Asserted on the persisted row and on the Redis
// hash; every wait is bounded.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { ROOT } = require('../lib/harness');
const { scenario, sleep } = require('../lib/worker');
const X = require('./lib');

const USER = '44444444-4444-4444-8444-444444444444';
const SERVICES = path.join(ROOT, 'scripts', 'services.sh');

const SLOW = {
  name: 'pending-final',
  nodes: [
    { id: 'trigger', type: 'manual-trigger', config: {} },
    { id: 'wait1', type: 'test-sleep', config: { ms: 300 } },
    { id: 'wait2', type: 'test-sleep', config: { ms: 1500 } },
    { id: 'out', type: 'output', config: {} },
  ],
  edges: [
    { source: 'trigger', target: 'wait1' }, { source: 'wait1', target: 'wait2' },
    { source: 'wait2', target: 'out' },
  ],
};
const QUICK = {
  name: 'quick',
  nodes: [{ id: 'trigger', type: 'manual-trigger', config: {} }, { id: 'out', type: 'output', config: {} }],
  edges: [{ source: 'trigger', target: 'out' }],
};

let pgStopped = false;
function stopPostgres() {
  execFileSync(SERVICES, ['stop-postgres', process.env.REX_SERVICES_DIR], { stdio: 'ignore' });
  pgStopped = true;
}
function startPostgres() {
  if (!pgStopped) return;
  execFileSync(SERVICES, ['start-postgres', process.env.REX_SERVICES_DIR], { stdio: 'ignore', timeout: 60000 });
  pgStopped = false;
}

// these tests show the next job applying the journal: the idle call must not come first
const NO_IDLE = { REX_IDLE_INTERVAL_MS: '86400000' };

const journalKey = (s) => `bull:${s.name}:rex:pending-final`;

// Another job of the same queue, run once PostgreSQL is back: it applies the journal.
async function nudge(s) {
  const workflowId = X.insertWorkflow(QUICK, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER });
  await s.waitFor('completed', executionId, 15000);
}

test.before(() => X.migrate());
test.after(() => startPostgres()); // never leave the shared PostgreSQL down

test('PostgreSQL down across all attempts mid-run: the running row ends failed once it is back', async (t) => {
  if (!process.env.REX_SERVICES_DIR) return t.skip('REX_SERVICES_DIR is not set');
  t.after(() => startPostgres());
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '1', ...NO_IDLE }), start: false });
  const w = await s.start();
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { a: 1 } });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'wait1'`);
  const before = X.persisted(executionId).execution;
  assert.equal(before.status, 'running');
  stopPostgres();
  const downAt = Date.now();

  // three attempts (REX's options: exponential backoff 2 s): all fail, the job fails for good
  const failed = await s.waitFor('failed', executionId, 30000);
  assert.match(failed.failedReason, /PostgreSQL|connection|server closed/i);
  const job = await s.job(executionId);
  assert.equal(job.attemptsMade, 3);
  const entry = JSON.parse(await s.redis.hget(journalKey(s), executionId));
  assert.equal(entry.status, 'failed');
  assert.equal(entry.jobId, executionId);
  assert.equal(entry.attempts, 3);
  assert.ok(entry.at >= downAt && entry.at <= Date.now(), `journal time ${entry.at}`);
  assert.match(entry.error, /after 3 attempts; the failure was recorded while PostgreSQL was unreachable/);
  // only the last attempt journals (earlier ones are retried by BullMQ)
  assert.equal(w.stderr.split('\n').filter((l) => l.includes('kept in Redis until PostgreSQL answers')).length, 1);

  startPostgres();
  const upAt = Date.now();
  // the row is still `running` until a job of the queue runs again
  assert.equal(X.persisted(executionId).execution.status, 'running');
  await nudge(s);
  const [row] = await X.waitRow(`SELECT status, error_message, finished_at IS NOT NULL AS has_finished_at,
    extract(epoch FROM finished_at) * 1000 AS finished_ms FROM executions WHERE id = ${X.lit(executionId)}`,
  (r) => r.length === 1 && r[0].status === 'failed', 15000);
  assert.equal(row.has_finished_at, true);
  assert.match(row.error_message, /^Execution failed after 3 attempts; the failure was recorded while PostgreSQL was unreachable: /);
  // finished_at is when the job failed, not when the journal was applied
  assert.ok(Math.abs(Number(row.finished_ms) - entry.at) < 1000, `finished_at ${row.finished_ms} vs ${entry.at}`);
  assert.ok(Number(row.finished_ms) < upAt + 1000);
  assert.equal(await s.redis.hexists(journalKey(s), executionId), 0, 'the journal entry is removed');
  await w.waitLog(/Pending final status applied to execution/);
});

test('PostgreSQL down before pickup across all attempts: the pending row ends failed', async (t) => {
  if (!process.env.REX_SERVICES_DIR) return t.skip('REX_SERVICES_DIR is not set');
  t.after(() => startPostgres());
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '1', ...NO_IDLE }), start: false });
  const workflowId = X.insertWorkflow(QUICK, { userId: USER });
  // REX's backend inserted the rows and queued the job; then PostgreSQL went away
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER });
  stopPostgres();
  const w = await s.start();
  const failed = await s.waitFor('failed', executionId, 30000);
  assert.match(failed.failedReason, /PostgreSQL unavailable/);
  await w.waitLog(/kept in Redis until PostgreSQL answers/);
  assert.ok(await s.redis.hexists(journalKey(s), executionId));
  startPostgres();
  assert.equal(X.persisted(executionId).execution.status, 'pending');
  await nudge(s);
  const got = X.persisted(executionId).execution;
  assert.equal(got.status, 'failed');
  assert.equal(got.has_finished_at, true);
  assert.match(got.error_message, /after 3 attempts; the failure was recorded while PostgreSQL was unreachable: PostgreSQL unavailable/);
  assert.equal(await s.redis.hexists(journalKey(s), executionId), 0);
});

test('a journaled execution that moved on (canceled meanwhile) is left as it is', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '1' }) });
  const workflowId = X.insertWorkflow(QUICK, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, status: 'canceled' });
  await s.waitFor('completed', executionId, 15000);
  // an entry as a failed last attempt writes it; the user canceled the run in the meantime
  await s.redis.hset(journalKey(s), executionId, JSON.stringify({ status: 'failed', jobId: executionId,
    attempts: 3, at: Date.now(), error: 'Execution failed after 3 attempts; test' }));
  await s.redis.hset(journalKey(s), 'not-a-uuid', '{}');
  await sleep(1100); // a worker thread reads the journal at most once a second
  await nudge(s);
  const got = X.persisted(executionId).execution;
  assert.equal(got.status, 'canceled');
  assert.equal(await s.redis.hlen(journalKey(s)), 0, 'applied or dropped entries are removed');
});

// MAX_STALLED_COUNT 0: the first stall is already one too many. The worker running the execution
// is SIGKILLed mid-run; the stalled check marks the job (`defa`), the next worker fetches it and
// fails it without running it, as BullMQ does. The handler's failed_without_run ends the row.
async function killMidRun(t, extraEnv) {
  const env = X.workerEnv({ WORKER_CONCURRENCY: '1', LOCK_DURATION_MS: '1000',
    STALLED_INTERVAL_MS: '500', MAX_STALLED_COUNT: '0', ...extraEnv });
  const s = await scenario(t, { major: 5, env, start: false });
  const a = await s.start();
  const workflowId = X.insertWorkflow(SLOW, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { a: 1 } });
  await X.waitRow(`SELECT 1 FROM execution_steps WHERE execution_id = ${X.lit(executionId)} AND node_id = 'wait1'`);
  await a.stop('SIGKILL');
  assert.equal(X.persisted(executionId).execution.status, 'running');
  return { s, executionId };
}

test('a job failed for the stalled limit without running: its running execution ends failed', async (t) => {
  const { s, executionId } = await killMidRun(t, NO_IDLE);
  const b = await s.start();
  const failed = await s.waitFor('failed', executionId, 15000);
  assert.equal(failed.failedReason, 'job stalled more than allowable limit');
  const [row] = await X.waitRow(`SELECT status, error_message, finished_at IS NOT NULL AS has_finished_at
    FROM executions WHERE id = ${X.lit(executionId)}`, (r) => r.length === 1 && r[0].status === 'failed', 10000);
  assert.equal(row.error_message, 'Execution failed: job stalled more than allowable limit');
  assert.equal(row.has_finished_at, true);
  await b.waitLog(/Execution failed: its job failed without running/);
  // the steps the killed attempt wrote stay: the record of what ran before it died
  assert.ok(X.persisted(executionId).steps.some((r) => r.node_id === 'wait1'));
  const job = await s.job(executionId);
  assert.equal(job.attemptsMade, 1);
  assert.equal(s.of('completed', executionId).length, 0);
});

test('the same with PostgreSQL down: journaled, then applied by an idle worker without a new job', async (t) => {
  if (!process.env.REX_SERVICES_DIR) return t.skip('REX_SERVICES_DIR is not set');
  t.after(() => startPostgres());
  const { s, executionId } = await killMidRun(t, { REX_IDLE_INTERVAL_MS: '300' });
  stopPostgres();
  const b = await s.start();
  const failed = await s.waitFor('failed', executionId, 15000);
  assert.equal(failed.failedReason, 'job stalled more than allowable limit');
  const entry = JSON.parse(await s.redis.hget(journalKey(s), executionId));
  assert.equal(entry.attempts, 1);
  assert.match(entry.error, /^Execution failed after 1 attempt; the failure was recorded while PostgreSQL was unreachable: job stalled more than allowable limit$/);
  await b.waitLog(/PostgreSQL did not take the final status of an execution whose job failed without running/);
  startPostgres();
  // no job is added: the idle worker applies the journal on its own
  const [row] = await X.waitRow(`SELECT status, error_message FROM executions WHERE id = ${X.lit(executionId)}`,
    (r) => r.length === 1 && r[0].status === 'failed', 15000);
  assert.equal(row.error_message, entry.error);
  assert.equal(await s.redis.hexists(journalKey(s), executionId), 0, 'the journal entry is removed');
  await b.waitLog(/Pending final status applied to execution/);
});

// A corpus being ingested with one document in the given status, owned by USER.
function documentInCorpus(status) {
  X.ensureUser(USER);
  const corpusId = crypto.randomUUID();
  const documentId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name, status) VALUES (${X.lit(corpusId)},
    ${X.lit(X.TENANT)}, ${X.lit(USER)}, 'journal corpus', 'ingesting')`);
  X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text, status)
    VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(USER)}, 'd', 'Some text.',
    ${X.lit(status)})`);
  return { corpusId, documentId };
}

// The same guarantee for ingest-knowledge-document: a document must not stay `pending` or
// `processing` when its job fails for good while PostgreSQL is down.
test('an ingestion job with PostgreSQL down across all attempts: its document ends failed once it is back', async (t) => {
  if (!process.env.REX_SERVICES_DIR) return t.skip('REX_SERVICES_DIR is not set');
  t.after(() => startPostgres());
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '1', REX_IDLE_INTERVAL_MS: '300' }), start: false });
  const { corpusId, documentId } = documentInCorpus('pending');
  const jobId = `ingest-${documentId}`;
  await s.queue.add('ingest-knowledge-document', { corpusId, documentId, userId: USER }, { ...X.REX_JOB_OPTS, jobId });
  stopPostgres();
  const downAt = Date.now();
  const w = await s.start();
  const failed = await s.waitFor('failed', jobId, 30000);
  assert.match(failed.failedReason, /PostgreSQL unavailable/);
  assert.equal((await s.job(jobId)).attemptsMade, 3);
  const key = `bull:${s.name}:rex:pending-final-documents`;
  const entry = JSON.parse(await s.redis.hget(key, documentId));
  assert.equal(entry.corpusId, corpusId);
  assert.equal(entry.jobId, jobId);
  assert.ok(entry.at >= downAt && entry.at <= Date.now(), `journal time ${entry.at}`);
  assert.match(entry.error, /^PostgreSQL unavailable: .* \(recorded while PostgreSQL was unreachable\)$/s);
  // only the last attempt journals (earlier ones are retried by BullMQ)
  assert.equal(w.stderr.split('\n').filter((l) => l.includes('Knowledge document failure kept in Redis')).length, 1);

  startPostgres();
  // no job is added: the idle worker applies the journal on its own
  const [doc] = await X.waitRow(`SELECT status, error, extract(epoch FROM updated_at) * 1000 AS updated_ms
    FROM knowledge_documents WHERE id = ${X.lit(documentId)}`, (r) => r.length === 1 && r[0].status === 'failed', 15000);
  assert.equal(doc.error, entry.error);
  assert.ok(Math.abs(Number(doc.updated_ms) - entry.at) < 1000, 'updated_at is when the job failed');
  assert.equal(X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`)[0].status, 'failed');
  assert.equal(await s.redis.hexists(key, documentId), 0, 'the journal entry is removed');
  await w.waitLog(/Pending failure applied to knowledge document/);
});

// The periodic idle() call also runs on a busy worker: a queue kept busy with executions (no
// ingestion job coming) still applies the document journal.
test('a busy worker applies the document journal too (idle() does not wait for the queue to empty)', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '2', REX_IDLE_INTERVAL_MS: '300' }), start: false });
  const { corpusId, documentId } = documentInCorpus('processing');
  const w = await s.start();
  const BUSY = {
    name: 'busy',
    nodes: [{ id: 'trigger', type: 'manual-trigger', config: {} }, { id: 'wait', type: 'test-sleep', config: { ms: 4000 } },
      { id: 'out', type: 'output', config: {} }],
    edges: [{ source: 'trigger', target: 'wait' }, { source: 'wait', target: 'out' }],
  };
  const workflowId = X.insertWorkflow(BUSY, { userId: USER });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER });
  await X.waitRow(`SELECT 1 FROM executions WHERE id = ${X.lit(executionId)} AND status = 'running'`);
  // as a last ingestion attempt writes it while PostgreSQL is down
  await s.redis.hset(`bull:${s.name}:rex:pending-final-documents`, documentId, JSON.stringify({
    corpusId, jobId: `ingest-${documentId}`, at: Date.now(), error: 'Ingestion failed (test)' }));
  const [doc] = await X.waitRow(`SELECT status, error FROM knowledge_documents WHERE id = ${X.lit(documentId)}`,
    (r) => r.length === 1 && r[0].status === 'failed', 3000);
  assert.equal(doc.error, 'Ingestion failed (test)');
  // applied while the execution still ran: the worker was busy all along
  assert.equal(X.persisted(executionId).execution.status, 'running');
  assert.equal(s.of('completed', executionId).length, 0);
  assert.equal(X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`)[0].status, 'failed');
  await w.waitLog(/Pending failure applied to knowledge document/);
  await s.waitFor('completed', executionId, 15000);
});
