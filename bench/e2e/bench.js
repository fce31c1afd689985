// execute-workflow end to end: N executions of a 6-node REX-like pipeline with full telemetry,
// enqueued as REX's backend does (bullmq 5.x, executions + authorization rows first), run by
// `rex-worker serve` at WORKER_CONCURRENCY 8 against local Redis and PostgreSQL. Measured three
// times in the same run: batched telemetry (the default: multi-row inserts, pipelined), one
// pipelined statement per row (REX_TELEMETRY_FLUSH_MS=0), and the baseline with one round trip
// per row (REX_TELEMETRY_FLUSH_MS=0 REX_PG_PER_ROW=1). Prints executions/s, statements and round trips per execution (from the
// worker's "Execution completed" lines), the worker's RSS (peak and at the end), and the CPU per
// execution of the worker, PostgreSQL (postmaster and its children) and Redis. As in bench/queue,
// the queue is paused while the jobs are added and the worker starts; the clock runs from resume
// until wait, active, delayed and prioritized are empty, polled every 5 ms (a QueueEvents listener
// would cost this 2-core machine about a tenth of its CPU during the measurement).
// usage: node bench/e2e/bench.js [executions=500] [concurrency=8]
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { spawn, execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const NM = path.join(ROOT, 'tests', 'interop', 'node_modules');
const { Queue } = require(path.join(NM, 'bullmq5'));
const IORedis = require(path.join(NM, 'ioredis'));
const { procCpu, treeCpu, postmasterPid, redisCpu } = require('../lib/cpu');
const { stopProcess } = require('../lib/proc');
const N = Number(process.argv[2] || 500);
const CONC = String(process.argv[3] || 8);
const BIN = process.env.REX_WORKER_BIN || path.join(ROOT, 'build-e2e', 'rex-worker');
const DB = process.env.DATABASE_URL;
const REDIS = new URL(process.env.REDIS_URL);
const USER = '44444444-4444-4444-8444-444444444444';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// SQL through stdin (the id lists are too long for a command line)
const psql = (sql) => execFileSync('psql', [DB, '-XAtq', '-v', 'ON_ERROR_STOP=1'],
  { encoding: 'utf8', input: sql }).trim();

// the 6-node REX-like pipeline and its trigger payload (shared with lifecycle.lua)
const { triggerPayload: PAYLOAD, ...WORKFLOW } = require('./workflow.json');
const OPTS = { attempts: 3, backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } };

// PostgreSQL: the postmaster (found once) and every process it started.
let pgRoot;
function pgCpu() {
  if (pgRoot === undefined) pgRoot = postmasterPid(psql);
  return treeCpu(pgRoot);
}

function rss(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number((s.match(new RegExp(`${k}:\\s+(\\d+)`)) || [])[1] || 0) / 1024;
  return { now: get('VmRSS'), peak: get('VmHWM') };
}

async function round(label, extraEnv) {
  const queueName = `bench-e2e-${label}-${process.pid}-${Date.now()}`;
  const connection = { host: REDIS.hostname, port: Number(REDIS.port), maxRetriesPerRequest: null };
  const queue = new Queue(queueName, { connection });
  const admin = new IORedis(connection);
  await queue.pause();
  const workflowId = crypto.randomUUID();
  psql(`INSERT INTO workflows (id, user_id, name, nodes, edges) VALUES ('${workflowId}', '${USER}',
    'bench', '${JSON.stringify(WORKFLOW.nodes)}'::jsonb, '${JSON.stringify(WORKFLOW.edges)}'::jsonb)`);
  const ids = Array.from({ length: N }, () => crypto.randomUUID());
  const payload = JSON.stringify(PAYLOAD).replace(/'/g, "''");
  psql(`INSERT INTO executions (id, workflow_id, status, trigger_payload)
    SELECT x::uuid, '${workflowId}', 'pending', '${payload}'::jsonb FROM unnest(ARRAY['${ids.join("','")}']) x;
    INSERT INTO execution_authorizations (id, execution_id, workflow_id, user_id, expires_at)
    SELECT x::uuid, x::uuid, '${workflowId}', '${USER}', now() + interval '30 minutes'
    FROM unnest(ARRAY['${ids.join("','")}']) x`);
  await queue.addBulk(ids.map((id) => ({ name: 'execute-workflow', data: { executionId: id,
    workflowId, userId: USER, triggerPayload: PAYLOAD, domainConfig: {}, executionAuthorizationId: id },
  opts: { ...OPTS, jobId: id } })));

  const env = { PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, DATABASE_URL: DB,
    QUEUE_NAME: queueName, WORKER_CONCURRENCY: CONC, LOG_LEVEL: 'info', REX_ENV_FILE: '/dev/null',
    ENCRYPTION_MASTER_KEY: 'bench', ...(process.env.REX_LUA_JIT ? { REX_LUA_JIT: process.env.REX_LUA_JIT } : {}),
    ...extraEnv };
  const proc = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  proc.on('exit', (code) => { if (code !== null && code !== 0) log += `\nworker exited ${code}`; });
  const started = Date.now();
  while (!log.includes('connected to redis')) {
    if (Date.now() - started > 20000) {
      proc.kill('SIGKILL');
      throw new Error(`worker did not start: ${log.slice(-2000)}`);
    }
    await sleep(10);
  }
  const cpu0 = { worker: procCpu(proc.pid), pg: pgCpu(), redis: await redisCpu(admin) };
  const t0 = Date.now();
  await queue.resume();
  const P = `bull:${queueName}:`;
  let peak = { now: 0, peak: 0 };
  for (let polls = 0; ; polls++) {
    const [w, a, d, p] = await Promise.all([admin.llen(`${P}wait`), admin.llen(`${P}active`),
      admin.zcard(`${P}delayed`), admin.zcard(`${P}prioritized`)]);
    if (w + a + d + p === 0) break;
    if (polls % 5 === 0) {
      try { peak = rss(proc.pid); } catch (_) { /* exited */ }
    }
    if (Date.now() - t0 > 60000) {
      proc.kill('SIGKILL');
      throw new Error(`timeout: ${w + a + d + p} jobs left\n${log.slice(-2000)}`);
    }
    await sleep(5);
  }
  const secs = (Date.now() - t0) / 1000;
  try { peak = rss(proc.pid); } catch (_) { /* exited */ }
  const cpu = { worker: procCpu(proc.pid) - cpu0.worker, pg: pgCpu() - cpu0.pg,
    redis: (await redisCpu(admin)) - cpu0.redis };
  const cpuSecs = cpu.worker;
  await stopProcess(proc);
  const lines = log.split('\n').filter((l) => l.includes('"Execution completed"')).map((l) => JSON.parse(l));
  const avg = (k) => lines.reduce((a, l) => a + (l[k] || 0), 0) / Math.max(1, lines.length);
  const statuses = psql(`SELECT string_agg(status || '=' || n, ',') FROM (SELECT status, count(*) n
    FROM executions WHERE workflow_id = '${workflowId}' GROUP BY status) s`);
  const rows = psql(`SELECT (SELECT count(*) FROM execution_steps s JOIN executions e ON e.id = s.execution_id WHERE e.workflow_id = '${workflowId}')
    || '/' || (SELECT count(*) FROM execution_context_snapshots s JOIN executions e ON e.id = s.execution_id WHERE e.workflow_id = '${workflowId}')
    || '/' || (SELECT count(*) FROM execution_step_attempts s JOIN executions e ON e.id = s.execution_id WHERE e.workflow_id = '${workflowId}')`);
  if (statuses !== `completed=${N}`) throw new Error(`not every execution completed: ${statuses}`);
  await queue.obliterate({ force: true });
  await queue.close();
  admin.disconnect();
  return { label, executions: N, seconds: secs, perSec: N / secs, statements: avg('statements'),
    roundTrips: avg('roundTrips'), rssPeakMB: peak.peak, rssEndMB: peak.now,
    workerCpuSecs: cpuSecs, cpuMsPerExecution: { worker: (cpu.worker / N) * 1000,
      postgres: (cpu.pg / N) * 1000, redis: (cpu.redis / N) * 1000 },
    statuses, stepsSnapshotsAttempts: rows };
}

(async () => {
  execFileSync(BIN, ['migrate'], { env: { PATH: process.env.PATH, DATABASE_URL: DB, REX_ENV_FILE: '/dev/null' }, stdio: 'ignore' });
  psql(`INSERT INTO users (id, email, name, password_hash) VALUES ('${USER}', 'bench@example.test', 'bench', 'x') ON CONFLICT DO NOTHING`);
  // ROUNDS (comma-separated: batched, pipelined, per-row) runs only those, e.g. for A/B runs of
  // two builds with ROUNDS=batched
  const want = (process.env.ROUNDS || 'batched,pipelined,per-row').split(',');
  const fast = want.includes('batched') ? await round('batched', {}) : null;
  const piped = want.includes('pipelined') ? await round('pipelined', { REX_TELEMETRY_FLUSH_MS: '0' }) : null;
  const base = want.includes('per-row')
    ? await round('per-row', { REX_TELEMETRY_FLUSH_MS: '0', REX_PG_PER_ROW: '1' }) : null;
  for (const r of [fast, piped, base].filter(Boolean)) {
    console.log(`${r.label.padEnd(10)} ${r.executions} executions in ${r.seconds.toFixed(2)} s = ${r.perSec.toFixed(0)} executions/s; `
      + `${r.statements.toFixed(1)} statements and ${r.roundTrips.toFixed(1)} round trips per execution; `
      + `worker RSS peak ${r.rssPeakMB.toFixed(1)} MB (end ${r.rssEndMB.toFixed(1)} MB); worker CPU ${r.workerCpuSecs.toFixed(2)} s `
      + `(${(r.workerCpuSecs / r.seconds * 100).toFixed(0)}% of one core); statuses ${r.statuses}; steps/snapshots/attempts ${r.stepsSnapshotsAttempts}`);
    const c = r.cpuMsPerExecution;
    console.log(`${''.padEnd(10)} CPU ms per execution: worker ${c.worker.toFixed(2)}, PostgreSQL ${c.postgres.toFixed(2)}, `
      + `Redis ${c.redis.toFixed(2)}, total ${(c.worker + c.postgres + c.redis).toFixed(2)} (2 cores allow ${(2000 / (c.worker + c.postgres + c.redis)).toFixed(0)} executions/s)`);
  }
  if (fast && base) {
    console.log(`batched / per-row throughput: ${(fast.perSec / base.perSec).toFixed(2)}x; `
      + (piped ? `pipelined (a statement per row, no wait) / per-row: ${(piped.perSec / base.perSec).toFixed(2)}x; ` : '')
      + `round trips per execution ${fast.roundTrips.toFixed(1)} vs ${base.roundTrips.toFixed(1)}`);
  }
  console.log(JSON.stringify({ batched: fast, pipelined: piped, perRow: base }));
})().catch((e) => { console.error(e); process.exit(1); });
