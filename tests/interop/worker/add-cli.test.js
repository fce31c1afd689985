// `rex-worker add` stores a job exactly as Queue.add would: Node reads it back the same way,
// and both workers process it.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const { scenario, REX_BIN } = require('../lib/worker');

function add(queue, args) {
  return spawnSync(REX_BIN, ['add', ...args], {
    env: { PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, QUEUE_NAME: queue, REX_ENV_FILE: '/dev/null' },
    encoding: 'utf8',
  });
}

test('rex-worker add: same hash as Queue.add, read by Job.fromId, processed by the worker', async (t) => {
  const s = await scenario(t, { start: false });
  const data = { executionId: 'x', list: [], nested: { a: 1 } };
  const opts = { attempts: 3, backoff: 2000, removeOnComplete: { count: 1000 }, keepLogs: 10 };
  const r = add(s.name, [ 'echo', JSON.stringify(data), '--opts', JSON.stringify({ ...opts, jobId: 'cli-1' }) ]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'cli-1');
  const nodeJob = await s.queue.add('echo', data, { ...opts, jobId: 'node-1' });

  const a = await s.job('cli-1');
  const b = await s.job(nodeJob.id);
  assert.deepEqual(a.data, b.data);
  assert.equal(a.name, b.name);
  assert.deepEqual(a.opts, { ...b.opts, jobId: a.opts.jobId });
  assert.equal(await a.getState(), 'waiting');
  const ha = await s.redis.hgetall(`bull:${s.name}:cli-1`);
  const hb = await s.redis.hgetall(`bull:${s.name}:node-1`);
  assert.deepEqual(Object.keys(ha).sort(), Object.keys(hb).sort());
  const stream = await s.redis.xrange(`bull:${s.name}:events`, '-', '+');
  const evs = stream.map(([, f]) => f.join(' '));
  assert.ok(evs.includes('event added jobId cli-1 name echo'), evs.join('\n'));
  assert.ok(evs.includes('event waiting jobId cli-1'), evs.join('\n'));

  await s.start();
  const ev = await s.waitFor('completed', 'cli-1');
  assert.deepEqual(ev.returnvalue.echoed, data);
});

test('rex-worker add: auto ids, delay, priority, duplicates, bad input', async (t) => {
  const s = await scenario(t, { start: false });
  const first = add(s.name, ['echo', '{"n":1}']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout.trim(), /^\d+$/);
  const delayed = add(s.name, ['echo', '{"n":2}', '--opts', '{"delay":60000}']).stdout.trim();
  assert.equal(await (await s.job(delayed)).getState(), 'delayed');
  const prio = add(s.name, ['echo', '{"n":3}', '--opts', '{"priority":7}']).stdout.trim();
  assert.equal(await (await s.job(prio)).getState(), 'prioritized');
  assert.equal((await s.job(prio)).priority, 7);

  assert.equal(add(s.name, ['echo', '{"n":4}', '--opts', '{"jobId":"dup"}']).status, 0);
  const dup = add(s.name, ['echo', '{"n":5}', '--opts', '{"jobId":"dup"}']);
  assert.equal(dup.status, 0);
  assert.match(dup.stderr, /already exists/);
  assert.deepEqual((await s.job('dup')).data, { n: 4 });

  for (const [args, msg] of [
    [['echo', '{bad'], /DATA is not valid JSON/],
    [['echo', '{}', '--opts', '{"priority":-1}'], /priority/],
    [['echo', '{}', '--opts', '{"jobId":"123"}'], /integers/],
    [['echo', '{}', '--opts', '{"backoff":{"type":"weird"}}'], /backoff/],
    [['echo'], /usage/],
  ]) {
    const r = add(s.name, args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
});
