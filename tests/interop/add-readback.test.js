// The harness itself: both bullmq versions add a job and read it back, and the Redis layout is
// the one bullmq-protocol.md describes (the job hash fields the worker will read).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { BULLMQ, uniqueQueueName, openQueue, rawRedis } = require('./lib/harness');

for (const major of [6, 5]) {
  test(`bullmq ${major}.x adds a job and reads it back`, async () => {
    const name = uniqueQueueName(`add${major}`);
    const q = await openQueue(major, name);
    const redis = rawRedis();
    try {
      const data = { executionId: 'e-1', nested: { list: [1, 2, 3], empty: [] }, text: 'é😀' };
      const job = await q.add('execute-workflow', data, {
        jobId: 'job-1', attempts: 3, backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 },
      });
      assert.equal(job.id, 'job-1');

      const back = await BULLMQ[major].Job.fromId(q, 'job-1');
      assert.equal(back.name, 'execute-workflow');
      assert.deepEqual(back.data, data);
      assert.equal(back.opts.attempts, 3);
      assert.deepEqual(back.opts.backoff, { type: 'exponential', delay: 2000 });

      // The raw layout a worker reads: the job hash and the wait list.
      const hash = await redis.hgetall(`bull:${name}:job-1`);
      assert.equal(hash.name, 'execute-workflow');
      assert.deepEqual(JSON.parse(hash.data), data);
      assert.ok(Number(hash.timestamp) > 1.7e12);
      assert.deepEqual(await redis.lrange(`bull:${name}:wait`, 0, -1), ['job-1']);
      const counts = await q.getJobCounts('waiting', 'active');
      assert.equal(counts.waiting, 1);
      assert.equal(counts.active, 0);

      // Adding the same id again is a no-op, as REX relies on.
      await q.add('execute-workflow', { other: true }, { jobId: 'job-1' });
      assert.deepEqual((await BULLMQ[major].Job.fromId(q, 'job-1')).data, data);
      assert.equal(await q.count(), 1);
    } finally {
      await q.obliterate({ force: true });
      await q.close();
      redis.disconnect();
    }
  });
}
