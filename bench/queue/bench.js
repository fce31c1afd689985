// Queue throughput: rex-worker vs BullMQ's own Node Worker, no-op jobs, in one run.
// usage: node bench/queue/bench.js [jobs=20000] [reps=3] [concurrencies=1,10,100]
// Needs REDIS_URL (a fresh throwaway Redis) and REX_WORKER_BIN. Both workers run as child
// processes with the same environment; the queue is paused while the jobs are added, the worker
// started and connected, and the clock runs from resume until wait and active are empty.
// Reports median jobs/s, worker and redis-server CPU per job, and the ratio rex/node. With
// REX_FLOOR_BIN it also runs `floor` (bench/queue/floor.c) at each concurrency: a client doing
// nothing but the fetch/finish round trips with the same scripts (at concurrency N, all N jobs
// finished with fetch-next in one call), the ceiling a worker can reach here and the CPU the
// round trips alone cost a client. IMPLS (comma-separated: node, rex, rex2, floor) runs only
// those; rex2 is REX_WORKER_BIN2, so IMPLS=rex,rex2 compares two builds in one run.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const ROOT = path.resolve(__dirname, '..', '..');
const { Queue } = require(path.join(ROOT, 'tests/interop/node_modules/bullmq'));
const IORedis = require(path.join(ROOT, 'tests/interop/node_modules/ioredis'));
const { procCpu, redisCpu } = require('../lib/cpu');
const { stopProcess } = require('../lib/proc');

const N = Number(process.argv[2] || 20000);
const REPS = Number(process.argv[3] || 3);
const CONCS = (process.argv[4] || '1,10,100').split(',').map(Number);
const u = new URL(process.env.REDIS_URL);
const connection = { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startWorker(impl, queue, conc) {
  const env = {
    PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, QUEUE_NAME: queue,
    WORKER_CONCURRENCY: String(conc), REX_JOBS_PATH: path.join(ROOT, 'tests/interop/handlers'),
    LOG_LEVEL: 'warn', REX_ENV_FILE: '/dev/null', REMOVE_ON_COMPLETE: 'true',
  };
  const [cmd, args] = impl === 'node'
    ? [process.execPath, [path.join(ROOT, 'tests/interop/node-worker.js')]]
    : impl === 'floor' ? [process.env.REX_FLOOR_BIN, [u.hostname, u.port, queue, String(conc)]]
      : [impl === 'rex2' ? process.env.REX_WORKER_BIN2 : process.env.REX_WORKER_BIN, ['serve']];
  if (impl === 'rex' || impl === 'rex2') env.LOG_LEVEL = 'info';
  const p = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 10000;
  while (!err.includes('connected to redis')) {
    if (Date.now() > deadline) throw new Error(`${impl} worker did not start: ${err}`);
    await sleep(10);
  }
  return p;
}

async function runOnce(impl, conc, rep, admin) {
  const name = `bench-${impl}-${conc}-${rep}-${process.pid}`;
  const q = new Queue(name, { connection });
  await q.waitUntilReady();
  await q.pause();
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) batch.push({ name: 'noop', data: { i: j }, opts: { removeOnComplete: true } });
    await q.addBulk(batch);
  }
  const w = await startWorker(impl, name, conc);
  const r0 = await redisCpu(admin);
  const c0 = procCpu(w.pid);
  const t0 = process.hrtime.bigint();
  await q.resume();
  const P = `bull:${name}:`;
  for (;;) {
    const [wait, active, prio] = await Promise.all([admin.llen(`${P}wait`), admin.llen(`${P}active`), admin.zcard(`${P}prioritized`)]);
    if (wait + active + prio === 0) break;
    await sleep(2);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const wCpu = procCpu(w.pid) - c0;
  const rCpu = (await redisCpu(admin)) - r0;
  const failed = await q.getFailedCount();
  await stopProcess(w);
  await q.obliterate({ force: true });
  await q.close();
  if (failed) throw new Error(`${failed} jobs failed`);
  return { rate: N / secs, wUs: (wCpu / N) * 1e6, rUs: (rCpu / N) * 1e6 };
}

(async () => {
  const admin = new IORedis(connection);
  const acc = {};
  for (let rep = 0; rep < REPS; rep++) {
    for (const conc of CONCS) {
      const impls = process.env.IMPLS ? process.env.IMPLS.split(',')
        : process.env.REX_FLOOR_BIN ? ['node', 'rex', 'floor'] : ['node', 'rex'];
      for (const impl of impls) {
        const r = await runOnce(impl, conc, rep, admin);
        const k = `${impl}|${conc}`;
        (acc[k] = acc[k] || []).push(r);
        console.log(`rep ${rep} ${impl} c=${conc}: ${r.rate.toFixed(0)} jobs/s, worker ${r.wUs.toFixed(1)} us/job, redis ${r.rUs.toFixed(1)} us/job`);
      }
    }
  }
  if (process.env.IMPLS) { // a chosen set, e.g. IMPLS=rex,rex2 to compare two builds
    console.log(`\n${N} no-op jobs, removeOnComplete true, ${REPS} reps (medians)`);
    console.log('concurrency | worker | jobs/s | worker CPU us/job | redis us/job');
    for (const conc of CONCS) {
      for (const impl of process.env.IMPLS.split(',')) {
        const a = acc[`${impl}|${conc}`];
        const m = (f) => median(a.map(f));
        console.log(`${conc} | ${impl} | ${m((r) => r.rate).toFixed(0)} | ${m((r) => r.wUs).toFixed(1)} | ${m((r) => r.rUs).toFixed(1)}`);
      }
    }
    admin.disconnect();
    return;
  }
  console.log(`\n${N} no-op jobs, removeOnComplete true, ${REPS} reps (medians)`);
  console.log('concurrency | node jobs/s | rex jobs/s | rex/node | node CPU us/job | rex CPU us/job | redis us/job node | redis us/job rex');
  for (const conc of CONCS) {
    const n = acc[`node|${conc}`];
    const x = acc[`rex|${conc}`];
    const m = (a, f) => median(a.map(f));
    console.log(`${conc} | ${m(n, (r) => r.rate).toFixed(0)} | ${m(x, (r) => r.rate).toFixed(0)} | ${(m(x, (r) => r.rate) / m(n, (r) => r.rate)).toFixed(2)}x | ${m(n, (r) => r.wUs).toFixed(1)} | ${m(x, (r) => r.wUs).toFixed(1)} | ${m(n, (r) => r.rUs).toFixed(1)} | ${m(x, (r) => r.rUs).toFixed(1)}`);
  }
  if (acc[`floor|${CONCS[0]}`]) {
    console.log('\nceiling: floor = the round trips alone with the same scripts (bench/queue/floor.c)');
    console.log('concurrency | floor jobs/s | floor client CPU us/job | redis us/job floor | node % of floor | rex % of floor | 2.5x node % of floor | rex CPU / floor CPU');
    for (const conc of CONCS) {
      const f = acc[`floor|${conc}`];
      const n = acc[`node|${conc}`];
      const x = acc[`rex|${conc}`];
      const m = (a, g) => median(a.map(g));
      const fr = m(f, (r) => r.rate);
      const pct = (v) => `${(100 * v / fr).toFixed(0)}%`;
      console.log(`${conc} | ${fr.toFixed(0)} | ${m(f, (r) => r.wUs).toFixed(1)} | ${m(f, (r) => r.rUs).toFixed(1)} | `
        + `${pct(m(n, (r) => r.rate))} | ${pct(m(x, (r) => r.rate))} | ${pct(2.5 * m(n, (r) => r.rate))} | `
        + `${(m(x, (r) => r.wUs) / m(f, (r) => r.wUs)).toFixed(2)}x`);
    }
  }
  admin.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
