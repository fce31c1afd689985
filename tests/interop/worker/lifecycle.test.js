// Graceful shutdown, second signal, reconnecting after the connection is killed or Redis restarts.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { scenario, sleep, restartRedis, IMPL } = require('../lib/worker');

test('SIGTERM: the active job finishes, no new job is taken, exit 0', async (t) => {
  const s = await scenario(t, { start: false });
  const w = await s.start();
  const job = await s.queue.add('sleep', { ms: 1200 });
  await s.waitFor('active', job.id);
  const t0 = Date.now();
  w.proc.kill('SIGTERM');
  await sleep(300); // the signal has been handled: from here on nothing new is fetched
  const later = await s.queue.add('echo', { late: true });
  const exit = await w.exit;
  assert.deepEqual(exit, { code: 0, signal: null });
  const ev = await s.waitFor('completed', job.id);
  assert.ok(ev.returnvalue.ended - t0 >= 900, 'the job ran to its end');
  assert.equal(await (await s.job(later.id)).getState(), 'waiting');
});

test('SIGTERM while Redis is paused: the worker exits 0 once the finish goes through', async (t) => {
  // The finish waits in the paused Redis; a lock renewal (every 1.5 s) queues up behind it. The
  // worker must close when the last reply arrives, whichever command it answers. (The lock,
  // taken at 0 for 3 s, is still valid when the pause ends at 2.5 s.)
  const s = await scenario(t, { start: false, env: { LOCK_DURATION_MS: '3000', SHUTDOWN_GRACE_MS: '20000' } });
  const w = await s.start();
  const job = await s.queue.add('sleep', { ms: 1000 });
  await s.waitFor('active', job.id);
  w.proc.kill('SIGTERM');
  await sleep(500);
  await s.redis.client('PAUSE', '2000');
  const paused = Date.now();
  const exit = await w.exit;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(Date.now() - paused < 6000, `exited ${Date.now() - paused} ms after the pause began`);
  await s.waitFor('completed', job.id);
});

test('a second signal exits at once', async (t) => {
  const s = await scenario(t, { start: false });
  const w = await s.start();
  const job = await s.queue.add('sleep', { ms: 5000 });
  await s.waitFor('active', job.id);
  const t0 = Date.now();
  w.proc.kill('SIGTERM');
  await sleep(200);
  w.proc.kill('SIGTERM');
  const exit = await w.exit;
  assert.ok(Date.now() - t0 < 2000, 'exited well before the job would have ended');
  assert.notEqual(exit.code, 0);
  assert.equal(await (await s.job(job.id)).getState(), 'active', 'the job is left for stalled recovery');
});

async function runThroughFault(t, fault) {
  const env = { WORKER_CONCURRENCY: '2', LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };
  const s = await scenario(t, { env });
  const n = 30;
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await s.queue.add('sleep', { ms: 60 })).id);
  await s.waitCount('completed', 5);
  await fault(s);
  const deadline = Date.now() + 30000;
  let counts;
  for (;;) {
    counts = await s.queue.getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
    if (counts.completed === n || Date.now() > deadline) break;
    await sleep(200);
  }
  assert.deepEqual(counts, { completed: n, failed: 0, active: 0, waiting: 0, delayed: 0 });
  for (const id of ids) {
    const j = await s.job(id);
    assert.ok(j.finishedOn, `job ${id} finished`);
  }
  const w = s.events.length; // the worker keeps working after the fault
  const extra = await s.queue.add('echo', { after: 'fault' });
  await s.waitFor('completed', extra.id, 10000);
  assert.ok(s.events.length > w);
}

test('connections killed with CLIENT KILL: reconnect, nothing lost', async (t) => {
  await runThroughFault(t, async (s) => {
    await s.redis.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  });
});

test('Redis restarted: reconnect, nothing lost', async (t) => {
  await runThroughFault(t, async () => {
    restartRedis();
  });
});
