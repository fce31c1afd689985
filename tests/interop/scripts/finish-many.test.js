// finish_many: several finishes and their fetch-next in one round trip; each job goes through
// the same steps as `finish`.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief } = require('./common');

test('finish_many completes and fails several jobs, then fetches as many next jobs', async () => {
  const c = await setup('many');
  try {
    for (let i = 1; i <= 5; i++) await c.queue.add('j', { i });
    const got = [];
    for (const tok of ['a', 'b', 'c']) got.push((await c.s.fetch({ token: tok })).id);
    assert.deepEqual(got, ['1', '2', '3']);
    const before = (await c.events()).length;
    const r = await c.s.finishMany([
      { id: '1', token: 'a', value: '{"ok":1}', nextToken: 'n1' },
      { id: '2', token: 'b', target: 'failed', value: 'bad', attempts: 1, stacktrace: '["trace"]', nextToken: 'n2' },
      { id: '3', token: 'WRONG', value: '{"ok":3}', nextToken: 'n3' },
    ]);
    const [codes, jobs, tail] = r;
    assert.deepEqual(codes, [0, 0, -6]);
    assert.deepEqual(jobs.map((j) => [j[1], j[2]]), [['4', 'n1'], ['5', 'n2']]);
    assert.ok(Array.isArray(jobs[0][0]) && jobs[0][0].includes('processedOn'));
    assert.equal(tail, 0, 'every token got a job');
    assert.equal(await c.state('1'), 'completed');
    assert.deepEqual((await c.job('1')).returnvalue, { ok: 1 });
    const j2 = await c.job('2');
    assert.equal(await c.state('2'), 'failed');
    assert.equal(j2.failedReason, 'bad');
    assert.deepEqual(j2.stacktrace, ['trace']);
    assert.equal(await c.state('3'), 'active', 'a job whose lock is not ours is left alone');
    assert.equal(await c.redis.get(`${c.P}4:lock`), 'n1');
    assert.equal(await c.redis.get(`${c.P}5:lock`), 'n2');
    const evs = brief((await c.events()).slice(before));
    assert.deepEqual(evs, ['completed 1 active', 'failed 2 active', 'retries-exhausted 2',
      'active 4 waiting', 'active 5 waiting']);
  } finally {
    await c.cleanup();
  }
});

test('finish_many with nothing left writes drained once and answers 0', async () => {
  const c = await setup('many-idle');
  try {
    await c.queue.add('j', {});
    await c.queue.add('j', {});
    await c.s.fetch({ token: 'a' });
    await c.s.fetch({ token: 'b' });
    const [codes, jobs, tail] = await c.s.finishMany([
      { id: '1', token: 'a', nextToken: 'x', keepJobs: { count: 0 } },
      { id: '2', token: 'b', nextToken: 'y', keepJobs: { count: 0 } },
    ]);
    assert.deepEqual(codes, [0, 0]);
    assert.deepEqual(jobs, []);
    assert.equal(tail, 0);
    const evs = brief(await c.events());
    assert.equal(evs.filter((e) => e === 'drained').length, 1);
    assert.equal(await c.redis.exists(`${c.P}1`), 0, 'removed as keepJobs {count:0} says');
  } finally {
    await c.cleanup();
  }
});
