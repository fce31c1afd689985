// extend_locks (§4.4), stalled (§4.8), progress / log (§4.9) and push_back (§4.7).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief, sleep, connection, runNodeWorker } = require('./common');

test('extend_locks: renews our locks, reports lost ones, clears stalled marks', async () => {
  const c = await setup('ext');
  try {
    for (const id of ['a', 'b', 'c']) await c.queue.add('x', {}, { jobId: id });
    await c.s.fetch({ token: 'ta', lockDuration: 1000 });
    await c.s.fetch({ token: 'tb', lockDuration: 1000 });
    await c.s.fetch({ token: 'tc', lockDuration: 1000 });
    await c.redis.sadd(`${c.P}stalled`, 'a', 'b', 'c');
    await c.redis.set(`${c.P}b:lock`, 'someone-else');
    await c.redis.del(`${c.P}c:lock`);
    const lost = await c.s.extendLocks(45000, [['a', 'ta'], ['b', 'tb'], ['c', 'tc']]);
    assert.deepEqual(lost, ['b', 'c']);
    const ttl = await c.redis.pttl(`${c.P}a:lock`);
    assert.ok(ttl > 44000 && ttl <= 45000, `ttl ${ttl}`);
    assert.equal(await c.redis.get(`${c.P}b:lock`), 'someone-else');
    assert.equal(await c.redis.exists(`${c.P}c:lock`), 0);
    assert.deepEqual((await c.redis.smembers(`${c.P}stalled`)).sort(), ['b', 'c']);
    assert.deepEqual(await c.s.extendLocks(1000, []), []);
  } finally {
    await c.cleanup();
  }
});

test('stalled: first run marks, second requeues to the front; lock keeps a job alive', async () => {
  const c = await setup('stall');
  try {
    const qe = c.track(new c.bull.QueueEvents(c.name, { connection: connection() }));
    await qe.waitUntilReady();
    const stalledSeen = [];
    qe.on('stalled', (e) => stalledSeen.push(e.jobId));
    for (const id of ['a', 'b', 'w']) await c.queue.add('x', {}, { jobId: id });
    await c.s.fetch({ token: 'ta' });
    await c.s.fetch({ token: 'tb' });
    await c.redis.del(`${c.P}a:lock`); // a's worker died; b stays locked
    await c.redis.del(`${c.P}marker`);

    assert.deepEqual(await c.s.stalled({ stalledInterval: 30000 }), []);
    assert.deepEqual((await c.redis.smembers(`${c.P}stalled`)).sort(), ['a', 'b']);
    const pttl = await c.redis.pttl(`${c.P}stalled-check`);
    assert.ok(pttl > 29000 && pttl <= 30000);
    assert.deepEqual(await c.s.stalled(), [], 'skipped while stalled-check lives');
    assert.deepEqual((await c.redis.smembers(`${c.P}stalled`)).sort(), ['a', 'b']);

    await c.redis.del(`${c.P}stalled-check`);
    assert.deepEqual(await c.s.stalled(), ['a']);
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['w', 'a']);
    assert.equal(await c.state('a'), 'waiting');
    assert.equal(await c.state('b'), 'active');
    assert.equal(await c.redis.hget(`${c.P}a`, 'stc'), '1');
    assert.equal(await c.redis.hexists(`${c.P}a`, 'defa'), 0);
    assert.equal(await c.redis.zscore(`${c.P}marker`, '0'), '0');
    assert.deepEqual(brief(await c.events()).slice(-2), ['waiting a active', 'stalled a']);
    assert.deepEqual(await c.redis.smembers(`${c.P}stalled`), ['b']);
    for (let i = 0; i < 50 && stalledSeen.length < 1; i++) await sleep(20);
    assert.deepEqual(stalledSeen, ['a']);
    assert.equal((await c.s.fetch({ token: 'ta2' })).id, 'a', 'requeued job runs next');
  } finally {
    await c.cleanup();
  }
});

test('stalled: beyond maxStalledCount the job gets defa and is failed by the next fetcher', async () => {
  const c = await setup('stall-defa');
  try {
    await c.queue.add('x', {}, { jobId: 'a', attempts: 3 });
    await c.queue.add('x', {}, { jobId: 's' });
    await c.redis.hset(`${c.P}s`, 'rjk', 'sch');
    await c.redis.hset(`${c.P}repeat:sch`, 'ic', '1', 'every', '1000');
    await c.s.fetch({ token: 't' });
    await c.s.fetch({ token: 't' });
    await c.redis.del(`${c.P}a:lock`, `${c.P}s:lock`);
    await c.s.stalled({ maxStalledCount: 0 });
    await c.redis.del(`${c.P}stalled-check`);
    assert.deepEqual((await c.s.stalled({ maxStalledCount: 0 })).sort(), ['a', 's']);
    assert.equal(await c.redis.hget(`${c.P}a`, 'defa'), 'job stalled more than allowable limit');
    assert.equal(await c.redis.hexists(`${c.P}s`, 'defa'), 0, 'scheduler jobs may stall');
    // the next fetcher fails it at once with the defa text (protocol §4.7)
    let r = await c.s.fetch({ token: 't2' });
    if (r.id === 's') r = await c.s.fetch({ token: 't2' }); // SMEMBERS order is arbitrary
    assert.equal(r.id, 'a');
    assert.equal(r.job.defa, 'job stalled more than allowable limit');
    await c.s.finish('a', { token: 't2', target: 'failed', value: r.job.defa, attempts: 3 });
    const job = await c.job('a');
    assert.equal(await c.state('a'), 'failed');
    assert.equal(job.failedReason, 'job stalled more than allowable limit');
    assert.equal(job.attemptsMade, 1);
    assert.equal(job.attemptsStarted, 2);
    assert.equal(job.stalledCounter, 1);
    assert.equal(await c.redis.hexists(`${c.P}a`, 'defa'), 0);
  } finally {
    await c.cleanup();
  }
});

test('progress and log: Job, getJobLogs and QueueEvents see them; keepLogs trims', async () => {
  const c = await setup('prog');
  try {
    const qe = c.track(new c.bull.QueueEvents(c.name, { connection: connection() }));
    await qe.waitUntilReady();
    const seen = [];
    qe.on('progress', (e) => seen.push(e));
    await c.queue.add('x', {}, { jobId: 'a' });
    await c.s.fetch();
    assert.equal(await c.s.progress('a', { pct: 50 }), 0);
    assert.equal(await c.s.progress('a', 75), 0);
    assert.equal(await c.s.progress('missing', 1), -1);
    assert.equal((await c.job('a')).progress, 75);
    assert.equal(await c.s.log('a', 'one'), 1);
    assert.equal(await c.s.log('a', 'two'), 2);
    assert.equal(await c.s.log('a', 'three', 2), 2);
    assert.equal(await c.s.log('missing', 'x'), -1);
    assert.deepEqual(await c.queue.getJobLogs('a'), { logs: ['two', 'three'], count: 2 });
    for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(20);
    assert.deepEqual(seen, [{ jobId: 'a', data: { pct: 50 } }, { jobId: 'a', data: 75 }]);
  } finally {
    await c.cleanup();
  }
});

test('push_back: rate-limited job back to the front (or its priority head) with the pttl', async () => {
  const c = await setup('pushback');
  try {
    await c.queue.add('x', {}, { jobId: 'a' });
    await c.queue.add('x', {}, { jobId: 'b' });
    await c.queue.add('x', {}, { jobId: 'p1', priority: 2 });
    await c.queue.add('x', {}, { jobId: 'p2', priority: 2 });
    await c.s.fetch({ token: 'ta' });
    await c.queue.rateLimit(5000);
    const ttl = await c.s.pushBack('a', 'ta');
    assert.ok(ttl > 4800 && ttl <= 5000, `ttl ${ttl}`);
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['b', 'a']);
    assert.equal(await c.redis.exists(`${c.P}a:lock`), 0);
    const job = await c.job('a');
    assert.equal(job.attemptsMade, 0);
    assert.equal(await c.state('a'), 'waiting');
    assert.equal(brief(await c.events()).at(-1), 'waiting a active');
    assert.equal(await c.s.pushBack('a', 'ta'), -2);
    assert.equal(await c.s.pushBack('zz', 'ta'), -1);

    await c.redis.del(`${c.P}wait`, `${c.P}limiter`);
    assert.equal((await c.s.fetch({ token: 'tp' })).id, 'p1');
    assert.equal(await c.s.pushBack('p1', 'tp'), 0);
    assert.equal(await c.redis.zscore(`${c.P}prioritized`, 'p1'), String(2 * 2 ** 32));
    assert.equal((await c.s.fetch({ token: 'tp' })).id, 'p1');
  } finally {
    await c.cleanup();
  }
});

test('stalled: same outcome as a Node Worker\'s own stalled checker on a dead worker\'s job', async () => {
  const node = await setup('stall-node');
  const c = await setup('stall-rex');
  try {
    for (const q of [node, c]) {
      await q.queue.add('x', { v: 1 }, { jobId: 'a' });
      await q.s.fetch({ token: 'dead' }); // a worker took it, then died: lock gone, marked once
      await q.redis.del(`${q.P}a:lock`);
      await q.redis.sadd(`${q.P}stalled`, 'a');
    }
    await runNodeWorker(6, node.name, 1, async () => 'recovered', { stalledInterval: 200 });

    assert.deepEqual(await c.s.stalled({ stalledInterval: 200 }), ['a']);
    await c.s.fetch({ token: 't2' });
    await c.s.finish('a', { token: 't2', value: '"recovered"', fetchNext: true });
    const shape = (h) => ({ ...h, processedOn: '<t>', finishedOn: '<t>', timestamp: '<t>' });
    assert.deepEqual(shape(await c.redis.hgetall(`${c.P}a`)), shape(await node.redis.hgetall(`${node.P}a`)));
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('events: maxLenEvents is set to 10000 when missing and honoured; legacy "0:" ids skipped', async () => {
  const c = await setup('evlen');
  try {
    await c.queue.add('x', {}, { jobId: 'a' });
    await c.redis.hdel(`${c.P}meta`, 'opts.maxLenEvents');
    await c.s.progress('a', 1);
    assert.equal(await c.redis.hget(`${c.P}meta`, 'opts.maxLenEvents'), '10000');
    await c.redis.hset(`${c.P}meta`, 'opts.maxLenEvents', '5');
    for (let i = 0; i < 300; i++) await c.s.progress('a', i);
    assert.ok(await c.redis.xlen(`${c.P}events`) < 250, 'trimmed (approximately) to maxLenEvents');

    await c.redis.rpush(`${c.P}wait`, '0:123');
    const r = await c.s.fetch();
    assert.equal(r.id, 'a');
    assert.deepEqual(await c.redis.lrange(`${c.P}active`, 0, -1), ['a']);
  } finally {
    await c.cleanup();
  }
});
