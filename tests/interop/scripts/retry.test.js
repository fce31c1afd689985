// delay (moveToDelayed) and retry (retryJob), protocol §4.6 steps 3-4, against Node's results.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief, runNodeWorker } = require('./common');

const VOLATILE = ['timestamp', 'processedOn', 'finishedOn', 'stacktrace'];
function shape(hash) {
  const o = { ...hash };
  for (const k of VOLATILE) if (k in o) o[k] = '<t>';
  return o;
}

test('delay: backoff retry leaves the same hash and events as a Node Worker', async () => {
  const node = await setup('dly-node');
  const c = await setup('dly-rex');
  try {
    const opts = { jobId: 'a', attempts: 3, backoff: { type: 'fixed', delay: 60000 } };
    await node.queue.add('x', { v: 1 }, opts);
    await c.queue.add('x', { v: 1 }, opts);
    await runNodeWorker(6, node.name, 1, async () => { throw new Error('e1'); });

    const now = Date.now();
    await c.s.fetch({ now, token: 't' });
    await c.redis.sadd(`${c.P}stalled`, 'a');
    assert.equal(await c.s.delay('a', { token: 't', now, delay: 60000, failedReason: 'e1',
      stacktrace: JSON.stringify(['Error: e1']) }), 0);
    assert.deepEqual(shape(await c.redis.hgetall(`${c.P}a`)), shape(await node.redis.hgetall(`${node.P}a`)));
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
    const evs = await c.events();
    assert.equal(evs.at(-1).delay, String(now + 60000));
    assert.equal(await c.redis.zscore(`${c.P}delayed`, 'a'), String((now + 60000) * 4096));
    assert.equal(await c.redis.zscore(`${c.P}marker`, '1'), String(now + 60000));
    assert.equal(await c.redis.exists(`${c.P}a:lock`), 0);
    assert.equal(await c.redis.sismember(`${c.P}stalled`, 'a'), 0);
    assert.equal(await c.state('a'), 'delayed');
    const job = await c.job('a');
    assert.equal(job.attemptsMade, 1);
    assert.equal(job.failedReason, 'e1');
    assert.equal(job.delay, 60000);

    // due: promoted and fetched again; a second delay in the same ms gets seq +1
    const r = await c.s.fetch({ now: now + 60000, token: 't2' });
    assert.equal(r.id, 'a');
    assert.equal(r.job.ats, '2');
    await c.queue.add('x', {}, { jobId: 'b' });
    await c.s.fetch({ now: now + 60000, token: 't3' });
    await c.s.delay('a', { token: 't2', now: now + 60000, delay: 1000, skipAttempt: true });
    await c.s.delay('b', { token: 't3', now: now + 60000, delay: 1000 });
    assert.equal(await c.redis.zscore(`${c.P}delayed`, 'a'), String((now + 61000) * 4096));
    assert.equal(await c.redis.zscore(`${c.P}delayed`, 'b'), String((now + 61000) * 4096 + 1));
    assert.equal((await c.job('a')).attemptsMade, 1, 'skipAttempt keeps atm');
    assert.equal((await c.job('b')).attemptsMade, 1);
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('delay: error codes', async () => {
  const c = await setup('dly-codes');
  try {
    await c.queue.add('x', {}, { jobId: 'a' });
    assert.equal(await c.s.delay('zz', { delay: 10 }), -1);
    await c.s.fetch({ token: 'mine' });
    assert.equal(await c.s.delay('a', { token: 'theirs', delay: 10 }), -6);
    await c.redis.del(`${c.P}a:lock`);
    assert.equal(await c.s.delay('a', { token: 'mine', delay: 10 }), -2);
    await c.redis.lrem(`${c.P}active`, 0, 'a');
    await c.redis.set(`${c.P}a:lock`, 'mine');
    assert.equal(await c.s.delay('a', { token: 'mine', delay: 10 }), -3);
  } finally {
    await c.cleanup();
  }
});

test('retry: immediate retry then completion matches a Node Worker run', async () => {
  const node = await setup('rty-node');
  const c = await setup('rty-rex');
  try {
    await node.queue.add('x', {}, { jobId: 'a', attempts: 2 });
    await c.queue.add('x', {}, { jobId: 'a', attempts: 2 });
    await runNodeWorker(6, node.name, 2, async (job) => {
      if (job.attemptsMade === 0) throw new Error('first');
      return 'second';
    });
    await c.s.fetch({ token: 't1' });
    assert.equal(await c.s.retry('a', { token: 't1', failedReason: 'first',
      stacktrace: JSON.stringify(['Error: first']) }), 0);
    assert.equal(await c.state('a'), 'waiting');
    assert.equal(await c.redis.zscore(`${c.P}marker`, '0'), '0');
    assert.equal((await c.job('a')).attemptsMade, 1);
    await c.s.fetch({ token: 't2' });
    assert.equal(await c.s.finish('a', { token: 't2', value: '"second"', attempts: 2, fetchNext: true }), 0);
    assert.deepEqual(shape(await c.redis.hgetall(`${c.P}a`)), shape(await node.redis.hgetall(`${node.P}a`)));
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('retry: lifo to the front, prioritized back to prioritized, promotes delayed, codes', async () => {
  const c = await setup('rty-more');
  try {
    const t0 = Date.now();
    await c.queue.add('x', {}, { jobId: 'a' });
    await c.queue.add('x', {}, { jobId: 'b' });
    await c.queue.add('x', {}, { jobId: 'c' });
    await c.queue.add('x', {}, { jobId: 'p', priority: 4 });
    await c.queue.add('x', {}, { jobId: 'd', delay: 100, timestamp: t0 });
    await c.s.fetch({ now: t0, token: 'ta' });
    await c.s.retry('a', { token: 'ta', now: t0 + 200, lifo: true });
    assert.equal(await c.state('d'), 'waiting', 'retry promotes due delayed jobs');
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['d', 'c', 'b', 'a']);
    assert.equal((await c.s.fetch({ now: t0 + 200 })).id, 'a');
    // non-lifo: back of the line
    await c.s.retry('a', { token: 'tok-1', now: t0 + 200 });
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['a', 'd', 'c', 'b']);
    await c.redis.del(`${c.P}wait`);
    assert.equal((await c.s.fetch({ now: t0 + 200, token: 'tp' })).id, 'p');
    await c.s.retry('p', { token: 'tp', now: t0 + 200 });
    assert.equal(await c.state('p'), 'prioritized');
    assert.equal(await c.s.retry('zz'), -1);
    await c.s.fetch({ now: t0 + 200, token: 'tp2' });
    assert.equal(await c.s.retry('p', { token: 'no' }), -6);
    await c.redis.del(`${c.P}p:lock`);
    assert.equal(await c.s.retry('p', { token: 'tp2' }), -2);
    await c.redis.set(`${c.P}b:lock`, 'x');
    assert.equal(await c.s.retry('b', { token: 'x' }), -3);
  } finally {
    await c.cleanup();
  }
});

test('delay: an idle Node Worker wakes on the delay marker and runs the retried job', async () => {
  const c = await setup('dly-wake');
  try {
    await c.queue.add('x', { v: 1 }, { jobId: 'a', attempts: 2 });
    await c.s.fetch({ token: 't' });
    const seen = [];
    const w = c.track(new c.bull.Worker(c.name, async (job) => {
      seen.push([job.id, job.attemptsMade, Date.now()]);
      return 'late';
    }, { connection: require('./common').connection(), drainDelay: 5 }));
    await w.waitUntilReady();
    await new Promise((r) => setTimeout(r, 200)); // the worker is now blocked on the marker
    const t = Date.now();
    assert.equal(await c.s.delay('a', { token: 't', now: t, delay: 700, failedReason: 'e' }), 0);
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, 1);
    assert.equal(seen[0][0], 'a');
    assert.equal(seen[0][1], 1);
    assert.ok(seen[0][2] >= t + 690, `ran ${seen[0][2] - t} ms after the delay call`);
    for (let i = 0; i < 40 && (await c.state('a')) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await c.job('a')).returnvalue, 'late');
  } finally {
    await c.cleanup();
  }
});
