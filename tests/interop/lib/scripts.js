// Loads rex-worker's own queue scripts (as assembled by the build into
// <build>/queue_scripts/<name>.lua) and runs them with ioredis, the way the C driver does:
// KEYS[1] = the queue's base key, ARGV as in core/queue/scripts/README.md.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { ROOT } = require('./harness');

const BUILD = process.env.REX_BUILD_DIR || path.join(ROOT, 'build');
const NAMES = ['fetch', 'finish', 'finish_many', 'delay', 'retry', 'extend_locks', 'stalled', 'progress', 'log',
  'push_back', 'add', 'scheduler_next'];

function scriptText(name) {
  const file = path.join(BUILD, 'queue_scripts', `${name}.lua`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: build first (REX_BUILD_DIR)`);
  return fs.readFileSync(file, 'utf8');
}

// Registers every script on the ioredis client as rex_<name>(P, ...argv) (EVALSHA, with the
// NOSCRIPT fallback ioredis does) and returns a small facade bound to queue `name`.
function scripts(redis, queueName, prefix = 'bull') {
  for (const n of NAMES) {
    const cmd = `rex_${n}`;
    if (!redis[cmd]) redis.defineCommand(cmd, { numberOfKeys: 1, lua: scriptText(n) });
  }
  const P = `${prefix}:${queueName}:`;
  const s = (v) => (v === undefined || v === null ? '' : String(v));
  const call = (n, ...argv) => redis[`rex_${n}`](P, ...argv.map(s));
  return {
    P,
    // fetch reply {job, id, rateLimitDelay, nextDelayed}; job is an object or null.
    async fetch({ now = Date.now(), token = 'tok-1', lockDuration = 30000, limiterMax, limiterDuration,
      name } = {}) {
      return fetchReply(await call('fetch', now, token, lockDuration, limiterMax, limiterDuration, name));
    },
    async finish(id, { token = 'tok-1', now = Date.now(), target = 'completed', value = 'null',
      keepJobs = { count: -1 }, attempts = 0, fetchNext = false, stacktrace, nextToken = 'tok-2',
      lockDuration = 30000, limiterMax, limiterDuration, name } = {}) {
      const r = await call('finish', id, token, now, target, value, JSON.stringify(keepJobs), attempts,
        fetchNext ? 1 : 0, stacktrace, nextToken, lockDuration, limiterMax, limiterDuration, name);
      return Array.isArray(r) ? fetchReply(r) : r;
    },
    delay: (id, { token = 'tok-1', now = Date.now(), delay = 0, failedReason, stacktrace,
      skipAttempt = false } = {}) =>
      call('delay', id, token, now, delay, failedReason, stacktrace, skipAttempt ? 1 : 0),
    retry: (id, { token = 'tok-1', now = Date.now(), lifo = false, failedReason, stacktrace } = {}) =>
      call('retry', id, token, now, lifo ? 1 : 0, failedReason, stacktrace),
    extendLocks: (lockDuration, pairs) => call('extend_locks', lockDuration, ...pairs.flat()),
    stalled: ({ now = Date.now(), maxStalledCount = 1, stalledInterval = 30000 } = {}) =>
      call('stalled', now, maxStalledCount, stalledInterval),
    progress: (id, value) => call('progress', id, JSON.stringify(value)),
    log: (id, line, keepLogs) => call('log', id, line, keepLogs),
    pushBack: (id, token = 'tok-1') => call('push_back', id, token),
    // finish_many: jobs = [{id, token, target, value, keepJobs, attempts, stacktrace, nextToken}]
    finishMany: (jobs, { now = Date.now(), lockDuration = 30000, limiterMax, limiterDuration, name } = {}) =>
      call('finish_many', now, lockDuration, limiterMax, limiterDuration, name, jobs.length,
        ...jobs.flatMap((j) => [j.id, j.token, j.target || 'completed', j.value === undefined ? 'null' : j.value,
          JSON.stringify(j.keepJobs || { count: -1 }), j.attempts || 0, j.stacktrace, j.nextToken])),
    async add(name, data, { opts = {}, timestamp = Date.now(), jobId, delay = 0, priority = 0,
      lifo = false } = {}) {
      const stored = { attempts: 0, ...opts };
      if (delay) stored.delay = delay;
      if (priority) stored.priority = priority;
      if (lifo) stored.lifo = true;
      if (jobId) stored.jobId = jobId;
      const [id, created] = await call('add', name, JSON.stringify(data), JSON.stringify(stored),
        timestamp, jobId, delay, priority, lifo ? 1 : 0);
      return { id, created };
    },
    schedulerNext: (schedulerId, { nextMillis, producerId, now = Date.now(), opts = {}, every } = {}) =>
      call('scheduler_next', schedulerId, nextMillis, producerId, now, JSON.stringify(opts), every),
  };
}

function fetchReply(r) {
  const [flat, id, rateLimitDelay, nextDelayed] = r;
  let job = null;
  if (Array.isArray(flat)) {
    job = {};
    for (let i = 0; i < flat.length; i += 2) job[flat[i]] = flat[i + 1];
  }
  return { job, id: id === 0 ? null : id, rateLimitDelay, nextDelayed };
}

// Entries of a queue's events stream as plain objects ({event, jobId, ...}).
async function streamEvents(redis, P) {
  const entries = await redis.xrange(`${P}events`, '-', '+');
  return entries.map(([, kv]) => {
    const o = {};
    for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
    return o;
  });
}

module.exports = { scripts, scriptText, fetchReply, streamEvents, BUILD };
