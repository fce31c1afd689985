// Shared helpers for the interoperability tests: the real npm bullmq (6.x and the 5.x REX pins)
// on the other side of the queue, against the Redis that scripts/services.sh started.
'use strict';

const path = require('node:path');
const IORedis = require('ioredis');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BULLMQ = { 6: require('bullmq'), 5: require('bullmq5') };

function redisUrl() {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: run through scripts/test.sh');
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(u.hostname)) {
    throw new Error(`tests only talk to loopback servers, not ${u.hostname}`);
  }
  return url;
}

function connection() {
  const u = new URL(redisUrl());
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
}

function uniqueQueueName(tag) {
  return `interop-${tag}-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
}

// Opens a Queue of the given bullmq major version; the caller closes it.
async function openQueue(major, name, opts = {}) {
  const { Queue } = BULLMQ[major];
  const q = new Queue(name, { connection: connection(), ...opts });
  await q.waitUntilReady();
  return q;
}

function rawRedis() {
  return new IORedis(connection());
}

module.exports = { ROOT, BULLMQ, connection, redisUrl, uniqueQueueName, openQueue, rawRedis };
