// Jobs produced and paused by bullmq 5.x (protocol §4.11, §9): the scripts push to the legacy
// `paused` list while meta.paused exists, so a 5.x resume (RENAME paused -> wait) loses nothing.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief } = require('./common');

test('5.x producer: jobs fetched and finished; Job.fromId (5.x) reads the results', async () => {
  const c = await setup('v5-basic', 5);
  try {
    await c.queue.add('a', { v: 1 }, { attempts: 2 });
    await c.queue.add('p', { v: 2 }, { priority: 1 });
    const r = await c.s.fetch({ token: 't1' });
    assert.equal(r.id, '1');
    await c.s.retry('1', { token: 't1', failedReason: 'first' });
    const r2 = await c.s.fetch({ token: 't2' });
    assert.equal(r2.id, '1');
    const r3 = await c.s.finish('1', { token: 't2', value: '{"ok":true}', attempts: 2, fetchNext: true, nextToken: 't3' });
    assert.equal(r3.id, '2');
    await c.s.finish('2', { token: 't3', target: 'failed', value: 'bad', attempts: 0 });
    const j1 = await c.job('1');
    assert.deepEqual(j1.returnvalue, { ok: true });
    assert.equal(j1.attemptsMade, 2);
    assert.equal(await c.state('1'), 'completed');
    const j2 = await c.job('2');
    assert.equal(j2.failedReason, 'bad');
    assert.equal(await c.state('2'), 'failed');
    assert.deepEqual(brief(await c.events()).slice(-3), ['failed 2 active', 'retries-exhausted 2', 'drained']);
  } finally {
    await c.cleanup();
  }
});

test('5.x pause: nothing fetched; retries, stall requeues, push-backs and adds survive resume', async () => {
  const c = await setup('v5-pause', 5);
  try {
    for (const id of ['a', 'b', 'c', 'd']) await c.queue.add('x', {}, { jobId: id });
    await c.s.fetch({ token: 'ta' });
    await c.s.fetch({ token: 'tb' });
    await c.s.fetch({ token: 'tc' });
    await c.queue.pause(); // 5.x: RENAME wait -> paused, meta.paused
    assert.equal(await c.redis.hexists(`${c.P}meta`, 'paused'), 1);
    assert.deepEqual(await c.redis.lrange(`${c.P}paused`, 0, -1), ['d']);
    const r = await c.s.fetch({ token: 'x' });
    assert.equal(r.id, null);

    assert.equal(await c.s.retry('a', { token: 'ta' }), 0);
    await c.queue.rateLimit(1000);
    assert.ok(await c.s.pushBack('b', 'tb') > 0);
    await c.redis.del(`${c.P}c:lock`);
    await c.s.stalled();
    await c.redis.del(`${c.P}stalled-check`);
    assert.deepEqual(await c.s.stalled(), ['c']);
    assert.deepEqual((await c.s.add('late', {}, { jobId: 'e' })).created, 1);
    assert.equal(await c.redis.exists(`${c.P}wait`), 0, 'nothing written to wait while paused');
    assert.equal(await c.redis.exists(`${c.P}marker`), 0);
    assert.deepEqual((await c.redis.lrange(`${c.P}paused`, 0, -1)).sort(), ['a', 'b', 'c', 'd', 'e']);
    const states = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) states.push(await c.state(id));
    assert.deepEqual(states, Array(5).fill('waiting')); // 5.81.5 reports the paused list as waiting

    await c.queue.resume(); // 5.x: RENAME paused -> wait
    await c.redis.del(`${c.P}limiter`);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await c.s.fetch()).id);
    assert.deepEqual(ids.sort(), ['a', 'b', 'c', 'd', 'e']);
  } finally {
    await c.cleanup();
  }
});
