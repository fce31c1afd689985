// finish (moveToFinished, protocol §4.5 / §4.6 step 5): completed and failed, retention,
// error codes, fetchNext chaining and `drained`, compared with what a real Node Worker leaves.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief, runNodeWorker, sleep, connection } = require('./common');

const VOLATILE = ['timestamp', 'processedOn', 'finishedOn', 'stacktrace'];
function shape(hash) {
  const o = { ...hash };
  for (const k of VOLATILE) if (k in o) o[k] = '<t>';
  return o;
}

test('finish completed: same hash, events and sets as a Node Worker; QueueEvents sees it', async () => {
  const node = await setup('fin-node');
  const c = await setup('fin-rex');
  try {
    for (const q of [node.queue, c.queue]) {
      await q.add('one', { v: 1 });
      await q.add('two', { v: 2 });
    }
    await runNodeWorker(6, node.name, 2, async (job) => ({ ok: job.data.v }), { name: 'w1' });

    const qe = c.track(new c.bull.QueueEvents(c.name, { connection: connection() }));
    await qe.waitUntilReady();
    const seen = [];
    qe.on('completed', (e) => seen.push(e));
    qe.on('drained', () => seen.push('drained'));

    const r1 = await c.s.fetch({ token: 't1', name: 'w1' });
    await c.redis.sadd(`${c.P}stalled`, '1');
    const r2 = await c.s.finish('1', { token: 't1', value: JSON.stringify({ ok: 1 }), fetchNext: true,
      nextToken: 't2', name: 'w1' });
    assert.equal(r1.id, '1');
    assert.equal(r2.id, '2');
    assert.equal(await c.redis.get(`${c.P}2:lock`), 't2');
    assert.equal(await c.redis.exists(`${c.P}1:lock`), 0);
    assert.equal(await c.redis.sismember(`${c.P}stalled`, '1'), 0);
    assert.equal(await c.s.finish('2', { token: 't2', value: JSON.stringify({ ok: 2 }), fetchNext: true, name: 'w1' }), 0);

    for (const id of ['1', '2']) {
      assert.deepEqual(shape(await c.redis.hgetall(c.P + id)), shape(await node.redis.hgetall(node.P + id)));
      assert.equal(await c.state(id), 'completed');
    }
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
    assert.deepEqual(await c.redis.zrange(`${c.P}completed`, 0, -1), ['1', '2']);
    const job = await c.job('2');
    assert.deepEqual(job.returnvalue, { ok: 2 });
    assert.equal(job.attemptsMade, 1);
    for (let i = 0; i < 50 && seen.length < 3; i++) await sleep(20);
    assert.deepEqual(seen, [{ jobId: '1', returnvalue: { ok: 1 }, prev: 'active' },
      { jobId: '2', returnvalue: { ok: 2 }, prev: 'active' }, 'drained']);
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('finish failed: failedReason raw, stacktrace, defa cleared, retries-exhausted as Node', async () => {
  const node = await setup('finf-node');
  const c = await setup('finf-rex');
  try {
    for (const q of [node.queue, c.queue]) {
      await q.add('x', {}, { jobId: 'a', attempts: 1 });
    }
    await runNodeWorker(6, node.name, 1, async () => { throw new Error('boom "quoted"'); });
    const qe = c.track(new c.bull.QueueEvents(c.name, { connection: connection() }));
    await qe.waitUntilReady();
    const seen = [];
    qe.on('failed', (e) => seen.push(['failed', e]));
    qe.on('retries-exhausted', (e) => seen.push(['retries-exhausted', e]));

    await c.s.fetch();
    await c.redis.hset(`${c.P}a`, 'defa', 'earlier');
    const stack = JSON.stringify(['Error: boom "quoted"\n    at x']);
    assert.equal(await c.s.finish('a', { target: 'failed', value: 'boom "quoted"', attempts: 1,
      stacktrace: stack, fetchNext: true }), 0);
    assert.deepEqual(shape(await c.redis.hgetall(`${c.P}a`)), shape(await node.redis.hgetall(`${node.P}a`)));
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
    const job = await c.job('a');
    assert.equal(job.failedReason, 'boom "quoted"');
    assert.deepEqual(job.stacktrace, ['Error: boom "quoted"\n    at x']);
    assert.equal(await c.state('a'), 'failed');
    for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(20);
    assert.deepEqual(seen, [['failed', { jobId: 'a', failedReason: 'boom "quoted"', prev: 'active' }],
      ['retries-exhausted', { jobId: 'a', attemptsMade: '1' }]]);

    // attempts 3 and an early (unrecoverable) failure: no retries-exhausted
    await c.queue.add('x', {}, { jobId: 'b', attempts: 3 });
    await c.s.fetch();
    await c.s.finish('b', { target: 'failed', value: 'fatal', attempts: 3 });
    const evs = brief(await c.events());
    assert.deepEqual(evs.slice(-2), ['failed b active', 'drained']);
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('finish: error codes -1, -2, -6, -3 and token "0"', async () => {
  const c = await setup('fin-codes');
  try {
    await c.queue.add('x', {}, { jobId: 'a' });
    assert.equal(await c.s.finish('nope'), -1);
    await c.s.fetch({ token: 'mine' });
    assert.equal(await c.s.finish('a', { token: 'other' }), -6);
    await c.redis.del(`${c.P}a:lock`);
    assert.equal(await c.s.finish('a', { token: 'mine' }), -2);
    assert.equal(await c.state('a'), 'active');
    assert.equal(await c.s.finish('a', { token: '0' }), 0);
    assert.equal(await c.s.finish('a', { token: '0' }), -3);
    await c.queue.add('x', {}, { jobId: 'b' });
    await c.redis.set(`${c.P}b:lock`, 'tk');
    assert.equal(await c.s.finish('b', { token: 'tk' }), -3, 'waiting job is not active');
  } finally {
    await c.cleanup();
  }
});

async function runRetention(c, target, keepJobs, n, { now = Date.now(), step = 0 } = {}) {
  for (let i = 1; i <= n; i++) {
    await c.queue.add('x', {}, { jobId: `${target}${i}` });
    await c.s.fetch();
    await c.s.finish(`${target}${i}`, { target, value: target === 'completed' ? '1' : 'err', keepJobs,
      now: now + i * step });
  }
}

test('finish retention: every removeOnComplete / removeOnFail form', async () => {
  const c = await setup('fin-keep');
  try {
    // count 0 (removeOnComplete: true): gone, with its logs
    await c.queue.add('x', {}, { jobId: 'gone' });
    await c.s.fetch();
    await c.s.log('gone', 'line');
    await c.s.finish('gone', { keepJobs: { count: 0 } });
    assert.equal(await c.redis.exists(`${c.P}gone`, `${c.P}gone:logs`), 0);
    assert.equal(await c.job('gone'), undefined);
    assert.equal(await c.state('gone'), 'unknown');
    assert.ok(brief(await c.events()).includes('completed gone active'));

    // count n: keep the newest n
    await runRetention(c, 'completed', { count: 2 }, 4);
    assert.deepEqual((await c.queue.getJobs(['completed'])).map((j) => j.id).sort(), ['completed3', 'completed4']);
    assert.equal(await c.redis.exists(`${c.P}completed1`), 0);

    // failed, count 0 / count 1 / keep all
    await runRetention(c, 'failed', { count: 1 }, 3);
    assert.deepEqual((await c.queue.getJobs(['failed'])).map((j) => j.id), ['failed3']);
    await c.queue.add('x', {}, { jobId: 'f0' });
    await c.s.fetch();
    await c.s.finish('f0', { target: 'failed', value: 'e', keepJobs: { count: 0 } });
    assert.equal(await c.redis.exists(`${c.P}f0`), 0);
    assert.deepEqual(await c.queue.getJobCounts('failed'), { failed: 1 });
  } finally {
    await c.cleanup();
  }
});

test('finish retention: age, age+count and age+limit', async () => {
  const c = await setup('fin-age');
  try {
    const t0 = Date.now() - 100000;
    // four jobs finished 10 s apart, then age 25 s at t0+40 s keeps those at >= t0+15 s
    await runRetention(c, 'completed', { count: -1 }, 3, { now: t0, step: 10000 });
    await runRetention(c, 'failed', { count: -1 }, 3, { now: t0, step: 10000 });
    await c.queue.add('x', {}, { jobId: 'last' });
    await c.s.fetch();
    await c.s.finish('last', { value: '1', keepJobs: { age: 25 }, now: t0 + 40000 });
    assert.deepEqual(await c.redis.zrange(`${c.P}completed`, 0, -1), ['completed2', 'completed3', 'last']);
    assert.equal(await c.redis.exists(`${c.P}completed1`), 0);

    await c.queue.add('x', {}, { jobId: 'last2' });
    await c.s.fetch();
    await c.s.finish('last2', { value: '1', keepJobs: { age: 3600, count: 2 }, now: t0 + 41000 });
    assert.deepEqual(await c.redis.zrange(`${c.P}completed`, 0, -1), ['last', 'last2']);

    // limit bounds how many old jobs one finish removes
    await c.queue.add('x', {}, { jobId: 'flast' });
    await c.s.fetch();
    await c.s.finish('flast', { target: 'failed', value: 'e', keepJobs: { age: 1, limit: 2 }, now: t0 + 50000 });
    assert.deepEqual(await c.redis.zrange(`${c.P}failed`, 0, -1), ['failed3', 'flast']);
    assert.equal(await c.redis.exists(`${c.P}failed1`, `${c.P}failed2`), 0);
  } finally {
    await c.cleanup();
  }
});

test('finish fetchNext: chains with the next token; delayed pending means no drained', async () => {
  const c = await setup('fin-next');
  try {
    const t0 = Date.now();
    await c.queue.add('x', {}, { jobId: 'a' });
    await c.queue.add('d', {}, { jobId: 'd', delay: 60000, timestamp: t0 });
    await c.s.fetch({ now: t0 });
    const r = await c.s.finish('a', { now: t0, value: '1', fetchNext: true });
    assert.deepEqual(r, { job: null, id: null, rateLimitDelay: 0, nextDelayed: t0 + 60000 });
    assert.ok(!brief(await c.events()).includes('drained'));

    // rate-limited fetchNext reports the limiter's pttl
    await c.queue.add('x', {}, { jobId: 'b' });
    await c.queue.add('x', {}, { jobId: 'c' });
    await c.s.fetch({ now: t0, limiterMax: 1, limiterDuration: 4000 });
    const r2 = await c.s.finish('b', { now: t0, value: '1', fetchNext: true, limiterMax: 1, limiterDuration: 4000 });
    assert.ok(r2.rateLimitDelay > 3000 && r2.id === null, JSON.stringify(r2));
    // paused: [0,0,0,0], the job stays waiting
    await c.queue.pause();
    await c.redis.del(`${c.P}limiter`);
    await c.queue.add('x', {}, { jobId: 'e' });
    await c.redis.hdel(`${c.P}meta`, 'paused');
    await c.s.fetch({ now: t0 });
    await c.queue.pause();
    const r3 = await c.s.finish('c', { now: t0, value: '1', fetchNext: true });
    assert.deepEqual(r3, { job: null, id: null, rateLimitDelay: 0, nextDelayed: 0 });
    assert.equal(await c.state('e'), 'waiting');
  } finally {
    await c.cleanup();
  }
});
