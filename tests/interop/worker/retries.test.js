// Attempts, backoff timing, retries-exhausted, unrecoverable errors.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('../lib/worker');

test('fixed backoff: retried after the delay, then failed with retries-exhausted', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail', {}, { attempts: 3, backoff: { type: 'fixed', delay: 400 } });
  const failed = await s.waitFor('failed', job.id);
  assert.equal(failed.failedReason, 'boom 2');
  const ex = await s.waitFor('retries-exhausted', job.id);
  assert.equal(Number(ex.attemptsMade), 3);
  const actives = s.of('active', job.id).map((e) => e.at);
  assert.equal(actives.length, 3);
  for (let i = 1; i < 3; i++) {
    const gap = actives[i] - actives[i - 1];
    assert.ok(gap >= 380 && gap < 2000, `retry ${i} came after ${gap} ms`);
  }
  const delayed = s.of('delayed', job.id);
  assert.equal(delayed.length, 2);
  const back = await s.job(job.id);
  assert.equal(back.attemptsMade, 3);
  assert.equal(back.stacktrace.length, 3);
  assert.equal(s.of('failed', job.id).length, 1, 'retried attempts write no failed event');
});

test('exponential backoff doubles the delay', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail', {}, { attempts: 3, backoff: { type: 'exponential', delay: 300 } });
  await s.waitFor('retries-exhausted', job.id);
  const a = s.of('active', job.id).map((e) => e.at);
  const g1 = a[1] - a[0];
  const g2 = a[2] - a[1];
  assert.ok(g1 >= 280 && g1 < 1500, `first retry after ${g1} ms`);
  assert.ok(g2 >= 580 && g2 < 2500, `second retry after ${g2} ms`);
});

test('no backoff: immediate retries; success on a later attempt completes the job', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail-until', { succeedAt: 2 }, { attempts: 5 });
  const ev = await s.waitFor('completed', job.id);
  assert.deepEqual(ev.returnvalue, { succeededAt: 2 });
  assert.equal(s.of('failed', job.id).length, 0);
  assert.equal(s.of('retries-exhausted', job.id).length, 0);
  const back = await s.job(job.id);
  assert.equal(back.attemptsMade, 3);
  assert.equal(back.failedReason, 'not yet 1', 'failedReason is kept across retries');
});

test('an unrecoverable error is not retried and does not exhaust retries', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('unrecoverable', { message: 'fatal input' }, { attempts: 5, backoff: 100 });
  const ev = await s.waitFor('failed', job.id);
  assert.equal(ev.failedReason, 'fatal input');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(s.of('retries-exhausted', job.id).length, 0);
  assert.equal((await s.job(job.id)).attemptsMade, 1);
});

test('attempts unset: the first failure exhausts retries', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail', {});
  const ex = await s.waitFor('retries-exhausted', job.id);
  assert.equal(Number(ex.attemptsMade), 1);
});
