// Worker scenarios: a real npm bullmq producer and QueueEvents on one side, a worker process on
// the other: `rex-worker serve` (default) or BullMQ's own Node Worker (WORKER_IMPL=node, see
// node-worker.js), started and stopped by PID, with the same environment variables.
'use strict';

const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { ROOT, BULLMQ, connection, uniqueQueueName, openQueue, rawRedis } = require('./harness');

const IMPL = process.env.WORKER_IMPL || 'rex';
const REX_BIN = process.env.REX_WORKER_BIN || path.join(ROOT, 'build', 'rex-worker');
const HANDLERS = path.join(ROOT, 'tests', 'interop', 'handlers');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts a worker process for `queue`. Resolves once it is connected.
async function startWorker(queue, env = {}) {
  const fullEnv = {
    PATH: process.env.PATH,
    REDIS_URL: process.env.REDIS_URL,
    QUEUE_NAME: queue,
    REX_JOBS_PATH: HANDLERS,
    LOG_LEVEL: 'info',
    REX_ENV_FILE: '/dev/null',
    ...env,
  };
  const [cmd, args] = IMPL === 'node'
    ? [process.execPath, [path.join(ROOT, 'tests', 'interop', 'node-worker.js')]]
    : [REX_BIN, ['serve']];
  const proc = spawn(cmd, args, { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const w = { proc, stderr: '', exited: null };
  w.exit = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { w.exited = { code, signal }; resolve(w.exited); });
  });
  proc.stderr.on('data', (d) => { w.stderr += d; });
  proc.stdout.on('data', () => {});
  const deadline = Date.now() + 10000;
  while (!w.stderr.includes('connected to redis')) {
    if (w.exited) throw new Error(`worker exited at start: ${JSON.stringify(w.exited)}\n${w.stderr}`);
    if (Date.now() > deadline) throw new Error(`worker did not connect:\n${w.stderr}`);
    await sleep(20);
  }
  // Resolves once the worker's log matches re. The log comes through a pipe, so a line may
  // arrive a little after the row or event it reports on. Bounded: rejects after timeoutMs.
  w.waitLog = async (re, timeoutMs = 5000) => {
    const end = Date.now() + timeoutMs;
    while (!re.test(w.stderr)) {
      if (Date.now() > end) throw new Error(`no log line matching ${re} within ${timeoutMs} ms:\n${w.stderr.slice(-3000)}`);
      await sleep(20);
    }
  };
  // Stops by signal; resolves with {code, signal}. Bounded: SIGKILL after `timeoutMs`.
  w.stop = async (signal = 'SIGTERM', timeoutMs = 15000) => {
    if (w.exited) return w.exited;
    proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const r = await w.exit;
    clearTimeout(t);
    return r;
  };
  return w;
}

// One scenario: a fresh queue, a producer of bullmq `major`, QueueEvents recording everything,
// and workers started through ctx.start(); all of it stopped by t.after.
async function scenario(t, { major = 6, env = {}, start = true, tag = 'w' } = {}) {
  const name = uniqueQueueName(`${tag}${major}`);
  const queue = await openQueue(major, name);
  const { QueueEvents, Job } = BULLMQ[major];
  const qe = new QueueEvents(name, { connection: connection() });
  await qe.waitUntilReady();
  const events = [];
  const names = ['added', 'waiting', 'active', 'progress', 'completed', 'failed', 'delayed',
    'retries-exhausted', 'stalled', 'drained', 'paused', 'resumed'];
  for (const n of names) qe.on(n, (args) => events.push({ event: n, at: Date.now(), ...(args || {}) }));
  const workers = [];
  const redis = rawRedis();
  const ctx = {
    name, queue, events, redis, bull: BULLMQ[major],
    job: (id) => Job.fromId(queue, id),
    async start(extraEnv = {}) {
      const w = await startWorker(name, { ...env, ...extraEnv });
      workers.push(w);
      return w;
    },
    // Resolves with the first event matching; rejects after timeoutMs.
    async waitFor(event, jobId, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const e = events.find((x) => x.event === event && (jobId === undefined || x.jobId === String(jobId)));
        if (e) return e;
        if (Date.now() > deadline) {
          throw new Error(`no ${event} event for job ${jobId} within ${timeoutMs} ms; saw ${JSON.stringify(events.map((x) => [x.event, x.jobId]))}\nworker log:\n${workers.map((w) => w.stderr).join('\n')}`);
        }
        await sleep(20);
      }
    },
    async waitCount(event, n, timeoutMs = 15000) {
      const deadline = Date.now() + timeoutMs;
      while (events.filter((x) => x.event === event).length < n) {
        if (Date.now() > deadline) throw new Error(`fewer than ${n} ${event} events within ${timeoutMs} ms`);
        await sleep(20);
      }
      return events.filter((x) => x.event === event);
    },
    of: (event, jobId) => events.filter((x) => x.event === event && (jobId === undefined || x.jobId === String(jobId))),
  };
  if (start) await ctx.start();
  t.after(async () => {
    for (const w of workers) await w.stop('SIGKILL').catch(() => {});
    await qe.close().catch(() => {});
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close().catch(() => {});
    redis.disconnect();
  });
  return ctx;
}

// Restarts the test Redis keeping its data (SAVE, then the services script restarts it by PID).
function restartRedis() {
  const dir = process.env.REX_SERVICES_DIR;
  if (!dir) throw new Error('REX_SERVICES_DIR is not set');
  execFileSync('redis-cli', ['-u', process.env.REDIS_URL, 'SAVE']);
  execFileSync(path.join(ROOT, 'scripts', 'services.sh'), ['restart-redis', dir]);
}

module.exports = { IMPL, REX_BIN, startWorker, scenario, restartRedis, sleep };
