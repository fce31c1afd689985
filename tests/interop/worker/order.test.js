// What runs when: delays, priorities, LIFO, pause/resume (6.x flag and a 5.x producer's
// rename), the rate limiter.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario, sleep } = require('../lib/worker');

test('a delayed job runs after its delay, not before', async (t) => {
  const s = await scenario(t);
  const added = Date.now();
  const job = await s.queue.add('echo', { d: 1 }, { delay: 1200 });
  const first = await s.queue.add('echo', { d: 0 });
  await s.waitFor('completed', first.id);
  assert.equal(await (await s.job(job.id)).getState(), 'delayed');
  const active = await s.waitFor('active', job.id, 8000);
  assert.ok(active.at - added >= 1150, `ran after ${active.at - added} ms`);
  await s.waitFor('completed', job.id);
});

test('priorities: lower numbers first, FIFO within a priority, plain jobs before prioritized', async (t) => {
  const s = await scenario(t, { start: false, env: { WORKER_CONCURRENCY: '1' } });
  const ids = {};
  ids.p5a = (await s.queue.add('echo', { k: 'p5a' }, { priority: 5 })).id;
  ids.p1 = (await s.queue.add('echo', { k: 'p1' }, { priority: 1 })).id;
  ids.plain = (await s.queue.add('echo', { k: 'plain' })).id;
  ids.p5b = (await s.queue.add('echo', { k: 'p5b' }, { priority: 5 })).id;
  ids.p3 = (await s.queue.add('echo', { k: 'p3' }, { priority: 3 })).id;
  await s.start();
  const done = await s.waitCount('completed', 5);
  assert.deepEqual(done.map((e) => e.returnvalue.echoed.k), ['plain', 'p1', 'p3', 'p5a', 'p5b']);
});

test('LIFO jobs run before the others', async (t) => {
  const s = await scenario(t, { start: false, env: { WORKER_CONCURRENCY: '1' } });
  await s.queue.add('echo', { k: 'a' });
  await s.queue.add('echo', { k: 'b' });
  await s.queue.add('echo', { k: 'c' }, { lifo: true });
  await s.start();
  const done = await s.waitCount('completed', 3);
  assert.deepEqual(done.map((e) => e.returnvalue.echoed.k), ['c', 'a', 'b']);
});

for (const major of [6, 5]) {
  test(`pause holds jobs until resume (bullmq ${major} producer)`, async (t) => {
    const s = await scenario(t, { major });
    await s.queue.pause();
    const job = await s.queue.add('echo', { paused: true });
    await sleep(1500);
    assert.equal(s.of('active', job.id).length, 0, 'nothing runs while paused');
    await s.queue.resume();
    await s.waitFor('completed', job.id, 10000);
  });
}

test('a retry that comes due while the queue is paused waits for the resume', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('fail-until', { succeedAt: 1 }, { attempts: 2, backoff: 500 });
  await s.waitFor('delayed', job.id);
  await s.queue.pause();
  await sleep(1500);
  assert.equal(s.of('completed', job.id).length, 0);
  assert.equal(s.of('active', job.id).length, 1);
  await s.queue.resume();
  const ev = await s.waitFor('completed', job.id, 10000);
  assert.deepEqual(ev.returnvalue, { succeededAt: 1 });
});

test('the worker rate limiter spaces jobs out', async (t) => {
  const s = await scenario(t, { start: false, env: { WORKER_LIMITER_MAX: '2', WORKER_LIMITER_DURATION_MS: '1000' } });
  for (let i = 0; i < 6; i++) await s.queue.add('echo', { i });
  const t0 = Date.now();
  await s.start();
  const done = await s.waitCount('completed', 6, 15000);
  const spread = done[5].at - t0;
  assert.ok(spread >= 1900, `6 jobs at 2 per second took only ${spread} ms`);
  assert.equal(await s.queue.getDelayedCount(), 0, 'limited jobs wait in wait, not delayed');
});
