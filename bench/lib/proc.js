// Stopping a benchmarked worker: SIGTERM, then SIGKILL if it has not exited within timeoutMs.
// Resolves once it has exited (also when it already had). Shared by bench/queue, bench/e2e and bench/knowledge.
'use strict';

function stopProcess(proc, timeoutMs = 15000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', () => { clearTimeout(t); resolve(); });
    proc.kill('SIGTERM');
  });
}

module.exports = { stopProcess };
