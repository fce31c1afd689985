// The same job handlers as tests/interop/handlers/*.lua, for BullMQ's own Node Worker, so every
// worker scenario can run against both implementations (WORKER_IMPL=node|rex).
'use strict';

const { UnrecoverableError } = require('bullmq');

const handlers = {
  echo: async (job) => ({ echoed: job.data, attemptsMade: job.attemptsMade, name: job.name }),
  fail: async (job) => { throw new Error(job.data.message || `boom ${job.attemptsMade}`); },
  'fail-until': async (job) => {
    if (job.attemptsMade < job.data.succeedAt) throw new Error(`not yet ${job.attemptsMade}`);
    return { succeededAt: job.attemptsMade };
  },
  unrecoverable: async (job) => { throw new UnrecoverableError(job.data.message || 'cannot go on'); },
  progress: async (job) => {
    let i = 0;
    for (const v of job.data.values) {
      i += 1;
      await job.updateProgress(v);
      await job.log(`step ${i}`);
    }
    return { steps: job.data.values.length };
  },
  sleep: async (job) => {
    const started = Date.now();
    await new Promise((r) => setTimeout(r, job.data.ms));
    return { started, ended: Date.now(), id: job.id };
  },
  spin: async (job) => {
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < job.data.ms) n += 1;
    return { spins: n > 0 };
  },
  'bad-return': async () => ({ f: 10n }), // JSON.stringify throws on a BigInt
  'throw-table': async () => { throw { code: 42 }; }, // eslint-disable-line no-throw-literal
  size: async (job) => ({ length: job.data.blob.length }),
  noop: async () => undefined,
};

// rex-worker's rules for bad input (decisions.md §2), applied before the handler.
async function dispatch(job) {
  const h = handlers[job.name];
  if (!h) throw new UnrecoverableError(`Unknown job name: ${job.name}`);
  if (job.data === null || typeof job.data !== 'object' || Array.isArray(job.data)) {
    throw new UnrecoverableError('job data must be a JSON object');
  }
  return h(job);
}

module.exports = { handlers, dispatch };
