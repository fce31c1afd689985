// Long run: does the worker's memory stay flat? Feeds no-op jobs to one rex-worker in batches
// while it runs, and prints its RSS over time.
// usage: node bench/queue/soak.js [jobs=300000] [concurrency=100]
// Needs REDIS_URL (a throwaway Redis) and REX_WORKER_BIN. Bounded: gives up after 10 minutes.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');

const ROOT = path.resolve(__dirname, '../..');
const { Queue } = require(path.join(ROOT, 'tests/interop/node_modules/bullmq'));
const { stopProcess } = require('../lib/proc');

const TOTAL = Number(process.argv[2] || 300000);
const CONC = Number(process.argv[3] || 100);
const BATCH = 5000;
const u = new URL(process.env.REDIS_URL);
const connection = { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const name = `soak-${process.pid}`;
  const q = new Queue(name, { connection });
  const w = spawn(process.env.REX_WORKER_BIN, ['serve'], {
    env: { PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, QUEUE_NAME: name,
      WORKER_CONCURRENCY: String(CONC), REX_JOBS_PATH: path.join(ROOT, 'tests/interop/handlers'),
      LOG_LEVEL: 'warn', REX_ENV_FILE: '/dev/null' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const rssMB = () => Number(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')
    .match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  const t0 = Date.now();
  const rows = [];
  let added = 0;
  try {
    while (Date.now() - t0 < 600000) {
      if (added < TOTAL) {
        const n = Math.min(BATCH, TOTAL - added);
        await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i: added + i },
          opts: { removeOnComplete: true } })));
        added += n;
      }
      const c = await q.getJobCounts('wait', 'active', 'failed');
      rows.push({ s: (Date.now() - t0) / 1000, added, left: c.wait + c.active, failed: c.failed, rss: rssMB() });
      if (added >= TOTAL && c.wait + c.active === 0) break;
      await sleep(200);
    }
  } finally {
    await stopProcess(w);
    await q.obliterate({ force: true });
    await q.close();
  }
  const last = rows[rows.length - 1];
  const step = Math.max(1, Math.ceil(rows.length / 12));
  console.log('seconds | jobs added | waiting or active | worker RSS MB');
  for (let i = 0; i < rows.length; i += step) {
    const r = rows[i];
    console.log(`${r.s.toFixed(1)} | ${r.added} | ${r.left} | ${r.rss.toFixed(1)}`);
  }
  console.log(`${last.s.toFixed(1)} | ${last.added} | ${last.left} | ${last.rss.toFixed(1)}`);
  const half = rows.filter((r) => r.added >= TOTAL / 2);
  console.log(`${TOTAL} jobs at concurrency ${CONC}: ${last.failed} failed; RSS ${half[0].rss.toFixed(1)} MB when `
    + `half the jobs had been added, ${last.rss.toFixed(1)} MB at the end`);
  if (last.left !== 0) process.exitCode = 1;
})().catch((e) => { console.error(e); process.exit(1); });
