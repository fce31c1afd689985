// BullMQ's own Worker, configured from the same environment variables as `rex-worker serve`, so
// the worker scenarios can be run against it (WORKER_IMPL=node) to prove they test BullMQ's
// behaviour. SIGTERM/SIGINT close it gracefully, like rex-worker.
'use strict';

const { Worker } = require('bullmq');
const { dispatch } = require('./handlers');

const env = process.env;
const u = new URL(env.REDIS_URL);
const num = (k, d) => (env[k] === undefined ? d : Number(env[k]));
const keep = (k, d) => (env[k] === undefined ? d : JSON.parse(env[k]));

const opts = {
  connection: { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null },
  prefix: env.BULL_PREFIX || 'bull',
  concurrency: num('WORKER_CONCURRENCY', 5),
  lockDuration: num('LOCK_DURATION_MS', 30000),
  stalledInterval: num('STALLED_INTERVAL_MS', 30000),
  maxStalledCount: num('MAX_STALLED_COUNT', 1),
  drainDelay: num('DRAIN_DELAY_MS', 5000) / 1000,
  removeOnComplete: keep('REMOVE_ON_COMPLETE', { count: 1000 }),
  removeOnFail: keep('REMOVE_ON_FAIL', { count: 5000 }),
};
if (env.WORKER_NAME) opts.name = env.WORKER_NAME;
if (env.WORKER_LIMITER_MAX) {
  opts.limiter = { max: num('WORKER_LIMITER_MAX'), duration: num('WORKER_LIMITER_DURATION_MS', 1000) };
}
if (env.MAX_STARTED_ATTEMPTS) opts.maxStartedAttempts = num('MAX_STARTED_ATTEMPTS');
// BullMQ's removeOnComplete:true is KeepJobs {count:0}; numbers and objects pass through.
for (const k of ['removeOnComplete', 'removeOnFail']) {
  if (opts[k] === true) opts[k] = { count: 0 };
  else if (opts[k] === false) opts[k] = { count: -1 };
  else if (typeof opts[k] === 'number') opts[k] = { count: opts[k] };
}

const worker = new Worker(env.QUEUE_NAME || 'workflow-execution', dispatch, opts);
worker.on('error', (e) => console.error('worker error', e && e.message));
worker.on('ready', () => console.error('{"msg":"connected to redis"}'));
let closing = false;
const close = () => {
  if (closing) process.exit(1);
  closing = true;
  worker.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', close);
process.on('SIGINT', close);
