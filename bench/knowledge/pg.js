// Knowledge against PostgreSQL, end to end (not a test; prints figures).
// 1. Ingestion: N documents of about 20 KB of prose-like text, enqueued as REX's backend does
//    (a pending knowledge_documents row, then `ingest-knowledge-document` with bullmq 5.x), run
//    by `rex-worker serve`: documents/s against the original's 16/s, chunks/s, worker CPU.
//    Twice in the same run: the default (vectors of deterministic models recomputed, not
//    stored) and KNOWLEDGE_STORE_EMBEDDINGS=1 (1536 numbers of jsonb per chunk, as the original).
// 2. Retrieval: corpora of 10,000 and 100,000 chunks (written by SQL), top-8 cold and warm,
//    int8 and float32 scans, through bench/knowledge/pg_query.lua.
// usage: node bench/knowledge/pg.js [documents=1000] [concurrency=2] [sizes=10000,100000]
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { spawn, execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const NM = path.join(ROOT, 'tests', 'interop', 'node_modules');
const { Queue, QueueEvents } = require(path.join(NM, 'bullmq5'));
const { procCpu: cpuSecs, treeCpu, postmasterPid } = require('../lib/cpu');
const { stopProcess } = require('../lib/proc');
const N = Number(process.argv[2] || 1000);
const CONC = String(process.argv[3] || 2);
const SIZES = String(process.argv[4] || '10000,100000').split(',').map(Number);
const BIN = process.env.REX_WORKER_BIN || path.join(ROOT, 'build-release', 'rex-worker');
const DB = process.env.DATABASE_URL;
const REDIS = new URL(process.env.REDIS_URL);
const USER = '55555555-5555-4555-8555-555555555555';
const TENANT = '00000000-0000-0000-0000-000000000001';
const ORIGINAL_DOCS_PER_SEC = 16; // the issue's figure for the original worker
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const psql = (sql) => execFileSync('psql', [DB, '-XAtq', '-v', 'ON_ERROR_STOP=1'],
  { encoding: 'utf8', input: sql, maxBuffer: 1 << 26 }).trim();

// A vocabulary with a skewed (Zipf-like) use, sentences and paragraphs: text that chunks and
// tokenizes like prose. Deterministic (seeded).
let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const VOCAB = [];
for (let i = 0; i < 5000; i++) {
  let w = '';
  const len = 2 + Math.floor(rnd() * 8);
  for (let j = 0; j < len; j++) w += 'etaoinshrdlucmfwypvbgkqjxz'[Math.floor(rnd() ** 2 * 26)];
  VOCAB.push(w);
}
const word = () => VOCAB[Math.floor(VOCAB.length * rnd() ** 3)];
function document(bytes) {
  let s = `# ${word()} ${word()}\n`;
  while (s.length < bytes) {
    let sentence = word();
    const n = 6 + Math.floor(rnd() * 14);
    for (let i = 0; i < n; i++) sentence += ` ${word()}`;
    s += `${sentence[0].toUpperCase()}${sentence.slice(1)}. `;
    if (rnd() < 0.15) s += '\n\n';
    if (rnd() < 0.01) s += '\f';
  }
  return s;
}

// CPU of the PostgreSQL server (its postmaster and every child), seconds; 0 if unknown.
let pgRoot;
function pgCpuSecs() {
  if (pgRoot === undefined) pgRoot = postmasterPid(psql);
  return treeCpu(pgRoot) || 0;
}

async function ingestRound(label, extraEnv, docs) {
  const queueName = `bench-kn-${label}-${process.pid}-${Date.now()}`;
  const connection = { host: REDIS.hostname, port: Number(REDIS.port), maxRetriesPerRequest: null };
  const queue = new Queue(queueName, { connection });
  const qe = new QueueEvents(queueName, { connection });
  await qe.waitUntilReady();
  let completed = 0; let failed = 0;
  qe.on('completed', () => { completed += 1; });
  qe.on('failed', () => { failed += 1; });
  const corpusId = crypto.randomUUID();
  psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name) VALUES ('${corpusId}', '${TENANT}', '${USER}', 'bench')`);
  const ids = docs.map(() => crypto.randomUUID());
  const file = path.join(require('node:os').tmpdir(), `rex-bench-docs-${process.pid}.csv`);
  fs.writeFileSync(file, ids.map((id, i) => `${id}\t${docs[i].replace(/\\/g, '\\\\').replace(/\t/g, ' ').replace(/\n/g, '\\n').replace(/\f/g, '\\f')}`).join('\n'));
  psql(`CREATE TEMP TABLE d (id uuid, content text); \\copy d FROM '${file}'
    INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text)
    SELECT id, '${TENANT}', '${corpusId}', '${USER}', 'bench', content FROM d;`);
  fs.unlinkSync(file);
  const env = { PATH: process.env.PATH, REDIS_URL: process.env.REDIS_URL, DATABASE_URL: DB,
    QUEUE_NAME: queueName, WORKER_CONCURRENCY: CONC, LOG_LEVEL: 'warn', REX_ENV_FILE: '/dev/null',
    ...extraEnv };
  const proc = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  await sleep(300); // started before the clock
  const t0 = Date.now();
  const cpu0 = cpuSecs(proc.pid);
  const pg0 = pgCpuSecs();
  await queue.addBulk(ids.map((id) => ({ name: 'ingest-knowledge-document',
    data: { corpusId, documentId: id, userId: USER },
    opts: { attempts: 3, backoff: { type: 'exponential', delay: 2000 }, jobId: `ingest-${id}`,
      removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } } })));
  while (completed + failed < ids.length) {
    await sleep(20);
    if (Date.now() - t0 > 300000) { proc.kill('SIGKILL'); throw new Error(`timeout\n${log.slice(-2000)}`); }
  }
  const secs = (Date.now() - t0) / 1000;
  const cpu = cpuSecs(proc.pid) - cpu0;
  const pgCpu = pgCpuSecs() - pg0;
  await stopProcess(proc);
  const [chunks, statuses] = psql(`SELECT (SELECT count(*) FROM knowledge_chunks WHERE corpus_id = '${corpusId}'),
    (SELECT string_agg(status || '=' || n, ',') FROM (SELECT status, count(*) n FROM knowledge_documents
     WHERE corpus_id = '${corpusId}' GROUP BY status) s)`).split('|');
  await qe.close(); await queue.obliterate({ force: true }); await queue.close();
  if (failed) throw new Error(`${failed} jobs failed: ${log.slice(-2000)}`);
  return { label, docs: ids.length, seconds: secs, docsPerSec: ids.length / secs,
    chunksPerSec: Number(chunks) / secs, chunks: Number(chunks), statuses, workerCpuSecs: cpu, pgCpuSecs: pgCpu,
    mbPerSec: docs.reduce((a, d) => a + Buffer.byteLength(d), 0) / 1048576 / secs, corpusId };
}

// A ready corpus of n chunks (about 1,000 characters of prose each), written by SQL.
function buildCorpus(n) {
  const corpusId = crypto.randomUUID();
  const docs = Math.ceil(n / 20);
  const words = `ARRAY[${VOCAB.slice(0, 3000).map((w) => `'${w}'`).join(',')}]`;
  psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name, status) VALUES ('${corpusId}', '${TENANT}', '${USER}', 'bench-${n}', 'ready');
    INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text, status)
      SELECT md5('${corpusId}' || g)::uuid, '${TENANT}', '${corpusId}', '${USER}', 'doc ' || g, 'x', 'ready' FROM generate_series(1, ${docs}) g;
    INSERT INTO knowledge_chunks (corpus_id, document_id, chunk_index, content, token_count, embedding_model)
      SELECT '${corpusId}', md5('${corpusId}' || (1 + (g - 1) / 20))::uuid, (g - 1) % 20,
        (SELECT string_agg(w[1 + floor(power(random(), 3) * 3000)::int], ' ') FROM generate_series(1, 150 + (g % 7)) x, (SELECT ${words} AS w) v WHERE g > 0),
        250, 'rex-lex-v1-1536' FROM generate_series(1, ${n}) g;
    ANALYZE knowledge_chunks;`);
  return corpusId;
}

(async () => {
  const env = { PATH: process.env.PATH, DATABASE_URL: DB, REX_ENV_FILE: '/dev/null' };
  execFileSync(BIN, ['migrate'], { env, stdio: 'ignore' });
  psql(`INSERT INTO users (id, email, name, password_hash) VALUES ('${USER}', 'bench-kn@example.test', 'bench', 'x') ON CONFLICT DO NOTHING`);
  const docs = Array.from({ length: N }, () => document(20 * 1024));
  const results = [];
  results.push(await ingestRound('default', {}, docs));
  results.push(await ingestRound('store-vectors', { KNOWLEDGE_STORE_EMBEDDINGS: '1' }, docs.slice(0, Math.min(N, 200))));
  for (const r of results) {
    console.log(`ingestion ${r.label.padEnd(13)} ${r.docs} docs of 20 KB in ${r.seconds.toFixed(2)} s = ${r.docsPerSec.toFixed(0)} docs/s `
      + `(${(r.docsPerSec / ORIGINAL_DOCS_PER_SEC).toFixed(1)}x the original's ${ORIGINAL_DOCS_PER_SEC}/s), ${r.chunksPerSec.toFixed(0)} chunks/s, `
      + `${r.mbPerSec.toFixed(1)} MB/s; CPU per document: worker ${(r.workerCpuSecs / r.docs * 1000).toFixed(2)} ms, `
      + `PostgreSQL ${(r.pgCpuSecs / r.docs * 1000).toFixed(2)} ms; ${r.statuses}`);
  }
  const queries = [];
  for (const n of SIZES) {
    const corpusId = buildCorpus(n);
    const out = execFileSync(BIN, ['lua', path.join(__dirname, 'pg_query.lua'), corpusId, USER],
      { env: { ...env, LOG_LEVEL: 'warn', KNOWLEDGE_CACHE_MB: '4096' }, encoding: 'utf8', maxBuffer: 1 << 24 });
    const q = JSON.parse(out.trim().split('\n').pop());
    queries.push(q);
    console.log(`top-8 over ${q.chunks} chunks (${q.kernel}, cache ${q.cache_mb.toFixed(0)} MB): cold ${q.cold_ms.toFixed(0)} ms `
      + `(of which PostgreSQL fetch ${q.cold_fetch_ms.toFixed(0)} ms); warm int8+rescore ${q.warm_int8_ms.toFixed(2)} ms `
      + `(scan ${q.scan_int8_ms.toFixed(2)} ms), warm float32 ${q.warm_f32_ms.toFixed(2)} ms (scan ${q.scan_f32_ms.toFixed(2)} ms)`);
  }
  console.log(JSON.stringify({ ingestion: results, queries }));
})().catch((e) => { console.error(e); process.exit(1); });
