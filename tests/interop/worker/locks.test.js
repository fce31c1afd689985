// Concurrency, lock renewal, stalled-job recovery.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario, sleep, IMPL } = require('../lib/worker');

test('WORKER_CONCURRENCY jobs really run at the same time', async (t) => {
  const s = await scenario(t, { start: false, env: { WORKER_CONCURRENCY: '4' } });
  for (let i = 0; i < 4; i++) await s.queue.add('sleep', { ms: 700 });
  const t0 = Date.now();
  await s.start();
  const done = await s.waitCount('completed', 4);
  const r = done.map((e) => e.returnvalue);
  const lastStart = Math.max(...r.map((x) => x.started));
  const firstEnd = Math.min(...r.map((x) => x.ended));
  assert.ok(lastStart < firstEnd, 'all four were running at once');
  assert.ok(Date.now() - t0 < 2600, `took ${Date.now() - t0} ms`);
});

test('a long job keeps its lock while another worker checks for stalled jobs', async (t) => {
  const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '300' };
  const s = await scenario(t, { env, start: false });
  await s.start();
  const job = await s.queue.add('sleep', { ms: 3500 });
  await s.waitFor('active', job.id);
  await s.start(); // a second worker, whose stalled checks would take the job if the lock lapsed
  await s.waitFor('completed', job.id, 10000);
  assert.equal(s.of('stalled', job.id).length, 0);
  assert.equal(s.of('active', job.id).length, 1);
  const back = await s.job(job.id);
  assert.equal(back.attemptsMade, 1);
});

test('a job spinning the CPU keeps its lock (renewal never waits on job code)', { skip: IMPL === 'node' && 'a Node worker cannot renew locks while its event loop is blocked' }, async (t) => {
  const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '300', WORKER_CONCURRENCY: '1' };
  const s = await scenario(t, { env, start: false });
  await s.start();
  const job = await s.queue.add('spin', { ms: 4000 });
  await s.waitFor('active', job.id);
  await s.start();
  await s.waitFor('completed', job.id, 15000);
  assert.equal(s.of('stalled', job.id).length, 0);
  assert.equal(s.of('active', job.id).length, 1);
});

test('a job of a SIGKILLed worker is recovered by another worker through the stalled check', async (t) => {
  const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '400' };
  const s = await scenario(t, { env, start: false });
  const a = await s.start();
  const job = await s.queue.add('sleep', { ms: 1500 });
  await s.waitFor('active', job.id);
  await a.stop('SIGKILL');
  await s.start();
  await s.waitFor('stalled', job.id, 10000);
  await s.waitFor('completed', job.id, 10000);
  const back = await s.job(job.id);
  assert.equal(back.stalledCounter, 1);
  assert.equal(s.of('active', job.id).length, 2);
});

test('a job stalled more than MAX_STALLED_COUNT times fails', async (t) => {
  const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '400', MAX_STALLED_COUNT: '0' };
  const s = await scenario(t, { env, start: false });
  const a = await s.start();
  const job = await s.queue.add('sleep', { ms: 2000 }, { attempts: 3 });
  await s.waitFor('active', job.id);
  await a.stop('SIGKILL');
  await s.start();
  const ev = await s.waitFor('failed', job.id, 10000);
  assert.equal(ev.failedReason, 'job stalled more than allowable limit');
  const back = await s.job(job.id);
  assert.equal(back.attemptsMade, 1);
  assert.equal(s.of('active', job.id).length, 2, 'fetched again, then failed without running');
});

test('a job whose lock was taken over is not force-finished', async (t) => {
  const s = await scenario(t, { env: { LOCK_DURATION_MS: '5000' } });
  const job = await s.queue.add('sleep', { ms: 1200 });
  await s.waitFor('active', job.id);
  // another owner takes the lock (as after an expiry and a stalled recovery elsewhere)
  await s.redis.set(`bull:${s.name}:${job.id}:lock`, 'someone-else', 'PX', 60000);
  await sleep(2000);
  assert.equal(s.of('completed', job.id).length, 0, 'not completed by the worker that lost the lock');
  assert.equal(await (await s.job(job.id)).getState(), 'active');
  assert.equal(await s.redis.get(`bull:${s.name}:${job.id}:lock`), 'someone-else');
});

test('MAX_STARTED_ATTEMPTS fails a job started too often', async (t) => {
  const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '400', MAX_STARTED_ATTEMPTS: '1', MAX_STALLED_COUNT: '5' };
  const s = await scenario(t, { env, start: false });
  const a = await s.start();
  const job = await s.queue.add('sleep', { ms: 2000 }, { attempts: 5 });
  await s.waitFor('active', job.id);
  await a.stop('SIGKILL');
  await s.start();
  const ev = await s.waitFor('failed', job.id, 10000);
  assert.equal(ev.failedReason, 'job started more than allowable limit');
});
