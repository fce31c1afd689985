// rex.cron against cron-parser (the library BullMQ's job schedulers use) on many patterns, time
// zones and start times, including DST transitions.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');
const { CronExpressionParser } = require('cron-parser');
const { ROOT } = require('./lib/harness');

const BIN = process.env.REX_WORKER_BIN || path.join(ROOT, 'build', 'rex-worker');

function rng(seed) {
  let x = seed >>> 0;
  return () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x / 2 ** 32; };
}

function cases() {
  const r = rng(20261126);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const zones = [undefined, 'UTC', 'America/New_York', 'Europe/Paris', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Sao_Paulo'];
  const fixed = ['*/5 * * * *', '0 9 * * 1-5', '30 2 * * *', '0 0 1 * *', '0 0 L * *', '15 10 * * 5#2',
    '*/10 * * * * *', '0 12 * JAN,JUL SUN', '0 3 * * 0', '59 23 31 12 *', '0 0 29 2 *', '0 */6 * * *',
    '5,35 8-18/2 * * MON-FRI', '0 30 1 * * *', '0 0 * * 5L', '0 1 15 * 1'];
  const field = (lo, hi) => {
    const k = Math.floor(r() * 5);
    const a = lo + Math.floor(r() * (hi - lo + 1));
    const b = Math.min(hi, a + Math.floor(r() * (hi - lo + 1)));
    if (k === 0) return '*';
    if (k === 1) return String(a);
    if (k === 2) return `${a}-${b}`;
    if (k === 3) return `*/${1 + Math.floor(r() * 7)}`;
    return `${a},${b}`;
  };
  const out = [];
  // start times around DST changes and elsewhere, 2026-2030
  const bases = [Date.UTC(2026, 2, 8, 6, 59, 30, 500), Date.UTC(2026, 2, 29, 0, 30), Date.UTC(2026, 9, 25, 0, 59, 59),
    Date.UTC(2026, 10, 1, 5, 0), Date.UTC(2027, 3, 4, 15, 10), Date.UTC(2028, 1, 28, 23, 59, 59, 999)];
  for (const p of fixed) for (const z of zones) out.push([p, z, pick(bases) + Math.floor(r() * 3e8)]);
  for (let i = 0; i < 300; i++) {
    const p = [field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6)].join(' ');
    out.push([p, pick(zones), pick(bases) + Math.floor(r() * 1e9)]);
  }
  return out;
}

test('rex.cron gives the same next times as cron-parser', () => {
  const cs = cases();
  const file = path.join(os.tmpdir(), `rex-cron-${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify(cs));
  const script = path.join(os.tmpdir(), `rex-cron-${process.pid}.lua`);
  fs.writeFileSync(script, `
    local json, cron = require("rex.json"), require("rex.cron")
    local f = io.open(arg[1]); local cs = json.decode(f:read("*a")); f:close()
    local out = {}
    for i, c in ipairs(cs) do
      local z = c[2]; if z == json.null then z = nil end
      local n, err = cron.next(c[1], c[3], z)
      out[i] = n or ("error: " .. tostring(err))
    end
    io.write(json.encode(out))`);
  const ours = JSON.parse(execFileSync(BIN, ['lua', script, file], { encoding: 'utf8', env: { ...process.env, REX_ENV_FILE: '/dev/null' } }));
  fs.unlinkSync(file);
  fs.unlinkSync(script);
  const mismatches = [];
  let compared = 0;
  cs.forEach(([p, tz, base], i) => {
    let want;
    try {
      want = CronExpressionParser.parse(p, { currentDate: new Date(base), tz }).next().getTime();
    } catch {
      return; // a pattern cron-parser refuses (e.g. "5,5"): not a comparison
    }
    compared += 1;
    if (ours[i] !== want) mismatches.push({ p, tz, base: new Date(base).toISOString(), want: new Date(want).toISOString(), got: typeof ours[i] === 'number' ? new Date(ours[i]).toISOString() : ours[i] });
  });
  assert.ok(compared > 300, `compared only ${compared}`);
  assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${compared} differ`);
});
