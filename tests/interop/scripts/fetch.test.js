// fetch (moveToActive, protocol §4.2) against jobs produced by the real npm bullmq.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief } = require('./common');

async function fetchAll(s, opts = {}) {
  const ids = [];
  for (;;) {
    const r = await s.fetch(opts);
    if (!r.id) return ids;
    ids.push(r.id);
  }
}

test('fetch: FIFO order, lock, hash fields, active event and base marker', async () => {
  const c = await setup('fetch-fifo');
  try {
    for (const n of ['a', 'b', 'c']) await c.queue.add(n, { n });
    const now = Date.now();
    const r = await c.s.fetch({ now, token: 'tk-a', lockDuration: 20000, name: 'w1' });
    assert.equal(r.id, '1');
    assert.equal(r.job.name, 'a');
    assert.deepEqual(JSON.parse(r.job.data), { n: 'a' });
    assert.equal(r.job.processedOn, String(now));
    assert.equal(r.job.ats, '1');
    assert.equal(r.job.pb, 'w1');
    assert.equal(r.rateLimitDelay, 0);
    assert.equal(r.nextDelayed, 0);
    assert.equal(await c.redis.get(`${c.P}1:lock`), 'tk-a');
    const ttl = await c.redis.pttl(`${c.P}1:lock`);
    assert.ok(ttl > 19000 && ttl <= 20000, `lock ttl ${ttl}`);
    assert.deepEqual(await c.redis.lrange(`${c.P}active`, 0, -1), ['1']);
    assert.equal(await c.redis.zscore(`${c.P}marker`, '0'), '0');
    assert.equal(await c.state('1'), 'active');
    const job = await c.job('1');
    assert.equal(job.processedOn, now);
    assert.equal(job.attemptsStarted, 1);
    assert.equal(job.processedBy, 'w1');
    const evs = brief(await c.events());
    assert.equal(evs.at(-1), 'active 1 waiting');

    assert.deepEqual(await fetchAll(c.s, { token: '0' }), ['2', '3']);
    assert.equal(await c.redis.exists(`${c.P}2:lock`), 0, 'token "0" takes no lock');
    assert.deepEqual((await c.queue.getJobCounts('active', 'waiting')), { active: 3, waiting: 0 });
  } finally {
    await c.cleanup();
  }
});

test('fetch: LIFO adds run first; priorities run lowest first, same priority FIFO', async () => {
  const c = await setup('fetch-prio');
  try {
    await c.queue.add('w1', {});
    await c.queue.add('w2', {});
    await c.queue.add('lifo', {}, { lifo: true, jobId: 'L' });
    await c.queue.add('p5a', {}, { priority: 5, jobId: 'p5a' });
    await c.queue.add('p1', {}, { priority: 1, jobId: 'p1' });
    await c.queue.add('p5b', {}, { priority: 5, jobId: 'p5b' });
    await c.queue.add('pmax', {}, { priority: 2097151, jobId: 'pmax' });
    assert.deepEqual(await fetchAll(c.s), ['L', '1', '2', 'p1', 'p5a', 'p5b', 'pmax']);
    assert.equal(await c.redis.exists(`${c.P}pc`), 0, 'pc deleted once prioritized is empty');
  } finally {
    await c.cleanup();
  }
});

test('fetch: promotes due delayed jobs (FIFO within a ms), reports the next delayed ms', async () => {
  const c = await setup('fetch-delayed');
  try {
    const t0 = Date.now();
    await c.queue.add('d1', {}, { delay: 1000, jobId: 'd1', timestamp: t0 });
    await c.queue.add('d2', {}, { delay: 1000, jobId: 'd2', timestamp: t0 });
    await c.queue.add('dp', {}, { delay: 1000, jobId: 'dp', timestamp: t0, priority: 3 });
    await c.queue.add('late', {}, { delay: 60000, jobId: 'late', timestamp: t0 });
    // bullmq's own scores and delay marker, which fetch reads
    assert.equal(await c.redis.zscore(`${c.P}delayed`, 'd1'), String((t0 + 1000) * 4096));
    assert.equal(await c.redis.zscore(`${c.P}delayed`, 'd2'), String((t0 + 1000) * 4096 + 1));

    let r = await c.s.fetch({ now: t0 + 500 });
    assert.equal(r.id, null);
    assert.equal(r.nextDelayed, t0 + 1000);
    await c.redis.del(`${c.P}marker`);

    r = await c.s.fetch({ now: t0 + 1000 });
    assert.equal(r.id, 'd1');
    const d1 = await c.job('d1');
    assert.equal(d1.delay, 0);
    assert.equal(await c.state('d2'), 'waiting');
    assert.equal(await c.state('dp'), 'prioritized');
    assert.equal(await c.state('late'), 'delayed');
    assert.equal(await c.redis.zscore(`${c.P}marker`, '0'), '0');
    const evs = brief(await c.events());
    assert.deepEqual(evs.filter((e) => e.endsWith(' delayed')),
      ['waiting d1 delayed', 'waiting d2 delayed', 'waiting dp delayed']);
    assert.deepEqual(await fetchAll(c.s, { now: t0 + 1000 }), ['d2', 'dp']);
    r = await c.s.fetch({ now: t0 + 1000 });
    assert.equal(r.nextDelayed, t0 + 60000);
  } finally {
    await c.cleanup();
  }
});

test('fetch: a paused queue gives no job and no marker but keeps promoting delayed jobs', async () => {
  const c = await setup('fetch-paused');
  try {
    const t0 = Date.now();
    await c.queue.add('w', {}, { jobId: 'w' });
    await c.queue.add('d', {}, { delay: 100, jobId: 'd', timestamp: t0 });
    await c.queue.pause();
    const r = await c.s.fetch({ now: t0 + 200 });
    assert.deepEqual([r.job, r.id, r.rateLimitDelay, r.nextDelayed], [null, null, 0, 0]);
    assert.equal(await c.state('d'), 'waiting');
    // 5.x compatibility (protocol §4.11): while meta.paused exists, pushes go to `paused`
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['w']);
    assert.deepEqual(await c.redis.lrange(`${c.P}paused`, 0, -1), ['d']);
    assert.equal(await c.redis.exists(`${c.P}marker`), 0);
    // (6.x getJobCounts does not count the legacy list: waiting 1 here; getState says waiting)
    assert.deepEqual(await c.queue.getJobCounts('waiting', 'delayed'), { waiting: 1, delayed: 0 });
    await c.queue.resume(); // 6.x resume migrates `paused` into wait
    assert.equal(await c.redis.exists(`${c.P}paused`), 0);
    assert.deepEqual((await fetchAll(c.s)).sort(), ['d', 'w']);
  } finally {
    await c.cleanup();
  }
});

test('fetch: global concurrency caps active jobs', async () => {
  const c = await setup('fetch-conc');
  try {
    await c.queue.setGlobalConcurrency(2);
    for (let i = 0; i < 4; i++) await c.queue.add('j', { i });
    assert.deepEqual(await fetchAll(c.s), ['1', '2']);
    await c.redis.del(`${c.P}marker`);
    await c.s.finish('1', { value: '1' });
    assert.equal(await c.redis.exists(`${c.P}marker`), 0, 'no marker while maxed');
    assert.deepEqual(await fetchAll(c.s), ['3']);
  } finally {
    await c.cleanup();
  }
});

test('fetch: rate limiter counts jobs, replies with the pttl, skips defa jobs', async () => {
  const c = await setup('fetch-limit');
  try {
    for (let i = 0; i < 4; i++) await c.queue.add('j', { i });
    const lim = { limiterMax: 2, limiterDuration: 5000 };
    assert.equal((await c.s.fetch(lim)).id, '1');
    const pttl = await c.redis.pttl(`${c.P}limiter`);
    assert.ok(pttl > 4900 && pttl <= 5000, `limiter pttl ${pttl}`);
    assert.equal((await c.s.fetch(lim)).id, '2');
    assert.equal(await c.redis.get(`${c.P}limiter`), '2');
    const r = await c.s.fetch(lim);
    assert.equal(r.id, null);
    assert.ok(r.rateLimitDelay > 4800 && r.rateLimitDelay <= 5000, `delay ${r.rateLimitDelay}`);
    assert.equal(await c.state('3'), 'waiting');
    // a worker without max ignores the counter
    assert.equal((await c.s.fetch()).id, '3');
    // a job carrying defa does not consume a slot
    await c.redis.del(`${c.P}limiter`);
    await c.redis.hset(`${c.P}4`, 'defa', 'job stalled more than allowable limit');
    assert.equal((await c.s.fetch(lim)).id, '4');
    assert.equal(await c.redis.exists(`${c.P}limiter`), 0);
    // meta max (setGlobalRateLimit) overrides the worker's max
    await c.queue.setGlobalRateLimit(1, 3000);
    await c.queue.add('j', {}, { jobId: 'x' });
    await c.queue.add('j', {}, { jobId: 'y' });
    assert.equal((await c.s.fetch({ limiterMax: 10 })).id, 'x');
    const ttl2 = await c.redis.pttl(`${c.P}limiter`);
    assert.ok(ttl2 > 2900 && ttl2 <= 3000, `meta duration used: ${ttl2}`);
    assert.ok((await c.s.fetch({ limiterMax: 10 })).rateLimitDelay > 0);
  } finally {
    await c.cleanup();
  }
});
