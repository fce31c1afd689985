// add (Queue.add of standard / delayed / prioritized jobs): Node reads and processes the jobs
// exactly like Queue.add'd ones.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief, runNodeWorker } = require('./common');

function shape(hash) {
  const o = { ...hash, timestamp: '<t>' };
  if (o.opts) o.opts = JSON.parse(o.opts);
  return o;
}

test('add: same hash, lists, markers and events as Queue.add; Node processes them', async () => {
  const node = await setup('add-node');
  const c = await setup('add-rex');
  try {
    const t0 = Date.now();
    await node.queue.add('plain', { a: 1 });
    await node.queue.add('late', { b: 2 }, { delay: 5000, timestamp: t0 });
    await node.queue.add('prio', { c: 3 }, { priority: 5, jobId: 'cust' });
    await node.queue.add('top', {}, { lifo: true });
    assert.deepEqual(await c.s.add('plain', { a: 1 }), { id: '1', created: 1 });
    assert.deepEqual(await c.s.add('late', { b: 2 }, { delay: 5000, timestamp: t0, opts: { timestamp: t0 } }), { id: '2', created: 1 });
    assert.deepEqual(await c.s.add('prio', { c: 3 }, { priority: 5, jobId: 'cust' }), { id: 'cust', created: 1 });
    assert.deepEqual(await c.s.add('top', {}, { lifo: true }), { id: '4', created: 1 });

    for (const id of ['1', '2', 'cust', '4']) {
      assert.deepEqual(shape(await c.redis.hgetall(c.P + id)), shape(await node.redis.hgetall(node.P + id)), id);
      const [a, b] = [await c.job(id), await node.job(id)];
      assert.equal(a.name, b.name);
      assert.deepEqual(a.data, b.data);
      assert.deepEqual(a.opts, b.opts);
      assert.equal(a.delay, b.delay);
      assert.equal(a.priority, b.priority);
      assert.equal(await c.state(id), await node.state(id));
    }
    for (const k of ['wait', 'id']) {
      assert.deepEqual(await c.redis.type(c.P + k), await node.redis.type(node.P + k));
    }
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), await node.redis.lrange(`${node.P}wait`, 0, -1));
    assert.deepEqual(await c.redis.zrange(`${c.P}delayed`, 0, -1, 'WITHSCORES'),
      await node.redis.zrange(`${node.P}delayed`, 0, -1, 'WITHSCORES'));
    assert.deepEqual(await c.redis.zrange(`${c.P}prioritized`, 0, -1, 'WITHSCORES'),
      await node.redis.zrange(`${node.P}prioritized`, 0, -1, 'WITHSCORES'));
    assert.equal(await c.redis.get(`${c.P}pc`), await node.redis.get(`${node.P}pc`));
    assert.deepEqual(await c.redis.zrange(`${c.P}marker`, 0, -1, 'WITHSCORES'),
      await node.redis.zrange(`${node.P}marker`, 0, -1, 'WITHSCORES'));
    assert.deepEqual(await c.redis.get(`${c.P}id`), await node.redis.get(`${node.P}id`));
    const evs = await c.events();
    assert.deepEqual(brief(evs), brief(await node.events()));
    assert.equal(evs.find((e) => e.event === 'delayed').delay, String(t0 + 5000));
    assert.deepEqual(await c.queue.getJobCounts('waiting', 'delayed', 'prioritized'),
      { waiting: 2, delayed: 1, prioritized: 1 });

    // duplicate custom id: nothing changes, a `duplicated` event
    assert.deepEqual(await c.s.add('prio', { other: true }, { jobId: 'cust' }), { id: 'cust', created: 0 });
    assert.deepEqual((await c.job('cust')).data, { c: 3 });
    assert.deepEqual(brief(await c.events()).at(-1), 'duplicated cust');

    // a real Node Worker processes the three ready jobs, LIFO first then FIFO, then priority
    const order = [];
    await runNodeWorker(6, c.name, 3, async (job) => { order.push(job.id); return job.name; });
    assert.deepEqual(order, ['4', '1', 'cust']);
    assert.equal((await c.job('cust')).returnvalue, 'prio');
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('add: a paused queue gets no marker, and (5.x rule) the job goes to the paused list', async () => {
  const c = await setup('add-paused');
  try {
    await c.queue.pause();
    await c.s.add('x', {}, { jobId: 'a' });
    assert.equal(await c.redis.exists(`${c.P}marker`), 0);
    assert.deepEqual(await c.redis.lrange(`${c.P}paused`, 0, -1), ['a']);
    assert.equal(await c.state('a'), 'waiting');
    await c.queue.resume();
    assert.deepEqual(await c.redis.lrange(`${c.P}wait`, 0, -1), ['a']);
    assert.equal((await c.s.fetch()).id, 'a');
  } finally {
    await c.cleanup();
  }
});
