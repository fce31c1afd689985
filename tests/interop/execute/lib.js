// Helpers for the execute-workflow scenarios: the PostgreSQL side (psql against the
// DATABASE_URL of scripts/services.sh), REX's way of enqueueing (§1 of rex-behaviour.md: an
// executions row and an authorization row, then Queue.add with jobId = execution id and the
// backend's job options) and readers of the persisted rows.
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { execFileSync } = require('node:child_process');
const { ROOT } = require('../lib/harness');
const { REX_BIN, sleep } = require('../lib/worker');

const FIXTURES = process.env.REX_FIXTURES
  || path.resolve(ROOT, '..', 'shared', 'fixtures', 'rex-workflows');
const NODES = path.join(__dirname, 'nodes');
const TENANT = '00000000-0000-0000-0000-000000000001';
const MASTER_KEY = 'test-master-key';

// REX's backend job options (apps/backend/src/queue/client.ts)
const REX_JOB_OPTS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};

function dbUrl() {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run through scripts/test.sh');
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(u.hostname)) {
    throw new Error(`tests only talk to loopback servers, not ${u.hostname}`);
  }
  return url;
}

// Runs SQL through psql; returns stdout (unaligned, tuples only).
function psql(sql, url = dbUrl()) {
  return execFileSync('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

const lit = (v) => (v === null || v === undefined ? 'NULL' : `'${String(v).replace(/'/g, "''")}'`);
const jsonLit = (v) => `${lit(JSON.stringify(v))}::jsonb`;

// Rows of a query as JSON objects.
function rows(sql, url) {
  const out = psql(`SELECT coalesce(json_agg(t), '[]'::json) FROM (${sql}) t`, url);
  return JSON.parse(out);
}

function migrate(env = {}) {
  return execFileSync(REX_BIN, ['migrate'], {
    env: { PATH: process.env.PATH, DATABASE_URL: dbUrl(), REX_ENV_FILE: '/dev/null', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function ensureUser(userId) {
  psql(`INSERT INTO users (id, email, name, password_hash) VALUES (${lit(userId)},
    ${lit(`${userId}@example.test`)}, 'Test user', 'x') ON CONFLICT DO NOTHING`);
}

function loadFixture(name) {
  const file = name.includes('/') ? name : path.join(FIXTURES, `${name}.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// Inserts a workflow (a fresh id unless given); returns its id.
function insertWorkflow(wf, { userId, id = crypto.randomUUID(), nodesJson } = {}) {
  ensureUser(userId);
  const nodes = nodesJson !== undefined ? `${lit(nodesJson)}::jsonb` : jsonLit(wf.nodes);
  psql(`INSERT INTO workflows (id, tenant_id, user_id, name, status, nodes, edges) VALUES
    (${lit(id)}, ${lit(TENANT)}, ${lit(userId)}, ${lit(wf.name || 'test')}, 'active', ${nodes},
    ${jsonLit(wf.edges || [])})`);
  return id;
}

// What REX's backend does to trigger: executions row (pending), authorization row, then the job.
async function trigger(queue, { workflowId, userId, payload = {}, domainConfig,
  authorization = true, status = 'pending' }) {
  const executionId = crypto.randomUUID();
  psql(`INSERT INTO executions (id, tenant_id, workflow_id, status, trigger_payload) VALUES
    (${lit(executionId)}, ${lit(TENANT)}, ${lit(workflowId)}, ${lit(status)}, ${jsonLit(payload)})`);
  let executionAuthorizationId;
  if (authorization) {
    executionAuthorizationId = crypto.randomUUID();
    psql(`INSERT INTO execution_authorizations (id, tenant_id, execution_id, workflow_id, user_id,
      action, attributes, expires_at, revoked) VALUES (${lit(executionAuthorizationId)},
      ${lit(TENANT)}, ${lit(executionId)}, ${lit(workflowId)}, ${lit(userId)}, 'execute',
      ${jsonLit({ trigger: 'api', hasHyperparameterProfile: false })},
      now() + interval '30 minutes', false)`);
  }
  const data = { executionId, workflowId, triggerPayload: payload, userId };
  if (domainConfig !== undefined) data.domainConfig = domainConfig;
  if (executionAuthorizationId) data.executionAuthorizationId = executionAuthorizationId;
  await queue.add('execute-workflow', data, { ...REX_JOB_OPTS, jobId: executionId });
  return { executionId, executionAuthorizationId, data };
}

// Everything the worker persisted for one execution, in the fixture file's shapes.
function persisted(executionId) {
  const id = lit(executionId);
  const [execution] = rows(`SELECT id, workflow_id, status, error_message, trigger_payload,
    started_at IS NOT NULL AS has_started_at, finished_at IS NOT NULL AS has_finished_at, tenant_id
    FROM executions WHERE id = ${id}`);
  return {
    execution,
    steps: rows(`SELECT node_id, node_type, status, input, output, duration_ms, error, tenant_id
      FROM execution_steps WHERE execution_id = ${id} ORDER BY created_at, ctid`),
    attempts: rows(`SELECT node_id, node_type, attempt, status, duration_ms, reason
      FROM execution_step_attempts WHERE execution_id = ${id} ORDER BY created_at, ctid`),
    snapshots: rows(`SELECT sequence, reason, node_id, node_type, state, tenant_id
      FROM execution_context_snapshots WHERE execution_id = ${id} ORDER BY sequence, ctid`),
    retrievalEvents: rows(`SELECT node_id, node_type, query, top_k, attempt, max_attempts, status,
      matches_count, error_message, scope_type, corpus_id, workflow_id_scope, execution_id_scope,
      strategy, retriever_key, branch_index, selected
      FROM execution_retrieval_events WHERE execution_id = ${id} ORDER BY created_at, ctid`),
    guardrailEvents: rows(`SELECT node_id, node_type, guard_type, severity, reason
      FROM guardrail_events WHERE execution_id = ${id} ORDER BY created_at, ctid`),
  };
}

async function waitRow(sql, pred = (r) => r.length > 0, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = rows(sql);
    if (pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${sql}\nlast: ${JSON.stringify(r)}`);
    await sleep(50);
  }
}

// REX's ciphertext of an API key under MASTER_KEY (rex-behaviour.md §2.4), and its plaintext.
const STORED_KEY = 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=:AgICAgICAgICAgICAgICAg==:esIhfQSIMErsp66KgUrNqg==:gGl1X2+2P4NtE8HWMKa4v60i';
const STORED_KEY_PLAINTEXT = 'sk-test-1234567890';

// A JSON endpoint on loopback standing in for a provider (LLM, embeddings): answer(body) gives the
// reply; every request is recorded as {url, auth, body}. Closed after the test.
async function fakeProvider(t, answer) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      const body = JSON.parse(raw);
      seen.push({ url: req.url, auth: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer(body)));
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  return { url: `http://127.0.0.1:${srv.address().port}/v1`, seen };
}

function workerEnv(extra = {}) {
  return {
    DATABASE_URL: dbUrl(),
    ENCRYPTION_MASTER_KEY: MASTER_KEY,
    REX_NODES_PATH: NODES,
    WORKER_CONCURRENCY: '2',
    ...extra,
  };
}

module.exports = {
  FIXTURES, TENANT, MASTER_KEY, REX_JOB_OPTS, psql, rows, lit, jsonLit, migrate, ensureUser,
  loadFixture, insertWorkflow, trigger, persisted, waitRow, workerEnv, STORED_KEY,
  STORED_KEY_PLAINTEXT, fakeProvider, dbUrl,
};
