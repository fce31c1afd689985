// Basic outcomes seen by a Node producer and QueueEvents: return values, failures, progress and
// logs, bad input, big payloads, worker listing.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario, IMPL } = require('../lib/worker');

test('return values reach QueueEvents and the job hash', async (t) => {
  const s = await scenario(t);
  const data = { text: 'héllo 😀', n: 1.5, list: [1, 2, 3], nested: { ok: true } };
  const job = await s.queue.add('echo', data);
  const ev = await s.waitFor('completed', job.id);
  assert.deepEqual(ev.returnvalue, { echoed: data, attemptsMade: 0, name: 'echo' });
  const back = await s.job(job.id);
  assert.deepEqual(back.returnvalue, ev.returnvalue);
  assert.equal(back.attemptsMade, 1);
  assert.ok(back.finishedOn >= back.processedOn && back.processedOn >= back.timestamp);
  assert.equal(await back.getState(), 'completed');
  // the stream order BullMQ documents for one job
  const order = s.events.filter((e) => e.jobId === job.id).map((e) => e.event);
  assert.deepEqual(order.filter((e) => e !== 'progress'), ['added', 'waiting', 'active', 'completed']);
});

test('a thrown error becomes failedReason, with a stacktrace entry', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail', { message: 'it went wrong' });
  const ev = await s.waitFor('failed', job.id);
  assert.equal(ev.failedReason, 'it went wrong');
  const back = await s.job(job.id);
  assert.equal(back.failedReason, 'it went wrong');
  assert.equal(back.stacktrace.length, 1);
  assert.match(back.stacktrace[0], /it went wrong/);
  assert.equal(await back.getState(), 'failed');
});

test('progress values and log lines are seen by Node', async (t) => {
  const s = await scenario(t);
  const values = [10, { pct: 50, stage: 'b' }, 'almost', true];
  const job = await s.queue.add('progress', { values });
  await s.waitFor('completed', job.id);
  assert.deepEqual(s.of('progress', job.id).map((e) => e.data), values);
  const logs = await s.queue.getJobLogs(job.id);
  assert.deepEqual(logs.logs, ['step 1', 'step 2', 'step 3', 'step 4']);
  assert.deepEqual((await s.job(job.id)).progress, true);
});

test('keepLogs trims the job log', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('progress', { values: [1, 2, 3, 4, 5] }, { keepLogs: 2 });
  await s.waitFor('completed', job.id);
  assert.deepEqual((await s.queue.getJobLogs(job.id)).logs, ['step 4', 'step 5']);
});

test('bad input fails the job clearly and the worker keeps going', async (t) => {
  const s = await scenario(t, { start: false });
  const unknown = await s.queue.add('no-such-job', { a: 1 }, { attempts: 3 });
  const arrayData = await s.queue.add('echo', [1, 2], { attempts: 3 });
  const badJson = await s.queue.add('echo', { a: 1 }, { attempts: 3 });
  await s.redis.hset(`bull:${s.name}:${badJson.id}`, 'data', '{"a": tru');
  const badReturn = await s.queue.add('bad-return', {});
  const throwTable = await s.queue.add('throw-table', {});
  const after = await s.queue.add('echo', { still: 'alive' });
  await s.start();

  const u = await s.waitFor('failed', unknown.id);
  assert.equal(u.failedReason, 'Unknown job name: no-such-job');
  assert.equal((await s.job(unknown.id)).attemptsMade, 1, 'unknown names are not retried');

  const a = await s.waitFor('failed', arrayData.id);
  assert.match(a.failedReason, /job data must be a JSON object/);
  assert.equal((await s.job(arrayData.id)).attemptsMade, 1);

  const b = await s.waitFor('failed', badReturn.id);
  assert.match(b.failedReason, /JSON|serialize/i);

  const tt = await s.waitFor('failed', throwTable.id);
  assert.ok(typeof tt.failedReason === 'string' || tt.failedReason === undefined);

  if (IMPL === 'rex') {
    const j = await s.waitFor('failed', badJson.id);
    assert.match(j.failedReason, /job data is not valid JSON/);
    assert.equal(await s.redis.hget(`bull:${s.name}:${badJson.id}`, 'atm'), '1');
    assert.match(tt.failedReason, /error object \(table\)/);
  }
  const ok = await s.waitFor('completed', after.id);
  assert.deepEqual(ok.returnvalue.echoed, { still: 'alive' });
});

test('a 10 MB payload is processed', async (t) => {
  const s = await scenario(t);
  const blob = 'x'.repeat(10 * 1024 * 1024);
  const job = await s.queue.add('size', { blob });
  const ev = await s.waitFor('completed', job.id, 30000);
  assert.deepEqual(ev.returnvalue, { length: blob.length });
});

test('Queue.getWorkers lists the worker by name', async (t) => {
  const s = await scenario(t, { env: { WORKER_NAME: 'w-interop' } });
  const workers = await s.queue.getWorkers();
  const want = `bull:${Buffer.from(s.name).toString('base64')}:w:w-interop`;
  assert.ok(workers.some((w) => w.rawname === want), JSON.stringify(workers.map((w) => w.rawname)));
  assert.equal(await s.queue.getWorkersCount(), 1);
  const job = await s.queue.add('echo', {});
  await s.waitFor('completed', job.id);
  assert.equal((await s.job(job.id)).processedBy, 'w-interop');
});

test('the drained event is written once when the queue empties', async (t) => {
  const s = await scenario(t);
  // one atomic add, so the worker cannot drain the queue between two adds
  await s.queue.addBulk([0, 1, 2].map((i) => ({ name: 'echo', data: { i } })));
  await s.waitCount('completed', 3);
  await s.waitFor('drained');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(s.of('drained').length, 1);
});

test('a hash-tag prefix ({bull}) works end to end', async (t) => {
  const { openQueue, uniqueQueueName, connection, rawRedis } = require('../lib/harness');
  const { startWorker } = require('../lib/worker');
  const name = uniqueQueueName('tag');
  const q = await openQueue(6, name, { prefix: '{bull}' });
  const w = await startWorker(name, { BULL_PREFIX: '{bull}' });
  t.after(async () => { await w.stop('SIGKILL'); await q.obliterate({ force: true }); await q.close(); });
  const job = await q.add('echo', { tagged: true });
  const qe = new (require('bullmq').QueueEvents)(name, { connection: connection(), prefix: '{bull}' });
  t.after(() => qe.close());
  const done = await job.waitUntilFinished(qe, 10000);
  assert.deepEqual(done.echoed, { tagged: true });
  const raw = rawRedis();
  const keys = await raw.keys(`*${name}*`);
  raw.disconnect();
  assert.ok(keys.length > 0 && keys.every((k) => k.startsWith('{bull}:')), keys.join(' '));
});

test('a REX job without DATABASE_URL fails without retries, saying so', { skip: IMPL === 'node' && 'rex-worker specific' }, async (t) => {
  const s = await scenario(t, { env: { DATABASE_URL: '' } });
  const job = await s.queue.add('ingest-knowledge-document', { documentId: 'd' }, { attempts: 3 });
  const ev = await s.waitFor('failed', job.id);
  assert.match(ev.failedReason, /ingest-knowledge-document needs DATABASE_URL/);
  assert.equal((await s.job(job.id)).attemptsMade, 1);
});
