// removeOnComplete / removeOnFail: job options over the worker's defaults.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario } = require('../lib/worker');

test('removeOnComplete: true removes the job; events stay', async (t) => {
  const s = await scenario(t);
  const job = await s.queue.add('echo', {}, { removeOnComplete: true });
  await s.waitFor('completed', job.id);
  assert.equal(await s.job(job.id), undefined);
  assert.equal(await s.redis.exists(`bull:${s.name}:${job.id}`), 0);
});

test('removeOnComplete: n keeps the newest n', async (t) => {
  const s = await scenario(t, { env: { WORKER_CONCURRENCY: '1' } });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await s.queue.add('echo', { i }, { removeOnComplete: 2 })).id);
  await s.waitCount('completed', 5);
  const kept = await s.queue.getCompleted();
  assert.deepEqual(kept.map((j) => j.id).sort(), ids.slice(3).sort());
});

test('removeOnFail: {count} and removeOnFail: true', async (t) => {
  const s = await scenario(t, { env: { WORKER_CONCURRENCY: '1' } });
  const a = [];
  for (let i = 0; i < 3; i++) a.push((await s.queue.add('fail', {}, { removeOnFail: { count: 1 } })).id);
  const gone = await s.queue.add('fail', {}, { removeOnFail: true });
  await s.waitFor('failed', gone.id);
  await s.waitCount('failed', 4);
  const failed = await s.queue.getFailed();
  assert.deepEqual(failed.map((j) => j.id), [a[2]]);
  assert.equal(await s.job(gone.id), undefined);
});

test('removeOnComplete: {age} removes older completed jobs', async (t) => {
  const s = await scenario(t, { env: { WORKER_CONCURRENCY: '1' } });
  const old = await s.queue.add('echo', {}, { removeOnComplete: { age: 1 } });
  await s.waitFor('completed', old.id);
  await new Promise((r) => setTimeout(r, 2100));
  const fresh = await s.queue.add('echo', {}, { removeOnComplete: { age: 1 } });
  await s.waitFor('completed', fresh.id);
  assert.equal(await s.job(old.id), undefined, 'the job older than 1 s is gone');
  assert.ok(await s.job(fresh.id));
});

test('worker defaults apply when the job has no option; job options win', async (t) => {
  const s = await scenario(t, { env: { REMOVE_ON_COMPLETE: 'true', REMOVE_ON_FAIL: '{"count":1}' } });
  const dflt = await s.queue.add('echo', {});
  const keep = await s.queue.add('echo', {}, { removeOnComplete: false });
  const f1 = await s.queue.add('fail', {});
  await s.waitFor('completed', dflt.id);
  await s.waitFor('completed', keep.id);
  await s.waitFor('failed', f1.id);
  assert.equal(await s.job(dflt.id), undefined, 'worker default removeOnComplete: true');
  assert.ok(await s.job(keep.id), 'removeOnComplete: false on the job keeps it');
  assert.ok(await s.job(f1.id));
});

test("REX's defaults: keep the last 1000 completed and 5000 failed", async (t) => {
  const s = await scenario(t, { env: { WORKER_CONCURRENCY: '1' } });
  const job = await s.queue.add('echo', {});
  await s.waitFor('completed', job.id);
  assert.ok(await s.job(job.id), 'a completed job is kept by default');
});
