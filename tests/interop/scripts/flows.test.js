// Flows (protocol §4.15), deduplication at finish (§4.16) and scheduler_next (§4.14), with the
// real FlowProducer, Queue dedup options and Queue.upsertJobScheduler on the producer side.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, brief, runNodeWorker, connection } = require('./common');

async function flowSetup(tag) {
  const parent = await setup(`${tag}-p`);
  const child = await setup(`${tag}-c`);
  const flow = parent.track(new parent.bull.FlowProducer({ connection: connection() }));
  return {
    parent, child, flow,
    add: (children, parentOpts = {}) => flow.add({ name: 'parent', queueName: parent.name, data: {},
      opts: parentOpts, children: children.map((c, i) => ({ name: `c${i}`, queueName: child.name,
        data: { i }, ...c })) }),
    async cleanup() { await child.cleanup(); await parent.cleanup(); },
  };
}

async function fetchId(s, id, token = 'tok-1') {
  const r = await s.fetch({ token });
  assert.equal(r.id, id);
  return r;
}

test('flow: completing the children releases the parent and fills :processed, like Node', async () => {
  const n = await flowSetup('flow-node');
  const f = await flowSetup('flow-rex');
  try {
    const nt = await n.add([{}, {}]);
    const ft = await f.add([{}, {}]);
    await runNodeWorker(6, n.child.name, 2, async (job) => ({ child: job.data.i }));

    const pid = ft.job.id;
    assert.equal(await f.parent.state(pid), 'waiting-children');
    assert.equal(await f.parent.s.finish(pid, { token: '0' }), -4, 'pending children come first');
    const [c0, c1] = ft.children.map((c) => c.job.id);
    await fetchId(f.child.s, c0);
    await f.child.s.finish(c0, { value: JSON.stringify({ child: 0 }) });
    assert.equal(await f.parent.state(pid), 'waiting-children');
    await fetchId(f.child.s, c1);
    await f.child.s.finish(c1, { value: JSON.stringify({ child: 1 }), keepJobs: { count: 0 } });
    assert.equal(await f.parent.state(pid), 'waiting');
    assert.equal(await f.parent.redis.zscore(`${f.parent.P}marker`, '0'), '0');
    const values = await (await f.parent.job(pid)).getChildrenValues();
    assert.deepEqual(values, { [`${f.child.P}${c0}`]: { child: 0 }, [`${f.child.P}${c1}`]: { child: 1 } });
    // same parent-queue events as with a Node Worker on the children
    const norm = (evs, id) => brief(evs).map((e) => e.replace(id, 'P'));
    assert.deepEqual(norm(await f.parent.events(), pid), norm(await n.parent.events(), nt.job.id));

    const r = await fetchId(f.parent.s, pid);
    assert.equal(r.job.name, 'parent');
    assert.equal(await f.parent.s.finish(pid, { value: '"done"' }), 0);
    assert.equal(await f.parent.state(pid), 'completed');
  } finally {
    await n.cleanup();
    await f.cleanup();
  }
});

test('flow: pending children give -4; a delayed / prioritized parent is released accordingly', async () => {
  const f = await flowSetup('flow-pend');
  try {
    const t = await f.add([{}], { priority: 3 });
    const pid = t.job.id;
    // the parent, fetched out of turn, cannot complete while a child is pending
    await f.parent.redis.zrem(`${f.parent.P}waiting-children`, pid);
    await f.parent.redis.lpush(`${f.parent.P}active`, pid);
    assert.equal(await f.parent.s.finish(pid, { token: '0' }), -4);
    await f.parent.redis.lrem(`${f.parent.P}active`, 0, pid);
    await f.parent.redis.zadd(`${f.parent.P}waiting-children`, 1, pid);
    await fetchId(f.child.s, t.children[0].job.id);
    await f.child.s.finish(t.children[0].job.id, { value: '1' });
    assert.equal(await f.parent.state(pid), 'prioritized');

    const t2 = await f.add([{}], { delay: 60000 });
    const now = Date.now();
    await fetchId(f.child.s, t2.children[0].job.id);
    await f.child.s.finish(t2.children[0].job.id, { value: '1', now });
    assert.equal(await f.parent.state(t2.job.id), 'delayed');
    assert.equal(await f.parent.redis.zscore(`${f.parent.P}delayed`, t2.job.id), String((now + 60000) * 4096));
    const last = (await f.parent.events()).at(-1);
    assert.deepEqual(last, { event: 'delayed', jobId: t2.job.id, delay: String(now + 60000) });
  } finally {
    await f.cleanup();
  }
});

test('flow: fpof child failure fails the parent through defa (same reason as Node)', async () => {
  const n = await flowSetup('fpof-node');
  const f = await flowSetup('fpof-rex');
  try {
    const kids = [{ opts: { failParentOnFailure: true } }, {}];
    const nt = await n.add(kids);
    const ft = await f.add(kids);
    await runNodeWorker(6, n.child.name, 1, async () => { throw new Error('kid broke'); }, { concurrency: 1 });
    await runNodeWorker(6, n.parent.name, 1, async () => 'never');

    const pid = ft.job.id;
    const ck = ft.children[0].job.id;
    await fetchId(f.child.s, ck);
    await f.child.s.finish(ck, { target: 'failed', value: 'kid broke', attempts: 0 });
    assert.equal(await f.parent.state(pid), 'waiting');
    assert.equal(await f.parent.redis.hget(`${f.parent.P}${pid}`, 'defa'), `child ${f.child.P}${ck} failed`);
    assert.deepEqual(await f.parent.redis.zrange(`${f.parent.P}${pid}:unsuccessful`, 0, -1), [`${f.child.P}${ck}`]);
    const r = await fetchId(f.parent.s, pid);
    assert.equal(await f.parent.s.finish(pid, { value: '1' }), -4, 'the second child is pending');
    const other = `${f.child.P}${ft.children[1].job.id}`;
    await f.parent.redis.srem(`${f.parent.P}${pid}:dependencies`, other);
    assert.equal(await f.parent.s.finish(pid, { value: '1' }), -9, 'completing with a failed child');
    await f.parent.redis.sadd(`${f.parent.P}${pid}:dependencies`, other);
    await f.parent.s.finish(pid, { target: 'failed', value: r.job.defa });
    const [mine, theirs] = [await f.parent.job(pid), await n.parent.job(nt.job.id)];
    assert.equal(await f.parent.state(pid), 'failed');
    assert.equal(await n.parent.state(nt.job.id), 'failed');
    assert.equal(theirs.failedReason, `child ${n.child.P}${nt.children[0].job.id} failed`);
    assert.equal(mine.failedReason, `child ${f.child.P}${ck} failed`);
    assert.equal(await f.parent.redis.hexists(`${f.parent.P}${pid}`, 'defa'), 0);
  } finally {
    await n.cleanup();
    await f.cleanup();
  }
});

test('flow: cpof, idof, rdof and removeOnFail on the last child', async () => {
  const f = await flowSetup('flow-flags');
  try {
    const fail = async (id, keepJobs) => {
      await fetchId(f.child.s, id);
      await f.child.s.finish(id, { target: 'failed', value: 'nope', keepJobs });
    };
    // cpof: released at once, even with another child pending
    let t = await f.add([{ opts: { continueParentOnFailure: true } }, {}]);
    await fail(t.children[0].job.id);
    assert.equal(await f.parent.state(t.job.id), 'waiting');
    assert.deepEqual(await f.parent.redis.hgetall(`${f.parent.P}${t.job.id}:failed`),
      { [`${f.child.P}${t.children[0].job.id}`]: 'nope' });
    await f.child.redis.del(`${f.child.P}wait`);
    await f.parent.redis.del(`${f.parent.P}wait`);
    // idof: recorded in :failed, released once nothing is pending
    t = await f.add([{ opts: { ignoreDependencyOnFailure: true } }]);
    await fail(t.children[0].job.id);
    assert.equal(await f.parent.state(t.job.id), 'waiting');
    assert.equal(await f.parent.redis.hlen(`${f.parent.P}${t.job.id}:failed`), 1);
    await f.parent.redis.del(`${f.parent.P}wait`);
    // rdof: dropped from dependencies, nothing recorded
    t = await f.add([{ opts: { removeDependencyOnFailure: true } }]);
    await fail(t.children[0].job.id);
    assert.equal(await f.parent.state(t.job.id), 'waiting');
    assert.equal(await f.parent.redis.exists(`${f.parent.P}${t.job.id}:failed`), 0);
    await f.parent.redis.del(`${f.parent.P}wait`);
    // no flag: the parent keeps waiting; removeOnFail (count 0) detaches the child and frees it
    t = await f.add([{}]);
    await fail(t.children[0].job.id);
    assert.equal(await f.parent.state(t.job.id), 'waiting-children');
    t = await f.add([{}]);
    await fail(t.children[0].job.id, { count: 0 });
    assert.equal(await f.parent.state(t.job.id), 'waiting');
    assert.equal(brief(await f.parent.events()).at(-1), `waiting ${t.job.id} waiting-children`);
  } finally {
    await f.cleanup();
  }
});

test('dedup: the key is released at finish; keepLastIfActive requeues the stored job', async () => {
  const c = await setup('dedup');
  try {
    const a = await c.queue.add('x', { v: 1 }, { deduplication: { id: 'd1' } });
    assert.equal(await c.redis.get(`${c.P}de:d1`), a.id);
    await c.s.fetch();
    await c.s.finish(a.id, { value: '1' });
    assert.equal(await c.redis.exists(`${c.P}de:d1`), 0);
    const b = await c.queue.add('x', { v: 2 }, { deduplication: { id: 'd1' } });
    assert.notEqual(b.id, a.id, 'a new job is accepted after release');
    await c.s.fetch();
    // with a live ttl the window stays
    const t = await c.queue.add('x', {}, { deduplication: { id: 'dt', ttl: 60000 } });
    await c.s.finish(b.id, { value: '1' });
    await c.s.fetch();
    await c.s.finish(t.id, { value: '1' });
    assert.equal(await c.redis.get(`${c.P}de:dt`), t.id);

    const k1 = await c.queue.add('x', { v: 'first' }, { deduplication: { id: 'kl', keepLastIfActive: true } });
    await c.s.fetch();
    await c.queue.add('x', { v: 'second' }, { deduplication: { id: 'kl', keepLastIfActive: true } });
    await c.queue.add('x', { v: 'third' }, { deduplication: { id: 'kl', keepLastIfActive: true } });
    assert.equal(await c.redis.exists(`${c.P}dn:kl`), 1);
    const jid = await c.redis.hget(`${c.P}dn:kl`, 'jid');
    await c.s.finish(k1.id, { value: '1' });
    assert.equal(await c.redis.exists(`${c.P}dn:kl`), 0);
    assert.equal(await c.redis.get(`${c.P}de:kl`), jid);
    assert.equal(await c.state(jid), 'waiting');
    const next = await c.job(jid);
    assert.deepEqual(next.data, { v: 'third' });
    assert.equal(next.deduplicationId, 'kl');
    assert.deepEqual(brief(await c.events()).slice(-3, -1), [`added ${jid}`, `waiting ${jid}`]);
    const order = [];
    await runNodeWorker(6, c.name, 1, async (job) => { order.push(job.data.v); });
    assert.deepEqual(order, ['third']);
    assert.equal(await c.redis.exists(`${c.P}de:kl`), 0);
  } finally {
    await c.cleanup();
  }
});

test('scheduler_next: an `every` scheduler gets its next iteration as with a Node Worker', async () => {
  const node = await setup('sch-node');
  const c = await setup('sch-rex');
  try {
    for (const q of [node.queue, c.queue]) {
      await q.upsertJobScheduler('s1', { every: 60000 }, { name: 'tick', data: { t: 1 }, opts: { attempts: 2 } });
    }
    await runNodeWorker(6, node.name, 1, async () => 'ok');

    const [first] = await c.redis.zrange(`${c.P}repeat`, 0, 0, 'WITHSCORES').then((r) => [Number(r[1])]);
    const now = Math.max(Date.now(), first);
    const r = await c.s.fetch({ now });
    assert.equal(r.id, `repeat:s1:${first}`);
    assert.equal(r.job.rjk, 's1');
    // the caller's part (protocol §4.14): current opts, timestamp now, repeat.count + 1
    const cur = JSON.parse(r.job.opts);
    const opts = { ...cur, timestamp: now, repeat: { ...cur.repeat, count: (cur.repeat.count || 0) + 1 } };
    const nid = await c.s.schedulerNext('s1', { producerId: r.id, now, opts });
    assert.equal(nid, `repeat:s1:${first + 60000}`);
    assert.equal(await c.state(nid), 'delayed');
    const mine = await c.redis.hgetall(c.P + nid);
    const [theirsId] = await node.redis.zrange(`${node.P}delayed`, 0, 0);
    const theirs = await node.redis.hgetall(node.P + theirsId);
    assert.deepEqual(Object.keys(mine).sort(), Object.keys(theirs).sort());
    assert.equal(mine.delay, String(first + 60000 - now));
    assert.equal(mine.timestamp, String(now));
    const mo = JSON.parse(mine.opts);
    const to = JSON.parse(theirs.opts);
    assert.deepEqual(Object.keys(mo).sort(), Object.keys(to).sort());
    assert.deepEqual(mo.repeat, to.repeat);
    assert.equal(mo.jobId, nid);
    assert.equal(mo.delay, Number(mine.delay));
    const sm = await c.redis.hgetall(`${c.P}repeat:s1`);
    const st = await node.redis.hgetall(`${node.P}repeat:s1`);
    assert.equal(sm.offset, String(first % 60000));
    assert.deepEqual({ ...sm, offset: 0 }, { ...st, offset: 0 });
    assert.equal(await c.redis.zscore(`${c.P}repeat`, 's1'), String(first + 60000));
    assert.equal(await c.redis.zscore(`${c.P}delayed`, nid), String((first + 60000) * 4096));
    const evs = brief(await c.events()).slice(-2);
    assert.deepEqual(evs, [`added ${nid}`, `delayed ${nid}`]);
    const scheds = await c.queue.getJobSchedulers();
    assert.equal(scheds[0].next, first + 60000);

    // a second call for the same fetched job (no longer current) creates nothing
    assert.equal(await c.s.schedulerNext('s1', { producerId: r.id, now, opts }), null);
    assert.equal(await c.s.schedulerNext('gone', { producerId: r.id, now, opts }), null);
    // the job iteration Node can process
    await c.s.finish(r.id, { value: '"ok"' });
    assert.equal(await c.state(r.id), 'completed');
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('scheduler_next: `pattern` takes nextMillis from the caller; late `every` realigns', async () => {
  const c = await setup('sch-more');
  try {
    await c.queue.upsertJobScheduler('p1', { pattern: '0 0 1 1 *' }, { name: 'yearly', data: { y: 1 } });
    const prev = Number(await c.redis.zscore(`${c.P}repeat`, 'p1'));
    const now = Date.now();
    const next = prev + 365 * 24 * 3600 * 1000;
    const opts = { repeat: { pattern: '0 0 1 1 *', count: 2 }, repeatJobKey: 'p1', timestamp: now };
    assert.equal(await c.s.schedulerNext('p1', { nextMillis: next, producerId: 'repeat:p1:1', now, opts }), null,
      'only the current iteration produces the next one');
    const nid = await c.s.schedulerNext('p1', { nextMillis: next, producerId: `repeat:p1:${prev}`, now, opts });
    assert.equal(nid, `repeat:p1:${next}`);
    const job = await c.job(nid);
    assert.equal(job.name, 'yearly');
    assert.deepEqual(job.data, { y: 1 });
    assert.equal(job.delay, next - now);
    assert.equal(job.repeatJobKey, 'p1');
    assert.equal(job.opts.jobId, nid);
    assert.equal(await c.redis.hget(`${c.P}repeat:p1`, 'ic'), '2');
    assert.equal((await c.queue.getJobSchedulers())[0].next, next);
    // the slot exists already: `duplicated`, nothing created
    await c.redis.zadd(`${c.P}repeat`, prev, 'p1');
    assert.equal(await c.s.schedulerNext('p1', { nextMillis: next, producerId: `repeat:p1:${prev}`, now, opts }), null);
    assert.equal(brief(await c.events()).at(-1), `duplicated ${nid}`);

    // every 1000, fetched 5.5 s late: the next slot is the first aligned one after now
    await c.queue.upsertJobScheduler('e1', { every: 1000 }, { name: 'tick' });
    const p = Number(await c.redis.zscore(`${c.P}repeat`, 'e1'));
    const offset = Number(await c.redis.hget(`${c.P}repeat:e1`, 'offset'));
    const late = p + 5500;
    const eid = await c.s.schedulerNext('e1', { producerId: `repeat:e1:${p}`, now: late, opts: {} });
    const expected = Math.floor(late / 1000) * 1000 + offset;
    const want = expected <= late ? expected + 1000 : expected;
    assert.equal(eid, `repeat:e1:${want}`);
    assert.ok(want > late && want <= late + 1000);
    assert.equal(await c.state(eid), 'delayed');
  } finally {
    await c.cleanup();
  }
});

test('dedup keepLastIfActive: the requeued job matches what a Node Worker leaves', async () => {
  const node = await setup('dn-node');
  const c = await setup('dn-rex');
  try {
    const de = { deduplication: { id: 'kl', keepLastIfActive: true } };
    // Node: a slow first job, the second add arrives while it is active
    let release;
    const gate = new Promise((r) => { release = r; });
    const w = node.track(new node.bull.Worker(node.name, async (job) => {
      if (job.data.v === 1) await gate;
      return job.data.v;
    }, { connection: connection() }));
    const done = new Promise((r) => { let n = 0; w.on('completed', () => { if (++n === 2) r(); }); });
    await node.queue.add('x', { v: 1 }, de);
    for (let i = 0; i < 100 && (await node.queue.getActiveCount()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await node.queue.add('x', { v: 2 }, de);
    release();
    await done;

    await c.queue.add('x', { v: 1 }, de);
    await c.s.fetch();
    await c.queue.add('x', { v: 2 }, de);
    await c.s.finish('1', { value: '1', fetchNext: true, nextToken: 't2' });
    await c.s.finish('2', { token: 't2', value: '2', fetchNext: true });
    const shape = (h) => ({ ...h, processedOn: '<t>', finishedOn: '<t>', timestamp: '<t>' });
    for (const id of ['1', '2']) {
      assert.deepEqual(shape(await c.redis.hgetall(c.P + id)), shape(await node.redis.hgetall(node.P + id)), id);
    }
    assert.deepEqual(brief(await c.events()), brief(await node.events()));
    assert.equal(await c.redis.exists(`${c.P}de:kl`), await node.redis.exists(`${node.P}de:kl`));
    assert.equal(await c.redis.get(`${c.P}id`), await node.redis.get(`${node.P}id`));
  } finally {
    await node.cleanup();
    await c.cleanup();
  }
});

test('flow: grandparent released when its child (itself a parent) completes', async () => {
  const f = await flowSetup('flow-gp');
  try {
    const t = await f.flow.add({ name: 'gp', queueName: f.parent.name, data: {}, children: [
      { name: 'mid', queueName: f.parent.name, data: {}, children: [
        { name: 'leaf', queueName: f.child.name, data: {} }] }] });
    const gp = t.job.id;
    const mid = t.children[0].job.id;
    const leaf = t.children[0].children[0].job.id;
    await fetchId(f.child.s, leaf);
    await f.child.s.finish(leaf, { value: '"leaf"' });
    assert.equal(await f.parent.state(mid), 'waiting');
    assert.equal(await f.parent.state(gp), 'waiting-children');
    await fetchId(f.parent.s, mid);
    assert.equal(await f.parent.s.finish(mid, { value: '"mid"', fetchNext: true }).then((r) => r.id), gp,
      'fetchNext picks up the grandparent it just released');
    assert.deepEqual(await (await f.parent.job(gp)).getChildrenValues(), { [`${f.parent.P}${mid}`]: 'mid' });
    assert.equal(await f.parent.s.finish(gp, { token: 'tok-2', value: '"gp"' }), 0);
    assert.equal(await f.parent.state(gp), 'completed');
  } finally {
    await f.cleanup();
  }
});

test('flow: fpof with the parent delayed (released, delay 0) or elsewhere (defa only)', async () => {
  const f = await flowSetup('fpof-more');
  try {
    const kid = [{ opts: { failParentOnFailure: true } }];
    const t1 = await f.add(kid);
    const p1 = t1.job.id;
    // the parent sits in delayed (as after a release with a delay)
    await f.parent.redis.zrem(`${f.parent.P}waiting-children`, p1);
    await f.parent.redis.zadd(`${f.parent.P}delayed`, String((Date.now() + 60000) * 4096), p1);
    await f.parent.redis.hset(`${f.parent.P}${p1}`, 'delay', '60000');
    await fetchId(f.child.s, t1.children[0].job.id);
    await f.child.s.finish(t1.children[0].job.id, { target: 'failed', value: 'x' });
    assert.equal(await f.parent.state(p1), 'waiting');
    const h1 = await f.parent.redis.hgetall(`${f.parent.P}${p1}`);
    assert.equal(h1.delay, '0');
    assert.match(h1.defa, /^child .* failed$/);

    const t2 = await f.add(kid);
    const p2 = t2.job.id;
    await f.parent.redis.zrem(`${f.parent.P}waiting-children`, p2);
    await f.parent.redis.lpush(`${f.parent.P}active`, p2);
    await fetchId(f.child.s, t2.children[0].job.id);
    await f.child.s.finish(t2.children[0].job.id, { target: 'failed', value: 'x' });
    assert.equal(await f.parent.state(p2), 'active');
    assert.match(await f.parent.redis.hget(`${f.parent.P}${p2}`, 'defa'), /^child .* failed$/);
  } finally {
    await f.cleanup();
  }
});
