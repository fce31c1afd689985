// Chaos run for execute-workflow: a Node bullmq 5.x producer enqueues executions as REX's backend
// does while rex-worker processes run them, and faults are injected at random (seeded): Redis
// connections killed (CLIENT KILL), Redis paused (CLIENT PAUSE) or restarted, PostgreSQL connections
// terminated, PostgreSQL restarted, a telemetry table locked, workers SIGKILLed, frozen or stopped with
// SIGTERM and started again. Then the faults stop, the queue is drained, and what a user relies
// on is checked:
//   - every job added ends completed or failed, none in both, none left waiting/active/delayed;
//   - a completed job's execution is `completed` with one clean set of telemetry (every step,
//     attempt and snapshot once); a failed job's execution is `failed` with a message; no
//     execution is left `pending` or `running`; an execution stopped by a request (as REX's
//     backend makes them, at random moments) stays `canceled`;
//   - a knowledge document re-ingested by overlapping jobs has exactly one set of chunks, the
//     same as its first, clean ingestion, and ends `ready`;
//   - plain jobs (tests/interop/handlers' fail-until: fails until attempt n, some delayed, some
//     prioritized), on a queue of their own served by a rex-worker and BullMQ's own Node worker
//     side by side (a fleet moving from one to the other), complete once, on attempt n+1, with
//     their return value;
//   - a job is completed once: one `completed` event per completed job in the events stream;
//   - no lock is left behind; workers stopped with SIGTERM exit 0.
// Workers are also frozen (SIGSTOP) past their lock duration and thawed while another worker re-runs
// their jobs.
// Prints a summary; exits 1 with the violations otherwise.
//
// usage: node tests/chaos/chaos.js [seconds=60] [seed=random]
// Needs REDIS_URL, DATABASE_URL and REX_SERVICES_DIR (scripts/services.sh) and REX_WORKER_BIN;
// scripts/chaos.sh sets everything up.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const NM = path.join(ROOT, 'tests', 'interop', 'node_modules');
const { Queue } = require(path.join(NM, 'bullmq5'));
const IORedis = require(path.join(NM, 'ioredis'));

const SECONDS = Number(process.argv[2] || 60);
const SEED = Number(process.argv[3] || crypto.randomInt(1, 2 ** 31));
const BIN = process.env.REX_WORKER_BIN || path.join(ROOT, 'build', 'rex-worker');
const DB = process.env.DATABASE_URL;
const SERVICES = process.env.REX_SERVICES_DIR;
const REDIS = new URL(process.env.REDIS_URL || '');
for (const [name, host] of [['REDIS_URL', REDIS.hostname], ['DATABASE_URL', DB && new URL(DB).hostname]]) {
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    throw new Error(`${name} must point at a throwaway loopback server (scripts/chaos.sh starts one)`);
  }
}
if (!SERVICES) throw new Error('REX_SERVICES_DIR is not set (scripts/services.sh)');

const WORKERS = 2;
const CONCURRENCY = 4;
const RATE = 40; // executions enqueued per second while the faults run
const DRAIN_MS = 180000;
const USER = '66666666-6666-4666-8666-666666666666';
const TENANT = '00000000-0000-0000-0000-000000000001';
const NODES = path.join(ROOT, 'tests', 'interop', 'execute', 'nodes');
// More attempts than REX's 3, so a run of faults seldom exhausts them; either end is checked.
const OPTS = { attempts: 8, backoff: { type: 'fixed', delay: 300 }, removeOnComplete: false, removeOnFail: false };
const STEPS = 7;
const DOCUMENTS = 12;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// mulberry32: the faults and their timing follow from the seed
let rngState = SEED >>> 0;
function rand() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (a, b) => a + Math.floor(rand() * (b - a + 1));

// SQL through psql's stdin; resolves with stdout, rejects on failure.
function psql(sql) {
  return new Promise((resolve, reject) => {
    const p = spawn('psql', [DB, '-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(err.trim() || `psql exited ${code}`))));
    p.stdin.end(sql);
  });
}
const lit = (v) => `'${String(v).replace(/'/g, "''")}'`;

function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('close', (code) => resolve(code));
  });
}

// A 7-node pipeline; the test-sleep node holds each execution for a while so faults land mid-run.
function workflow(ms) {
  return {
    nodes: [
      { id: 'trigger', type: 'manual-trigger', config: {} },
      { id: 'clean', type: 'data-cleaner', config: { operations: ['trim', 'mask-pii'] } },
      { id: 'shape', type: 'transformer', config: { mappings: { customer: 'cleaned.customer', amount: 'cleaned.amount' } } },
      { id: 'wait', type: 'test-sleep', config: { ms } },
      { id: 'validate', type: 'json-validator', config: { requiredFields: ['customer', 'amount'] } },
      { id: 'gate', type: 'condition', config: { field: 'amount', operator: 'greater_than', value: 100 } },
      { id: 'out', type: 'output', config: {} },
    ],
    edges: [
      { source: 'trigger', target: 'clean' }, { source: 'clean', target: 'shape' },
      { source: 'shape', target: 'wait' }, { source: 'wait', target: 'validate' },
      { source: 'validate', target: 'gate' }, { source: 'gate', target: 'out', condition: 'true' },
    ],
  };
}
const PAYLOAD = { customer: '  Alice Example  ', amount: '250', note: ' alice@example.com ' };

// ---- workers -----------------------------------------------------------------------------------

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rex-chaos-'));
let spawned = 0;
const violations = [];
const stopping = new Set(); // processes sent SIGTERM by us: they must exit 0
const all = []; // every worker process started, killed if this script ends early
process.on('exit', () => { for (const w of all) if (!w.exited) w.proc.kill('SIGKILL'); });

// A worker process for `queueName`: `rex-worker serve`, or (impl 'node') BullMQ's own Worker
// with the same handlers (tests/interop/node-worker.js), as in a fleet moving from one to the
// other.
function startWorker(queueName, impl = 'rex') {
  const n = ++spawned;
  const log = fs.openSync(path.join(logDir, `worker-${n}-${impl}.log`), 'w');
  const env = {
    PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, DATABASE_URL: DB,
    QUEUE_NAME: queueName, WORKER_CONCURRENCY: String(CONCURRENCY), REX_NODES_PATH: NODES,
    // a grace period shorter than terminate()'s 20 s: a worker that cannot close exits 1
    SHUTDOWN_GRACE_MS: '15000',
    REX_JOBS_PATH: path.join(ROOT, 'tests', 'interop', 'handlers'), LOCK_DURATION_MS: '4000',
    STALLED_INTERVAL_MS: '2000', MAX_STALLED_COUNT: '3', LOG_LEVEL: 'info', REX_ENV_FILE: '/dev/null',
    WORKER_NAME: `chaos-${impl}`, // the job hash's processedBy (pb) tells who ran a job last
  };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  const [cmd, args] = impl === 'node'
    ? [process.execPath, [path.join(ROOT, 'tests', 'interop', 'node-worker.js')]] : [BIN, ['serve']];
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', log] });
  fs.closeSync(log);
  const w = { n, proc, exited: null, queue: queueName, impl };
  all.push(w);
  w.exit = new Promise((resolve) => proc.on('exit', (code, signal) => {
    w.exited = { code, signal };
    if (stopping.has(w) && code !== 0 && impl === 'rex') {
      violations.push(`${impl} worker ${n} stopped with SIGTERM exited ${JSON.stringify(w.exited)} (log: ${logDir}/worker-${n}-${impl}.log)`);
    }
    resolve(w.exited);
  }));
  return w;
}

// Stops a worker with SIGTERM: a rex-worker must exit 0 within its grace period. SIGKILL after
// 20 s; BullMQ's Node worker is only counted then (its close can hang after a lost connection,
// which is BullMQ's to answer for, not what this run tests).
const nodeKilled = { count: 0 };
async function terminate(w) {
  if (w.exited) return;
  stopping.add(w);
  w.proc.kill('SIGTERM');
  const t = setTimeout(() => {
    if (w.impl === 'rex') violations.push(`worker ${w.n} did not exit within 20 s of SIGTERM`);
    else nodeKilled.count++;
    w.proc.kill('SIGKILL');
  }, 20000);
  await w.exit;
  clearTimeout(t);
}

// ---- main --------------------------------------------------------------------------------------

async function main() {
  const queueName = `chaos-${process.pid}-${Date.now()}`;
  const connection = { host: REDIS.hostname, port: Number(REDIS.port), maxRetriesPerRequest: null };
  const queue = new Queue(queueName, { connection, streams: { events: { maxLen: 1000000 } } });
  await queue.waitUntilReady();
  const admin = new IORedis(connection);
  admin.on('error', () => {});
  const key = (k) => `bull:${queueName}:${k}`;
  // plain jobs have a queue of their own, served by a rex-worker and a BullMQ Node worker
  const plainName = `${queueName}-plain`;
  const plainQueue = new Queue(plainName, { connection, streams: { events: { maxLen: 1000000 } } });
  await plainQueue.waitUntilReady();
  const pkey = (k) => `bull:${plainName}:${k}`;

  await run(BIN, ['migrate']);
  await psql(`INSERT INTO users (id, email, name, password_hash) VALUES (${lit(USER)},
    'chaos@example.test', 'chaos', 'x') ON CONFLICT DO NOTHING`);
  const workflows = [];
  for (const ms of [2, 40, 300]) {
    const id = crypto.randomUUID();
    const wf = workflow(ms);
    await psql(`INSERT INTO workflows (id, tenant_id, user_id, name, status, nodes, edges) VALUES
      (${lit(id)}, ${lit(TENANT)}, ${lit(USER)}, 'chaos ${ms} ms', 'active',
      ${lit(JSON.stringify(wf.nodes))}::jsonb, ${lit(JSON.stringify(wf.edges))}::jsonb)`);
    workflows.push(id);
  }

  // Knowledge documents, each ingested once before the faults start (their chunks are the
  // reference) and then again, now and then, while they run.
  const corpusId = crypto.randomUUID();
  await psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name, scope_type, status)
    VALUES (${lit(corpusId)}, ${lit(TENANT)}, ${lit(USER)}, 'chaos corpus', 'user', 'ingesting')`);
  const docs = [];
  for (let i = 0; i < DOCUMENTS; i++) {
    const id = crypto.randomUUID();
    const text = Array.from({ length: 1 + (i % 4) }, (_, p) => `Section ${p} of document ${i}. `
      + 'Returned items are refunded within thirty days once the parcel is inspected. '.repeat(12)).join('\n\n');
    await psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text)
      VALUES (${lit(id)}, ${lit(TENANT)}, ${lit(corpusId)}, ${lit(USER)}, 'doc ${i}', ${lit(text)})`);
    docs.push(id);
  }
  const added = []; // every job id, in the order added
  const stopped = new Set(); // executions a stop request canceled
  const plain = new Map(); // plain job id -> the attempts_made it succeeds at
  let plainSeq = 0;
  const ingestions = new Map(); // job id -> document id
  let ingestSeq = 0;
  const ingestJob = (documentId) => {
    const jobId = `ingest-${documentId}-${++ingestSeq}`;
    ingestions.set(jobId, documentId);
    return { name: 'ingest-knowledge-document', data: { corpusId, documentId, userId: USER },
      opts: { ...OPTS, jobId } };
  };

  const slots = [];
  for (let i = 0; i < WORKERS; i++) slots.push(startWorker(queueName));
  slots.push(startWorker(plainName, 'rex'), startWorker(plainName, 'node'));
  const restart = (w) => startWorker(w.queue, w.impl);
  const first = docs.map(ingestJob);
  await queue.addBulk(first);
  for (const j of first) added.push(j.opts.jobId);
  const reference = new Map();
  for (const end = Date.now() + 60000; ;) {
    const rows = await psql(`SELECT count(*) FROM knowledge_documents WHERE corpus_id = ${lit(corpusId)}
      AND status = 'ready'`);
    if (Number(rows) === docs.length) break;
    if (Date.now() > end) throw new Error('the first ingestion of the documents did not finish within 60 s');
    await sleep(200);
  }
  for (const line of (await psql(`SELECT document_id, string_agg(chunk_index || ':' || md5(content), ','
    ORDER BY chunk_index) FROM knowledge_chunks WHERE corpus_id = ${lit(corpusId)} GROUP BY 1`)).split('\n')) {
    const [doc, chunks] = line.split('|');
    reference.set(doc, chunks);
  }
  if (reference.size !== docs.length) throw new Error('not every document got chunks in its first ingestion');

  const deadline = Date.now() + SECONDS * 1000;
  const faults = {};
  let producing = true;

  // The producer: what REX's backend does (executions row and authorization row, then the job),
  // a batch every 100 ms; a batch is retried until PostgreSQL and Redis take it.
  const producer = (async () => {
    while (producing) {
      const batch = [];
      for (let i = 0; i < RATE / 10; i++) {
        batch.push({ id: crypto.randomUUID(), auth: crypto.randomUUID(), wf: workflows[between(0, workflows.length - 1)] });
      }
      const sql = batch.map((b) => `INSERT INTO executions (id, tenant_id, workflow_id, status, trigger_payload)
        VALUES (${lit(b.id)}, ${lit(TENANT)}, ${lit(b.wf)}, 'pending', ${lit(JSON.stringify(PAYLOAD))}::jsonb)
        ON CONFLICT DO NOTHING;
        INSERT INTO execution_authorizations (id, tenant_id, execution_id, workflow_id, user_id, action,
        attributes, expires_at, revoked) VALUES (${lit(b.auth)}, ${lit(TENANT)}, ${lit(b.id)}, ${lit(b.wf)},
        ${lit(USER)}, 'execute', '{"trigger":"api"}'::jsonb, now() + interval '30 minutes', false)
        ON CONFLICT DO NOTHING;`).join('\n');
      for (let tries = 0; ; tries++) {
        try {
          await psql(sql);
          break;
        } catch (e) {
          if (tries > 100) throw new Error(`producer: PostgreSQL did not come back: ${e.message}`);
          await sleep(200);
        }
      }
      const jobs = batch.map((b) => ({
        name: 'execute-workflow',
        data: { executionId: b.id, workflowId: b.wf, triggerPayload: PAYLOAD, userId: USER, executionAuthorizationId: b.auth },
        opts: { ...OPTS, jobId: b.id },
      }));
      // plain jobs: retried until their attempt, some delayed, some prioritized
      const plainJobs = [];
      for (let i = 0; i < 2; i++) {
        const jobId = `plain-${++plainSeq}`;
        const succeedAt = between(0, 2);
        plain.set(jobId, succeedAt);
        const extra = rand() < 0.3 ? { delay: between(50, 1500) } : rand() < 0.3 ? { priority: between(1, 10) } : {};
        plainJobs.push({ name: 'fail-until', data: { succeedAt }, opts: { ...OPTS, ...extra, jobId } });
      }
      // and now and then two ingestions of one document at once
      if (rand() < 0.3) {
        const doc = docs[between(0, docs.length - 1)];
        jobs.push(ingestJob(doc), ingestJob(doc));
      }
      await queue.addBulk(jobs);
      await plainQueue.addBulk(plainJobs);
      for (const j of jobs) added.push(j.opts.jobId);
      // now and then a stop request, as REX's backend makes it, for a recent execution (likely
      // waiting or running); it must win whatever the worker is doing
      if (rand() < 0.2) {
        const recent = added.filter((id) => !ingestions.has(id)).slice(-40);
        const id = recent[between(0, recent.length - 1)];
        try {
          const hit = await psql(`UPDATE executions SET status = 'canceled', error_message = 'Stopped by user',
            finished_at = now() WHERE id = ${lit(id)} AND status IN ('pending', 'running') RETURNING id`);
          if (hit) stopped.add(id);
        } catch (e) { /* PostgreSQL restarting: no stop request this time */ }
      }
      await sleep(100);
    }
  })();

  const FAULTS = [
    ['redis-client-kill', 2, async () => { await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); }],
    ['redis-pause', 1, async () => { await admin.client('PAUSE', String(between(200, 6000))); }],
    ['redis-restart', 1, async () => {
      // lossless: with a save point set, Redis writes everything to disk when it stops (the
      // command line of scripts/services.sh has none, and a restart brings that back)
      await admin.config('SET', 'save', '3600 1');
      await run(path.join(ROOT, 'scripts', 'services.sh'), ['restart-redis', SERVICES]);
    }],
    ['pg-terminate', 2, async () => {
      await psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE application_name = 'rex-worker' AND pid <> pg_backend_pid()`);
    }],
    ['pg-restart', 1, async () => { await run(path.join(ROOT, 'scripts', 'services.sh'), ['restart-postgres', SERVICES]); }],
    ['pg-lock-table', 1, async () => {
      // holds the lock in the background; workers wait on it (or time out and retry)
      psql(`BEGIN; LOCK TABLE execution_steps IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(${between(5, 30) / 10}); COMMIT;`).catch(() => {});
    }],
    ['worker-sigkill', 2, async () => {
      const i = between(0, slots.length - 1);
      slots[i].proc.kill('SIGKILL');
      await slots[i].exit;
      await sleep(between(0, 1000));
      slots[i] = restart(slots[i]);
    }],
    ['worker-sigstop', 1, async () => {
      // frozen past its lock duration: its jobs are recovered by the other worker while it
      // still runs them (a VM pause, a lost network): it must not finish them or write over the re-run
      const w = slots[between(0, slots.length - 1)];
      w.proc.kill('SIGSTOP');
      await sleep(between(4500, 8000));
      w.proc.kill('SIGCONT');
    }],
    ['worker-sigterm', 1, async () => {
      const i = between(0, slots.length - 1);
      const old = slots[i];
      slots[i] = restart(old); // the old one finishes its jobs meanwhile
      terminate(old);
    }],
  ];
  const total = FAULTS.reduce((s, f) => s + f[1], 0);
  while (Date.now() < deadline) {
    await sleep(between(200, 1200));
    let r = rand() * total;
    const fault = FAULTS.find((f) => (r -= f[1]) < 0) || FAULTS[0];
    faults[fault[0]] = (faults[fault[0]] || 0) + 1;
    try {
      await fault[2]();
    } catch (e) {
      // a fault that could not be injected (e.g. Redis still paused) is counted, not fatal
      faults[`${fault[0]} (not injected)`] = (faults[`${fault[0]} (not injected)`] || 0) + 1;
    }
  }
  producing = false;
  await producer;

  // Drain: every worker slot running, then wait until no job is waiting, active or delayed.
  for (let i = 0; i < slots.length; i++) if (slots[i].exited) slots[i] = restart(slots[i]);
  const drainEnd = Date.now() + DRAIN_MS;
  let counts;
  for (;;) {
    const names = ['wait', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children', 'completed', 'failed'];
    const [m, pl] = [await queue.getJobCounts(...names), await plainQueue.getJobCounts(...names)];
    counts = Object.fromEntries(names.map((k) => [k, m[k] + pl[k]]));
    const open = counts.wait + counts.active + counts.delayed + counts.prioritized + counts.paused + counts['waiting-children'];
    if (open === 0 && counts.completed + counts.failed === added.length + plain.size) break;
    if (Date.now() > drainEnd) {
      violations.push(`not drained within ${DRAIN_MS / 1000} s: ${JSON.stringify(counts)} of ${added.length + plain.size} added`);
      break;
    }
    await sleep(250);
  }
  for (const w of slots) await terminate(w);
  // A final status journaled while PostgreSQL was down is applied by a later job or by a
  // worker's idle() call: give it that time before the checks.
  const idList = `ARRAY[${added.filter((id) => !ingestions.has(id) && !plain.has(id)).map(lit).join(',')}]::uuid[]`;
  for (const end = Date.now() + 30000; Date.now() < end;) {
    const open = Number(await psql(`SELECT count(*) FROM executions WHERE id = ANY(${idList})
      AND status IN ('pending', 'running')`));
    if (open === 0) break;
    if (slots.every((w) => w.exited)) for (let i = 0; i < slots.length; i++) slots[i] = restart(slots[i]);
    await sleep(500);
  }
  for (const w of slots) await terminate(w);

  // ---- checks ----------------------------------------------------------------------------------
  const completed = new Set(await admin.zrange(key('completed'), 0, -1));
  const failed = new Set(await admin.zrange(key('failed'), 0, -1));
  const ids = added.filter((id) => !ingestions.has(id) && !plain.has(id));
  const execs = JSON.parse(await psql(`SELECT coalesce(json_agg(t), '[]') FROM (
    SELECT e.id, e.status, e.started_at IS NOT NULL AS started, e.finished_at IS NOT NULL AS finished,
      e.error_message,
      (SELECT count(*) FROM execution_steps s WHERE s.execution_id = e.id) AS steps,
      (SELECT count(DISTINCT node_id) FROM execution_steps s WHERE s.execution_id = e.id) AS step_nodes,
      (SELECT count(*) FILTER (WHERE status <> 'completed') FROM execution_steps s WHERE s.execution_id = e.id) AS steps_not_completed,
      (SELECT count(*) FROM execution_step_attempts a WHERE a.execution_id = e.id) AS attempts,
      (SELECT count(*) FROM execution_context_snapshots c WHERE c.execution_id = e.id) AS snapshots,
      (SELECT count(DISTINCT sequence) FROM execution_context_snapshots c WHERE c.execution_id = e.id) AS sequences,
      (SELECT max(sequence) FROM execution_context_snapshots c WHERE c.execution_id = e.id) AS last_sequence
    FROM executions e WHERE e.id = ANY(${idList})) t`));
  const byId = new Map(execs.map((e) => [e.id, e]));

  const completedEvents = new Map();
  for (const stream of [key('events'), pkey('events')]) {
    for (let cursor = '-'; ;) {
      const page = await admin.xrange(stream, cursor, '+', 'COUNT', 5000);
      for (const [, fields] of page) {
        const f = {};
        for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
        if (f.event === 'completed') completedEvents.set(f.jobId, (completedEvents.get(f.jobId) || 0) + 1);
      }
      if (page.length < 5000) break;
      cursor = `(${page[page.length - 1][0]}`;
    }
  }

  const attemptsMade = {};
  const failReasons = {};
  const bad = (id, what) => violations.push(`${id}: ${what}`);
  for (const id of ids) {
    const e = byId.get(id);
    const inC = completed.has(id);
    const inF = failed.has(id);
    if (inC === inF) bad(id, `job ${inC ? 'both completed and failed' : 'neither completed nor failed'}`);
    if (!e) { bad(id, 'execution row missing'); continue; }
    // (a stop request before the pickup leaves started_at unset)
    if ((!e.started && !stopped.has(id)) || !e.finished) bad(id, `execution ${e.status} without started_at/finished_at`);
    const events = completedEvents.get(id) || 0;
    if (stopped.has(id)) {
      // stays canceled, whatever its run did after the request; its rows are no duplicates
      if (events !== (inC ? 1 : 0)) bad(id, `${events} completed events`);
      if (e.status !== 'canceled' || e.error_message !== 'Stopped by user') {
        bad(id, `stopped, but the execution ended ${e.status} (${e.error_message})`);
      }
      if (e.steps !== e.step_nodes || e.snapshots !== e.sequences) bad(id, `duplicate telemetry: ${JSON.stringify(e)}`);
    } else if (inC) {
      if (events !== 1) bad(id, `${events} completed events`);
      if (e.status !== 'completed') bad(id, `job completed, execution ${e.status} (${e.error_message})`);
      if (e.steps !== STEPS || e.step_nodes !== STEPS || e.steps_not_completed !== 0 || e.attempts !== STEPS
        || e.snapshots !== STEPS + 2 || e.sequences !== STEPS + 2 || e.last_sequence !== STEPS + 2) {
        bad(id, `telemetry is not one clean run: ${JSON.stringify(e)}`);
      }
    }
    if (inF && !stopped.has(id)) {
      if (events !== 0) bad(id, `failed job with ${events} completed events`);
      if (e.status !== 'failed' || !e.error_message) bad(id, `job failed, execution ${e.status} (${e.error_message})`);
      const reason = await admin.hget(key(id), 'failedReason');
      const k = String(reason).slice(0, 80);
      failReasons[k] = (failReasons[k] || 0) + 1;
    }
    const made = await admin.hget(key(id), 'atm');
    attemptsMade[made] = (attemptsMade[made] || 0) + 1;
  }
  // every job, executions and ingestions: completed or failed, once
  for (const id of ingestions.keys()) {
    const inC = completed.has(id);
    if (inC === failed.has(id)) bad(id, `job ${inC ? 'both completed and failed' : 'neither completed nor failed'}`);
    const events = completedEvents.get(id) || 0;
    if (events !== (inC ? 1 : 0)) bad(id, `${events} completed events`);
  }
  // plain jobs: completed once, on the attempt they succeed at (a job failed for good only by
  // the stalled limit, after its workers were killed again and again)
  const pCompleted = new Set(await admin.zrange(pkey('completed'), 0, -1));
  const pFailed = new Set(await admin.zrange(pkey('failed'), 0, -1));
  const ranBy = {};
  for (const [id, succeedAt] of plain) {
    const inC = pCompleted.has(id);
    const pb = await admin.hget(pkey(id), 'pb');
    ranBy[pb] = (ranBy[pb] || 0) + 1;
    const events = completedEvents.get(id) || 0;
    if (events !== (inC ? 1 : 0)) bad(id, `${events} completed events`);
    const [rv, atm, reason] = await admin.hmget(pkey(id), 'returnvalue', 'atm', 'failedReason');
    if (inC) {
      const got = JSON.parse(rv || 'null');
      if (!got || got.succeededAt !== succeedAt || Number(atm) !== succeedAt + 1) {
        bad(id, `completed with ${rv}, attemptsMade ${atm}; expected success at attempt ${succeedAt + 1}`);
      }
    } else if (!pFailed.has(id) || !/stalled more than allowable limit/.test(reason || '')) {
      bad(id, `plain job not completed: ${pFailed.has(id) ? `failed: ${reason}` : 'neither completed nor failed'}`);
    }
  }
  // knowledge: each document one set of chunks, the same as its first ingestion's, and ready
  // unless one of its jobs failed for good
  const failedDocs = new Set([...ingestions].filter(([j]) => failed.has(j)).map(([, d]) => d));
  const now = new Map();
  for (const line of (await psql(`SELECT d.id, d.status, string_agg(c.chunk_index || ':' || md5(c.content), ','
    ORDER BY c.chunk_index) FROM knowledge_documents d LEFT JOIN knowledge_chunks c ON c.document_id = d.id
    WHERE d.corpus_id = ${lit(corpusId)} GROUP BY d.id, d.status`)).split('\n')) {
    const [doc, status, chunks] = line.split('|');
    now.set(doc, { status, chunks });
  }
  for (const doc of docs) {
    const got = now.get(doc);
    if (!got) { bad(doc, 'document row missing'); continue; }
    if (!failedDocs.has(doc) && got.status !== 'ready') bad(doc, `document ${got.status}, its jobs all completed`);
    if (got.status === 'ready' && got.chunks !== reference.get(doc)) {
      bad(doc, `chunks are not one clean set: ${got.chunks} (first ingestion: ${reference.get(doc)})`);
    }
  }
  const locks = (await admin.keys(key('*:lock'))).length + (await admin.keys(pkey('*:lock'))).length;
  if (locks) violations.push(`${locks} job locks left behind`);

  console.log(`chaos: seed ${SEED}, ${SECONDS} s of faults, ${spawned} worker processes, ${ids.length} executions, ${ingestions.size} ingestions`);
  console.log(`faults: ${JSON.stringify(faults)}`);
  console.log(`jobs: completed ${completed.size}, failed ${failed.size} (${ingestions.size} of them ingestions of ${docs.length} documents); ${stopped.size} executions stopped; executions' attemptsMade ${JSON.stringify(attemptsMade)}`);
  console.log(`plain jobs (a rex-worker and a BullMQ Node worker on their queue): completed ${pCompleted.size}, failed ${pFailed.size} of ${plain.size}; last run by ${JSON.stringify(ranBy)}${nodeKilled.count ? `; the Node worker did not stop within 20 s of SIGTERM ${nodeKilled.count} time(s)` : ''}`);
  if (Object.keys(failReasons).length) console.log(`failed reasons: ${JSON.stringify(failReasons)}`);
  // what the workers saw: how often the faults reached the paths they are meant to exercise
  const seen = {};
  const watch = {
    'execution runs superseded': /Execution run superseded/,
    'finishes refused (lock lost)': /could not complete job/,
    're-runs (earlier telemetry removed)': /Re-run of an execution: earlier telemetry removed/,
    'stalled jobs moved back': /stalled job moved back to wait/,
  };
  // and what must never be there: a sanitizer report (REX_WORKER_BIN may be an ASan build), a
  // failed assertion, a crash the worker caught
  const fatal = /AddressSanitizer|LeakSanitizer|runtime error:|"level":"fatal"|Segmentation fault/;
  for (const f of fs.readdirSync(logDir)) {
    for (const line of fs.readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
      for (const [k, re] of Object.entries(watch)) if (re.test(line)) seen[k] = (seen[k] || 0) + 1;
      if (fatal.test(line)) violations.push(`${f}: ${line.slice(0, 300)}`);
    }
  }
  console.log(`workers saw: ${JSON.stringify(seen)}`);
  await queue.close();
  await plainQueue.close();
  admin.disconnect();
  if (violations.length) {
    console.log(`VIOLATIONS (${violations.length}); worker logs kept in ${logDir}:`);
    for (const v of violations.slice(0, 50)) console.log(`  ${v}`);
    process.exitCode = 1;
  } else {
    console.log('all checks passed');
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
