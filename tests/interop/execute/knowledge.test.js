// Knowledge through the worker (rex-behaviour.md §6.5-6.7, decisions.md §5): REX's
// `ingest-knowledge-document` job enqueued by the Node producer as REX's backend does, the rows
// it leaves, and workflows retrieving from that corpus (the worker's corpus cache refreshed by
// ingestion and deletion), legacy rex-hash-v1-1536 rows written by the original, failures.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { scenario, sleep } = require('../lib/worker');
const X = require('./lib');

const USER = '33333333-3333-4333-8333-333333333333';

// JavaScript's \s, as the original's normalization (§6.1)
const norm = (s) => s.replace(/\s+/g, ' ').trim();

const PAGE1 = `# Returns and refunds
Customers may return any unused item within thirty days of delivery for a full refund. ${
  'Refunds are paid to the original payment method once the returned parcel has been inspected. '.repeat(14)}
Gift cards, opened software and perishable goods cannot be refunded.`;
const PAGE2 = `SHIPPING AND DELIVERY
Standard parcels leave our warehouse within two business days; express delivery arrives the next day for orders placed before noon. Café orders ship from Lyon — délai 3 jours. 📦`;
const PAGE4 = `#
Warranty claims need the serial number printed under the battery cover.`;
const DOC_A = `${PAGE1}\f${PAGE2}\f\f${PAGE4}`;
const DOC_B = `Photosynthesis converts light energy into chemical energy stored in glucose.
Chlorophyll absorbs mostly blue and red light, which is why leaves look green.`;

function createCorpus({ scope = 'user' } = {}) {
  X.ensureUser(USER);
  const id = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name, scope_type, status)
    VALUES (${X.lit(id)}, ${X.lit(X.TENANT)}, ${X.lit(USER)}, 'API corpus', ${X.lit(scope)}, 'ingesting')`);
  return id;
}

// What REX's backend does (§1.3): a pending document row, then the job.
async function ingest(queue, corpusId, content, { title = 'doc', jobId } = {}) {
  const documentId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text)
    VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(USER)},
    ${X.lit(title)}, ${X.lit(content)})`);
  const id = jobId || `ingest-${documentId}`;
  await queue.add('ingest-knowledge-document', { corpusId, documentId, userId: USER },
    { ...X.REX_JOB_OPTS, jobId: id });
  return { documentId, jobId: id };
}

const RETRIEVE = (corpusId) => ({
  name: 'retrieve',
  nodes: [
    { id: 'trigger', type: 'manual-trigger', config: {} },
    { id: 'retrieve', type: 'knowledge-retrieve',
      config: { queryTemplate: '{{question}}', topK: 3, corpusId } },
    { id: 'out', type: 'output', config: {} },
  ],
  edges: [{ id: 'e1', source: 'trigger', target: 'retrieve' }, { id: 'e2', source: 'retrieve', target: 'out' }],
});

// Runs the retrieve workflow for a question; returns the matches of its step output.
async function ask(s, workflowId, question) {
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { question } });
  await s.waitFor('completed', executionId, 15000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'completed', JSON.stringify(got.steps));
  const step = got.steps.find((r) => r.node_id === 'retrieve');
  const k = step.output._knowledge;
  assert.ok(k && Array.isArray(k.matches), JSON.stringify(step.output));
  return { matches: k.matches, events: got.retrievalEvents };
}

test.before(() => X.migrate());

test('ingest-knowledge-document: chunks with offsets into the stored text, pages, sections; statuses ready', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const corpusId = createCorpus();
  const { documentId, jobId } = await ingest(s.queue, corpusId, DOC_A, { title: 'Store policies' });
  const done = await s.waitFor('completed', jobId, 15000);
  const ret = typeof done.returnvalue === 'string' ? JSON.parse(done.returnvalue) : done.returnvalue;
  assert.equal(ret.documentId, documentId);
  assert.equal(ret.embeddingModel, 'rex-lex-v1-1536');

  const [doc] = X.rows(`SELECT status, error FROM knowledge_documents WHERE id = ${X.lit(documentId)}`);
  assert.deepEqual(doc, { status: 'ready', error: null });
  const [corpus] = X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`);
  assert.equal(corpus.status, 'ready');

  const chunks = X.rows(`SELECT chunk_index, page_number, section_path, content, token_count,
    embedding_model, embedding, metadata FROM knowledge_chunks WHERE document_id = ${X.lit(documentId)}
    ORDER BY chunk_index`);
  assert.equal(ret.chunkCount, chunks.length);
  // page 1 is longer than 1,200 characters: windows [0,1200), [1000, ...) of its normalized text
  const p1 = norm(PAGE1);
  assert.ok(p1.length > 1200 && p1.length < 2200);
  assert.deepEqual(chunks.map((c) => [c.chunk_index, c.page_number, c.section_path]), [
    [0, 1, 'Returns and refunds'], [1, 1, 'Returns and refunds'],
    [2, 2, 'SHIPPING AND DELIVERY'],
    [3, 4, ''], // an empty `#` heading: the ingestion job's section path is "" (§6.2)
  ]);
  assert.equal(chunks[0].content, p1.slice(0, 1200).trim());
  assert.equal(chunks[1].content, p1.slice(1000).trim());
  for (const c of chunks) {
    // decisions.md 5: offsets (UTF-16 units) point into the stored document
    const { start, end, pageNumber, sectionPath } = c.metadata;
    assert.equal(norm(DOC_A.slice(start, end)), c.content, `chunk ${c.chunk_index}`);
    assert.equal(pageNumber, c.page_number);
    assert.equal(sectionPath, c.section_path);
    assert.equal(c.metadata.runtimeIngestion, undefined);
    assert.equal(c.token_count, Math.ceil(c.content.length / 4));
    assert.equal(c.embedding_model, 'rex-lex-v1-1536');
    assert.deepEqual(c.embedding, []); // recomputed from the content (docs/knowledge.md)
  }
});

test('one document ingested by two jobs at once (a re-run beside a frozen run): one set of chunks', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv({ WORKER_CONCURRENCY: '2' }) });
  const corpusId = createCorpus();
  const { documentId, jobId } = await ingest(s.queue, corpusId, DOC_A);
  await s.waitFor('completed', jobId, 15000);
  const once = X.rows(`SELECT chunk_index, content FROM knowledge_chunks
    WHERE document_id = ${X.lit(documentId)} ORDER BY chunk_index`);
  assert.equal(once.length, 4);
  // The two jobs' chunk writes overlap: both jobs start together (their first write waits for
  // this session's lock on the document row), and a statement trigger holds each write of this
  // document's chunks for a second after its rows are in.
  const fn = `rex_test_slow_chunks_${process.pid}`;
  X.psql(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN
      IF EXISTS (SELECT 1 FROM new_rows WHERE document_id = ${X.lit(documentId)}) THEN
        PERFORM pg_sleep(1); END IF; RETURN NULL; END $f$;
    CREATE TRIGGER ${fn} AFTER INSERT ON knowledge_chunks REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();`);
  t.after(() => X.psql(`DROP TRIGGER IF EXISTS ${fn} ON knowledge_chunks; DROP FUNCTION IF EXISTS ${fn}();`));
  const hold = spawn('psql', [X.dbUrl(), '-XAtq', '-c', `BEGIN; SELECT 1 FROM knowledge_documents
    WHERE id = ${X.lit(documentId)} FOR UPDATE; SELECT pg_sleep(1.5); COMMIT;`], { stdio: 'ignore' });
  t.after(() => hold.kill());
  await X.waitRow(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%'
    AND state = 'active' AND pid <> pg_backend_pid()`);
  for (const id of ['again-1', 'again-2']) {
    await s.queue.add('ingest-knowledge-document', { corpusId, documentId, userId: USER },
      { ...X.REX_JOB_OPTS, jobId: `${id}-${documentId}` });
  }
  await s.waitFor('completed', `again-1-${documentId}`, 15000);
  await s.waitFor('completed', `again-2-${documentId}`, 15000);
  const after = X.rows(`SELECT chunk_index, content FROM knowledge_chunks
    WHERE document_id = ${X.lit(documentId)} ORDER BY chunk_index`);
  assert.deepEqual(after, once);
});

test('a workflow retrieves from the ingested corpus; ingestion and deletion refresh the worker cache', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv(), start: false });
  const w = await s.start();
  const corpusId = createCorpus();
  const a = await ingest(s.queue, corpusId, DOC_A);
  await s.waitFor('completed', a.jobId, 15000);
  const workflowId = X.insertWorkflow(RETRIEVE(corpusId), { userId: USER });

  let r = await ask(s, workflowId, 'how many days do I have to return an item for a refund');
  assert.ok(r.matches.length >= 1 && r.matches.length <= 3);
  assert.equal(r.matches[0].documentId, a.documentId);
  assert.equal(r.matches[0].corpusId, corpusId);
  assert.match(r.matches[0].content, /thirty days/);
  assert.equal(r.matches[0].metadata.pageNumber, 1);
  assert.ok(r.matches[0].score > 0 && r.matches[0].semanticScore > 0);
  assert.equal(r.events.length, 1);
  assert.equal(r.events[0].status, 'success');
  assert.equal(r.events[0].matches_count, r.matches.length);
  assert.equal(r.events[0].corpus_id, corpusId);

  r = await ask(s, workflowId, 'why do leaves look green chlorophyll');
  assert.ok(r.matches.every((m) => m.documentId === a.documentId)); // B is not there yet

  const b = await ingest(s.queue, corpusId, DOC_B, { title: 'Biology' });
  await s.waitFor('completed', b.jobId, 15000);
  r = await ask(s, workflowId, 'why do leaves look green chlorophyll');
  assert.equal(r.matches[0].documentId, b.documentId);
  assert.equal(r.matches[0].title, 'Biology');

  X.psql(`DELETE FROM knowledge_documents WHERE id = ${X.lit(b.documentId)}`);
  r = await ask(s, workflowId, 'why do leaves look green chlorophyll');
  assert.ok(r.matches.length > 0);
  assert.ok(r.matches.every((m) => m.documentId === a.documentId), JSON.stringify(r.matches.map((m) => m.documentId)));
  // one load from PostgreSQL per version of the corpus (the cache is the process's, shared by
  // the worker threads): A, A+B, A again after the deletion; the second question was a hit
  const loads = w.stderr.split('\n').filter((l) => l.includes('Knowledge corpus loaded'));
  assert.equal(loads.length, 3, loads.join('\n'));
});

test('an empty document fails without retries; its corpus is failed until the document is fixed', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const corpusId = createCorpus();
  const ok = await ingest(s.queue, corpusId, DOC_B);
  await s.waitFor('completed', ok.jobId, 15000);
  const bad = await ingest(s.queue, corpusId, ' \f \n\t ');
  const failed = await s.waitFor('failed', bad.jobId, 15000);
  assert.equal(failed.failedReason, 'Document content is empty after normalization');
  const job = await s.job(bad.jobId);
  assert.equal(job.attemptsMade, 1); // unrecoverable: no retry can change the content
  let [doc] = X.rows(`SELECT status, error FROM knowledge_documents WHERE id = ${X.lit(bad.documentId)}`);
  assert.deepEqual(doc, { status: 'failed', error: 'Document content is empty after normalization' });
  let [corpus] = X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`);
  assert.equal(corpus.status, 'failed');

  // fixed and enqueued again (a new job id: REX's `ingest-<id>` is still in the failed set)
  X.psql(`UPDATE knowledge_documents SET content_text = 'Now with real content.' WHERE id = ${X.lit(bad.documentId)}`);
  await s.queue.add('ingest-knowledge-document', { corpusId, documentId: bad.documentId, userId: USER },
    { ...X.REX_JOB_OPTS, jobId: `${bad.jobId}-again` });
  await s.waitFor('completed', `${bad.jobId}-again`, 15000);
  [doc] = X.rows(`SELECT status, error FROM knowledge_documents WHERE id = ${X.lit(bad.documentId)}`);
  assert.deepEqual(doc, { status: 'ready', error: null });
  [corpus] = X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`);
  assert.equal(corpus.status, 'ready');
});

test('a missing document or a malformed payload fails without retries, with a clear reason', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const corpusId = createCorpus();
  const missing = crypto.randomUUID();
  await s.queue.add('ingest-knowledge-document', { corpusId, documentId: missing, userId: USER },
    { ...X.REX_JOB_OPTS, jobId: `ingest-${missing}` });
  let ev = await s.waitFor('failed', `ingest-${missing}`, 15000);
  assert.equal(ev.failedReason, 'Knowledge document not found');
  assert.equal((await s.job(`ingest-${missing}`)).attemptsMade, 1);
  await s.queue.add('ingest-knowledge-document', { corpusId: 'nope' }, { ...X.REX_JOB_OPTS, jobId: 'ingest-bad' });
  ev = await s.waitFor('failed', 'ingest-bad', 15000);
  assert.match(ev.failedReason, /corpusId, documentId and userId/);
});

// rex-hash-v1-1536 as the original computed it (§6.3)
function rexHash(text, dims = 1536) {
  const out = [];
  for (let i = 0; out.length < dims; i++) {
    const d = crypto.createHash('sha256').update(`${i}:${text}`, 'utf8').digest();
    for (const b of d) {
      if (out.length < dims) out.push(b / 127.5 - 1);
    }
  }
  return out;
}
const cosine = (a, b) => {
  let d = 0; let na = 0; let nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return d / Math.sqrt(na * nb);
};

test('rex-hash-v1-1536 rows written by the original are ranked with vectors equal to the stored ones', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const corpusId = createCorpus();
  const documentId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text, status)
    VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(USER)}, 'legacy',
    'legacy', 'ready')`);
  const texts = ['The museum opens at nine and closes at six on weekdays.',
    'Tickets for children under twelve are free of charge.',
    'Photography without flash is allowed in every gallery.'];
  const ids = texts.map(() => crypto.randomUUID());
  texts.forEach((text, i) => {
    // what the original stored: the full vector in jsonb
    X.psql(`INSERT INTO knowledge_chunks (id, corpus_id, document_id, chunk_index, content,
      token_count, embedding, embedding_model, page_number, section_path, metadata) VALUES
      (${X.lit(ids[i])}, ${X.lit(corpusId)}, ${X.lit(documentId)}, ${i}, ${X.lit(text)},
      ${Math.ceil(text.length / 4)}, ${X.jsonLit(rexHash(text))}, 'rex-hash-v1-1536', 1, 'page-1',
      ${X.jsonLit({ start: 0, end: text.length })})`);
  });
  X.psql(`UPDATE knowledge_corpora SET status = 'ready' WHERE id = ${X.lit(corpusId)}`);
  const workflowId = X.insertWorkflow(RETRIEVE(corpusId), { userId: USER });
  const question = 'are tickets free for children';
  const r = await ask(s, workflowId, question);
  assert.equal(r.matches.length, 3);
  assert.equal(r.matches[0].chunkId, ids[1]);
  const q = rexHash(question);
  for (const m of r.matches) {
    const stored = X.rows(`SELECT embedding FROM knowledge_chunks WHERE id = ${X.lit(m.chunkId)}`)[0].embedding;
    // the worker recomputed the vector from the content: same cosine as with the stored one
    assert.ok(Math.abs(m.semanticScore - cosine(q, stored)) < 1e-5, `${m.semanticScore} vs ${cosine(q, stored)}`);
  }
});

test('knowledge-ingest in a workflow writes a runtime corpus that a later step retrieves from', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv() });
  const wfId = crypto.randomUUID();
  const wf = {
    name: 'ingest-then-retrieve',
    nodes: [
      { id: 'trigger', type: 'manual-trigger', config: {} },
      { id: 'ingest', type: 'knowledge-ingest',
        config: { contentPath: 'doc', titlePath: 'title', scopeType: 'workflow', workflowIdScope: wfId } },
      { id: 'retrieve', type: 'knowledge-retrieve',
        config: { queryTemplate: '{{question}}', topK: 2, scopeType: 'workflow', workflowIdScope: wfId } },
      { id: 'out', type: 'output', config: {} },
    ],
    edges: [{ id: 'e1', source: 'trigger', target: 'ingest' },
      { id: 'e2', source: 'ingest', target: 'retrieve' }, { id: 'e3', source: 'retrieve', target: 'out' }],
  };
  X.insertWorkflow(wf, { userId: USER, id: wfId });
  const { executionId } = await X.trigger(s.queue, { workflowId: wfId, userId: USER,
    payload: { doc: DOC_B, title: 'Leaves', question: 'what does chlorophyll absorb' } });
  await s.waitFor('completed', executionId, 15000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'completed', JSON.stringify(got.steps));
  const [corpus] = X.rows(`SELECT id, scope_type, execution_id, workflow_id, status, metadata
    FROM knowledge_corpora WHERE workflow_id = ${X.lit(wfId)}`);
  assert.deepEqual([corpus.scope_type, corpus.execution_id, corpus.status], ['workflow', null, 'ready']);
  assert.deepEqual(corpus.metadata, { runtimeIngestion: true, executionId });
  const chunks = X.rows(`SELECT c.metadata, d.title, d.source_type FROM knowledge_chunks c
    JOIN knowledge_documents d ON d.id = c.document_id WHERE c.corpus_id = ${X.lit(corpus.id)}`);
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0].metadata.runtimeIngestion, true);
  assert.equal(chunks[0].title, 'Leaves');
  const step = got.steps.find((r) => r.node_id === 'retrieve');
  assert.equal(step.output._knowledge.matches[0].corpusId, corpus.id);
  assert.match(step.output._knowledge.matches[0].content, /Chlorophyll absorbs/);
});

// An OpenAI-compatible embedding server on loopback whose 64-dim vectors carry meaning the
// lexical score cannot see: synonyms share a dimension.
const CONCEPTS = { car: 1, automobile: 1, vehicle: 1, banana: 2, fruit: 2, river: 3, stream: 3 };
function fakeEmbedding(text) {
  const v = new Array(64).fill(0);
  for (const w of text.toLowerCase().match(/[a-z]+/g) || []) {
    const c = CONCEPTS[w] || (10 + (crypto.createHash('md5').update(w).digest()[0] % 54));
    v[c] += 1;
  }
  return v;
}
const fakeEmbedder = (t) => X.fakeProvider(t, (b) => ({ model: b.model,
  data: b.input.map((text, index) => ({ index, embedding: fakeEmbedding(text) })) }));

// A user whose embeddings come from an OpenAI-style provider at baseUrl (on loopback), with
// the test API key.
function providerUser(baseUrl) {
  const user = crypto.randomUUID();
  X.ensureUser(user);
  X.psql(`INSERT INTO api_keys (user_id, provider, encrypted_key, label) VALUES
    (${X.lit(user)}, 'openai', ${X.lit(X.STORED_KEY)}, 'test')`);
  X.psql(`INSERT INTO domain_configs (user_id, config, is_active) VALUES (${X.lit(user)},
    ${X.jsonLit({ retrieval: { embeddingProvider: 'openai', embeddingModel: 'test-embed',
    embeddingBaseUrl: baseUrl, embeddingDimensions: 64 } })}, true)`);
  return user;
}

// A provider user's corpus with one document, and its ingestion job (REX's way).
async function ingestOne(queue, providerUrl, content) {
  const user = providerUser(providerUrl);
  const corpusId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name) VALUES (${X.lit(corpusId)},
    ${X.lit(X.TENANT)}, ${X.lit(user)}, 'provider corpus')`);
  const documentId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text)
    VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(user)}, 'd', ${X.lit(content)})`);
  const jobId = `ingest-${documentId}`;
  await queue.add('ingest-knowledge-document', { corpusId, documentId, userId: user },
    { ...X.REX_JOB_OPTS, jobId });
  return { corpusId, documentId, jobId };
}

test('provider embeddings: the job stores the provider vectors; retrieval ranks with them', async (t) => {
  const emb = await fakeEmbedder(t);
  const s = await scenario(t, { major: 5, env: X.workerEnv({ REX_HTTP_ALLOWLIST: '127.0.0.1' }) });
  const user = providerUser(emb.url);
  const corpusId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_corpora (id, tenant_id, user_id, name) VALUES (${X.lit(corpusId)},
    ${X.lit(X.TENANT)}, ${X.lit(user)}, 'provider corpus')`);
  const docs = ['My car needs new tyres before winter.', 'A banana is a sweet yellow snack.',
    'Trout swim upstream in the cold river.'];
  const ids = [];
  for (const [i, content] of docs.entries()) {
    const documentId = crypto.randomUUID();
    ids.push(documentId);
    X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text)
      VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(user)}, 'd${i}', ${X.lit(content)})`);
    await s.queue.add('ingest-knowledge-document', { corpusId, documentId, userId: user },
      { ...X.REX_JOB_OPTS, jobId: `ingest-${documentId}` });
    await s.waitFor('completed', `ingest-${documentId}`, 15000);
  }
  assert.ok(emb.seen.length >= 3);
  assert.equal(emb.seen[0].auth, `Bearer ${X.STORED_KEY_PLAINTEXT}`);
  const chunks = X.rows(`SELECT embedding_model, embedding FROM knowledge_chunks WHERE corpus_id = ${X.lit(corpusId)}`);
  assert.equal(chunks.length, 3);
  for (const c of chunks) {
    assert.equal(c.embedding_model, 'openai:test-embed@64');
    assert.equal(c.embedding.length, 64); // the provider's own dimension
  }
  // "automobile" shares no word with any document: only the provider's vectors can find the car
  const wf = RETRIEVE(corpusId);
  const workflowId = X.insertWorkflow(wf, { userId: user });
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: user, payload: { question: 'automobile' } });
  await s.waitFor('completed', executionId, 15000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'completed', JSON.stringify(got.steps));
  const m = got.steps.find((r) => r.node_id === 'retrieve').output._knowledge.matches;
  assert.equal(m[0].documentId, ids[0]);
  assert.ok(m[0].semanticScore > 0.3, JSON.stringify(m[0]));
  assert.equal(m[0].lexicalScore, 0);
  assert.ok(emb.seen.some((r) => r.body.input.length === 1), 'the query was embedded by the provider');
});

test('a worker frozen past its lock in an ingestion: thawed, it leaves the re-run\'s document as it is', async (t) => {
  // an embedding provider that holds the first request (worker A's) until released, then fails
  // it: A falls back to the lexical model (as for any provider failure on a corpus without a
  // model) and has chunks of another model to write
  let release;
  const held = new Promise((r) => { release = r; });
  let requests = 0;
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', async () => {
      const body = JSON.parse(raw);
      res.setHeader('content-type', 'application/json');
      if (++requests === 1) {
        await held;
        res.statusCode = 500;
        res.end('{"error":{"message":"overloaded"}}');
        return;
      }
      res.end(JSON.stringify({ model: body.model,
        data: body.input.map((text, index) => ({ index, embedding: fakeEmbedding(text) })) }));
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => { release(); srv.close(); });
  const fast = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '500', REX_HTTP_ALLOWLIST: '127.0.0.1' };
  const s = await scenario(t, { major: 5, env: X.workerEnv(fast), start: false });
  const a = await s.start();
  const { documentId, jobId } = await ingestOne(s.queue, `http://127.0.0.1:${srv.address().port}/v1`,
    'Trout swim upstream.');
  for (const end = Date.now() + 10000; requests < 1 && Date.now() < end;) await sleep(20);
  assert.equal(requests, 1, 'worker A is waiting for the provider');
  a.proc.kill('SIGSTOP'); // its lock expires; worker B runs the job again
  await s.start();
  await s.waitFor('completed', jobId, 20000);
  const doc = () => X.rows(`SELECT d.status, d.error, c.embedding_model, c.content FROM knowledge_documents d
    JOIN knowledge_chunks c ON c.document_id = d.id WHERE d.id = ${X.lit(documentId)}`);
  const want = [{ status: 'ready', error: null, embedding_model: 'openai:test-embed@64', content: 'Trout swim upstream.' }];
  assert.deepEqual(doc(), want);
  release();
  a.proc.kill('SIGCONT'); // A goes on: it must not write over what B ingested
  await a.waitLog(/taken over by a newer ingestion|Knowledge ingestion completed/, 10000);
  assert.deepEqual(doc(), want);
  assert.match(a.stderr, /taken over by a newer ingestion/);
});

test('an ingestion job failed for the stalled limit without running: its document ends failed', async (t) => {
  // an embedding provider that never answers keeps the job active until its worker is killed
  const seen = [];
  const srv = http.createServer((req) => { seen.push(req.url); });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => { srv.closeAllConnections(); srv.close(); });
  const env = X.workerEnv({ REX_HTTP_ALLOWLIST: '127.0.0.1', WORKER_CONCURRENCY: '1',
    LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '500', MAX_STALLED_COUNT: '0' });
  const s = await scenario(t, { major: 5, env, start: false });
  const a = await s.start();
  const { corpusId, documentId, jobId } = await ingestOne(s.queue,
    `http://127.0.0.1:${srv.address().port}/v1`, 'Some text to embed.');
  await X.waitRow(`SELECT 1 FROM knowledge_documents WHERE id = ${X.lit(documentId)} AND status = 'processing'`);
  const deadline = Date.now() + 10000;
  while (seen.length === 0 && Date.now() < deadline) await sleep(20);
  assert.equal(seen.length, 1, 'the job is waiting on the provider');
  await a.stop('SIGKILL');

  const b = await s.start();
  const failed = await s.waitFor('failed', jobId, 15000);
  assert.equal(failed.failedReason, 'job stalled more than allowable limit');
  const [doc] = await X.waitRow(`SELECT status, error FROM knowledge_documents WHERE id = ${X.lit(documentId)}`,
    (r) => r.length === 1 && r[0].status === 'failed', 10000);
  assert.equal(doc.error, 'Ingestion failed: job stalled more than allowable limit');
  assert.equal(X.rows(`SELECT status FROM knowledge_corpora WHERE id = ${X.lit(corpusId)}`)[0].status, 'failed');
  assert.equal(seen.length, 1, 'the job did not run again');
  await b.waitLog(/Knowledge document failed: its job failed without running/);
});

test('a corpus holding chunks of two models (legacy data) is ranked per model, merged, with a warning', async (t) => {
  const s = await scenario(t, { major: 5, env: X.workerEnv(), start: false });
  const w = await s.start();
  const corpusId = createCorpus();
  const documentId = crypto.randomUUID();
  X.psql(`INSERT INTO knowledge_documents (id, tenant_id, corpus_id, user_id, title, content_text, status)
    VALUES (${X.lit(documentId)}, ${X.lit(X.TENANT)}, ${X.lit(corpusId)}, ${X.lit(USER)}, 'mixed',
    'mixed', 'ready')`);
  const rowsIn = [['The ferry to the island leaves every hour from pier four.', 'rex-hash-v1-1536'],
    ['Bicycles travel free on the island ferry outside rush hour.', 'rex-lex-v1-1536'],
    ['The lighthouse museum is closed on Mondays.', 'rex-hash-v1']];
  const ids = rowsIn.map(() => crypto.randomUUID());
  rowsIn.forEach(([text, model], i) => {
    X.psql(`INSERT INTO knowledge_chunks (id, corpus_id, document_id, chunk_index, content, embedding_model)
      VALUES (${X.lit(ids[i])}, ${X.lit(corpusId)}, ${X.lit(documentId)}, ${i}, ${X.lit(text)}, ${X.lit(model)})`);
  });
  X.psql(`UPDATE knowledge_corpora SET status = 'ready' WHERE id = ${X.lit(corpusId)}`);
  const workflowId = X.insertWorkflow(RETRIEVE(corpusId), { userId: USER });
  const r = await ask(s, workflowId, 'island ferry');
  assert.equal(r.matches.length, 3);
  // both models contribute: the two ferry chunks come first, whatever their model
  assert.deepEqual(new Set(r.matches.slice(0, 2).map((m) => m.chunkId)), new Set([ids[0], ids[1]]));
  for (let i = 1; i < r.matches.length; i++) assert.ok(r.matches[i - 1].score >= r.matches[i].score);
  await w.waitLog(/several embedding models/);
});

test('rex-worker run with DATABASE_URL ingests into and retrieves from PostgreSQL as REX_RUN_USER_ID', () => {
  const { execFileSync, spawnSync } = require('node:child_process');
  const { REX_BIN } = require('../lib/worker');
  const wf = X.loadFixture('w2-oracle-knowledge');
  const user = crypto.randomUUID();
  X.ensureUser(user);
  const scopeId = wf.nodes.find((n) => n.type === 'knowledge-ingest').config.workflowIdScope;
  X.psql(`INSERT INTO workflows (id, tenant_id, user_id, name, nodes, edges) VALUES (${X.lit(scopeId)},
    ${X.lit(X.TENANT)}, ${X.lit(user)}, 'w2', '[]', '[]') ON CONFLICT DO NOTHING`);
  const file = require('node:path').join(require('node:os').tmpdir(), `rex-run-${process.pid}.json`);
  require('node:fs').writeFileSync(file, JSON.stringify(wf));
  const env = { PATH: process.env.PATH, DATABASE_URL: X.dbUrl(), REX_ENV_FILE: '/dev/null', LOG_LEVEL: 'warn' };
  try {
    const out = JSON.parse(execFileSync(REX_BIN, ['run', file],
      { env: { ...env, REX_RUN_USER_ID: user }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.equal(out.status, 'completed');
    const m = out.output._knowledge.matches;
    assert.ok(m.length > 0);
    const corpora = X.rows(`SELECT id, scope_type, workflow_id FROM knowledge_corpora WHERE user_id = ${X.lit(user)}`);
    assert.equal(corpora.length, 1);
    assert.deepEqual([corpora[0].scope_type, corpora[0].workflow_id], ['workflow', scopeId]);
    assert.equal(m[0].corpusId, corpora[0].id);
    // without a user: the knowledge node fails with a clear message, exit 1
    const r = spawnSync(REX_BIN, ['run', file], { env, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(JSON.parse(r.stdout).errorMessage, /needs REX_RUN_USER_ID/);
  } finally {
    require('node:fs').unlinkSync(file);
  }
});

test('the database failing under a retrieval (statement timeout) fails the attempt; the retry completes', async (t) => {
  const { spawn } = require('node:child_process');
  const s = await scenario(t, { major: 5, env: X.workerEnv({ REX_PG_STATEMENT_TIMEOUT_MS: '300' }) });
  const corpusId = createCorpus();
  const a = await ingest(s.queue, corpusId, DOC_B);
  await s.waitFor('completed', a.jobId, 15000);
  const wf = RETRIEVE(corpusId);
  wf.nodes.splice(1, 0, { id: 'wait', type: 'test-sleep', config: { ms: 1200 } });
  wf.edges = [{ id: 'e0', source: 'trigger', target: 'wait' }, { id: 'e1', source: 'wait', target: 'retrieve' },
    { id: 'e2', source: 'retrieve', target: 'out' }];
  const workflowId = X.insertWorkflow(wf, { userId: USER });
  // only the knowledge tables are locked (from before the retrieval, which comes after a 1.2 s
  // step, until after it): telemetry goes on, the retrieval's read times out
  const locker = spawn('psql', [process.env.DATABASE_URL, '-Xq', '-c',
    'BEGIN; LOCK TABLE knowledge_corpora IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2.5); COMMIT;'],
  { stdio: 'ignore' });
  const done = new Promise((r) => locker.on('exit', r));
  const { executionId } = await X.trigger(s.queue, { workflowId, userId: USER, payload: { question: 'chlorophyll' } });
  await s.waitFor('delayed', executionId, 10000);
  assert.match((await s.job(executionId)).failedReason, /statement timeout|canceling statement/i);
  await done;
  await s.waitFor('completed', executionId, 20000);
  const got = X.persisted(executionId);
  assert.equal(got.execution.status, 'completed', JSON.stringify(got.steps));
  // one clean set of rows (the first attempt's were removed by the re-run)
  const steps = got.steps.map((r) => `${r.node_id}:${r.status}`).sort();
  assert.deepEqual(steps, ['out:completed', 'retrieve:completed', 'trigger:completed', 'wait:completed']);
  const retrieve = got.steps.find((r) => r.node_id === 'retrieve');
  assert.match(retrieve.output._knowledge.matches[0].content, /Chlorophyll/);
});
