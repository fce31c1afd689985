// Job schedulers (the next iteration is created when the current one is fetched) and flows
// (children finish, then the parent runs; a failed child with failParentOnFailure fails it).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario, sleep } = require('../lib/worker');

test('an `every` job scheduler keeps producing iterations', async (t) => {
  const s = await scenario(t);
  await s.queue.upsertJobScheduler('tick', { every: 500 }, { name: 'echo', data: { tick: true } });
  const done = await s.waitCount('completed', 3, 10000);
  for (const e of done.slice(0, 3)) {
    assert.match(e.jobId, /^repeat:tick:\d+$/);
    assert.deepEqual(e.returnvalue.echoed, { tick: true });
  }
  const ts = done.slice(0, 3).map((e) => Number(e.jobId.split(':')[2]));
  assert.equal(ts[1] - ts[0], 500);
  assert.equal(ts[2] - ts[1], 500);
  const sched = await s.queue.getJobScheduler('tick');
  assert.ok(sched.next > ts[2]);
  // the job for the next slot is already there, delayed
  assert.ok((await s.queue.getDelayedCount()) >= 1);
});

test('a cron-pattern job scheduler (with a time zone) fires on its pattern', async (t) => {
  const s = await scenario(t);
  await s.queue.upsertJobScheduler('cron', { pattern: '*/1 * * * * *', tz: 'Europe/Paris' }, { name: 'echo', data: { c: 1 } });
  const done = await s.waitCount('completed', 3, 10000);
  const ts = done.slice(0, 3).map((e) => Number(e.jobId.split(':')[2]));
  for (const x of ts) assert.equal(x % 1000, 0, 'whole seconds');
  assert.equal(ts[1] - ts[0], 1000);
  assert.equal(ts[2] - ts[1], 1000);
  const next = await s.redis.zscore(`bull:${s.name}:repeat`, 'cron');
  assert.ok(Number(next) > ts[2]);
});

test('a scheduler with a limit stops after `limit` iterations', async (t) => {
  const s = await scenario(t);
  await s.queue.upsertJobScheduler('lim', { every: 300, limit: 2 }, { name: 'echo', data: {} });
  await s.waitCount('completed', 2, 10000);
  await sleep(1200);
  assert.equal(s.of('completed').length, 2);
});

test('flow: the parent runs after its children', async (t) => {
  const s = await scenario(t, { env: { WORKER_CONCURRENCY: '2' } });
  const flow = new s.bull.FlowProducer({ connection: s.queue.opts.connection });
  t.after(() => flow.close());
  const tree = await flow.add({
    name: 'echo', queueName: s.name, data: { role: 'parent' },
    children: [
      { name: 'echo', queueName: s.name, data: { role: 'child', n: 1 } },
      { name: 'sleep', queueName: s.name, data: { ms: 300 } },
    ],
  });
  const parentId = tree.job.id;
  const p = await s.waitFor('completed', parentId, 10000);
  assert.deepEqual(p.returnvalue.echoed, { role: 'parent' });
  const childDone = s.of('completed').filter((e) => e.jobId !== parentId);
  assert.equal(childDone.length, 2);
  assert.ok(childDone.every((e) => e.at <= p.at));
  const parent = await s.job(parentId);
  const values = await parent.getChildrenValues();
  assert.equal(Object.keys(values).length, 2);
});

test('flow: a child failing with failParentOnFailure fails the parent', async (t) => {
  const s = await scenario(t);
  const flow = new s.bull.FlowProducer({ connection: s.queue.opts.connection });
  t.after(() => flow.close());
  const tree = await flow.add({
    name: 'echo', queueName: s.name, data: {},
    children: [{ name: 'fail', queueName: s.name, data: { message: 'child broke' }, opts: { failParentOnFailure: true } }],
  });
  const ev = await s.waitFor('failed', tree.job.id, 10000);
  assert.match(ev.failedReason, /^child bull:.*failed$/);
  assert.equal(s.of('completed', tree.job.id).length, 0);
});
