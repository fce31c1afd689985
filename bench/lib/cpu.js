// CPU time of the processes a benchmark measures, in seconds (utime + stime from /proc, clock
// ticks of 10 ms; Redis from INFO cpu). Shared by bench/queue, bench/e2e and bench/knowledge.
'use strict';

const fs = require('node:fs');

const TICK = 100; // USER_HZ

function stat(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return f.slice(f.lastIndexOf(')') + 2).split(' '); // [0] state, [1] ppid, [11] utime, [12] stime
}

// One process.
function procCpu(pid) {
  const f = stat(pid);
  return (Number(f[11]) + Number(f[12])) / TICK;
}

// A server and every process it started (PostgreSQL: the postmaster and its backends, WAL
// writer, ...). Children that exit between two readings are lost from the difference; keep the
// measured connections open.
function treeCpu(root) {
  if (!root) return NaN;
  let sum = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = stat(d);
      if (Number(d) === root || Number(f[1]) === root) sum += (Number(f[11]) + Number(f[12])) / TICK;
    } catch (_) { /* gone */ }
  }
  return sum;
}

// The postmaster of a local PostgreSQL: the parent of its checkpointer, found through `query`
// (a function running SQL and returning the text result); PG_PID when that fails.
function postmasterPid(query) {
  try {
    return Number(stat(Number(query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")))[1]);
  } catch (_) {
    return Number(process.env.PG_PID) || 0;
  }
}

// Redis as it reports itself (an ioredis client).
async function redisCpu(client) {
  const info = await client.info('cpu');
  const g = (k) => parseFloat((info.match(new RegExp(`${k}:([0-9.]+)`)) || [0, '0'])[1]);
  return g('used_cpu_user') + g('used_cpu_sys');
}

module.exports = { procCpu, treeCpu, postmasterPid, redisCpu };
