// The same worker behind a bullmq 5.x producer and QueueEvents (the version REX's backend pins):
// REX's own job options, return values, retries, delays, priorities, progress.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('../lib/worker');

const REX_OPTS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};

test('5.x: a job with REX options completes with its return value', async (t) => {
  const s = await scenario(t, { major: 5 });
  const job = await s.queue.add('echo', { executionId: 'e-1' }, { ...REX_OPTS, jobId: 'e-1' });
  assert.equal(job.id, 'e-1');
  const ev = await s.waitFor('completed', 'e-1');
  assert.deepEqual(ev.returnvalue.echoed, { executionId: 'e-1' });
  assert.equal((await s.job('e-1')).attemptsMade, 1);
});

test('5.x: retries with exponential backoff, then failed', async (t) => {
  const s = await scenario(t, { major: 5 });
  const job = await s.queue.add('fail', { message: 'db down' }, REX_OPTS);
  const ev = await s.waitFor('failed', job.id, 10000);
  assert.equal(ev.failedReason, 'db down');
  await s.waitFor('retries-exhausted', job.id);
  assert.equal(s.of('active', job.id).length, 3);
  assert.equal((await s.job(job.id)).attemptsMade, 3);
});

test('5.x: delayed and prioritized jobs', async (t) => {
  const s = await scenario(t, { major: 5, start: false, env: { WORKER_CONCURRENCY: '1' } });
  const t0 = Date.now();
  const d = await s.queue.add('echo', { k: 'delayed' }, { delay: 800 });
  await s.queue.add('echo', { k: 'p2' }, { priority: 2 });
  await s.queue.add('echo', { k: 'p1' }, { priority: 1 });
  await s.start();
  const done = await s.waitCount('completed', 3, 10000);
  assert.deepEqual(done.map((e) => e.returnvalue.echoed.k), ['p1', 'p2', 'delayed']);
  assert.ok(s.of('active', d.id)[0].at - t0 >= 750);
});

test('5.x: progress and logs', async (t) => {
  const s = await scenario(t, { major: 5 });
  const job = await s.queue.add('progress', { values: [25, { half: true }] });
  await s.waitFor('completed', job.id);
  assert.deepEqual(s.of('progress', job.id).map((e) => e.data), [25, { half: true }]);
  assert.deepEqual((await s.queue.getJobLogs(job.id)).logs, ['step 1', 'step 2']);
});
