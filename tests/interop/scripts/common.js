// Shared setup for the script tests: a fresh queue (bullmq 6 or 5 Queue as producer), a raw
// Redis client with rex-worker's scripts registered, and cleanup.
'use strict';

const { BULLMQ, connection, uniqueQueueName, openQueue, rawRedis } = require('../lib/harness');
const { scripts, streamEvents } = require('../lib/scripts');

async function setup(tag, major = 6) {
  const name = uniqueQueueName(tag);
  const queue = await openQueue(major, name);
  const redis = rawRedis();
  const s = scripts(redis, name);
  const opened = [queue];
  const ctx = {
    name, queue, redis, s, P: s.P, bull: BULLMQ[major],
    events: () => streamEvents(redis, s.P),
    job: (id) => BULLMQ[major].Job.fromId(queue, id),
    state: (id) => queue.getJobState(id),
    // Another Node object (Worker, QueueEvents, FlowProducer...) closed at cleanup.
    track(o) { opened.push(o); return o; },
    async cleanup() {
      for (const o of opened.slice(1).reverse()) await o.close().catch(() => {});
      await queue.obliterate({ force: true }).catch(() => {});
      // tests leave orphans on purpose (ids taken out of lists): remove whatever remains
      const stream = redis.scanStream({ match: `${s.P}*`, count: 500 });
      for await (const keys of stream) if (keys.length) await redis.del(...keys);
      await queue.close();
      redis.disconnect();
    },
  };
  return ctx;
}

// The events written after stream entry index `from`, without timestamps: [event, jobId, ...].
function brief(evs) {
  return evs.map((e) => [e.event, e.jobId, e.prev].filter((x) => x !== undefined).join(' '));
}

// Runs a real Node Worker on queue `name` until `n` jobs have finished (completed or failed).
async function runNodeWorker(major, name, n, processor, opts = {}) {
  const { Worker } = BULLMQ[major];
  let done = 0;
  let resolve;
  const finished = new Promise((r) => { resolve = r; });
  const w = new Worker(name, processor, { connection: connection(), ...opts });
  const tick = () => { if (++done >= n) resolve(); };
  w.on('completed', tick);
  w.on('failed', tick);
  let timer;
  const timeout = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('node worker timeout')), 15000); });
  try {
    await Promise.race([finished, timeout]);
  } finally {
    clearTimeout(timer);
    await w.close();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { setup, brief, runNodeWorker, sleep, connection };
