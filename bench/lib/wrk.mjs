// wrk (C, event-driven): a load generator that leaves the 2-core machine's CPU to the servers
// measured, where autocannon (Node) needs a core of its own. Steady throughput only: wrk cannot
// tell a request lost to a closing socket apart, which the restart benchmarks must count.
import { execFile, execFileSync } from 'node:child_process';
import { CONNECTIONS } from './load.mjs';

/** Throws with the fix when wrk is not installed. */
export function assertWrk() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    // `wrk --version` prints its banner and exits 1; only a missing binary is an error here.
    if (error.code === 'ENOENT') throw new Error('the throughput benchmark needs wrk: apt-get install wrk (Debian, Ubuntu) or brew install wrk');
  }
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
function toMs(text) {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) throw new Error(`wrk printed a latency this script cannot read: ${text}`);
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** Reads wrk's report (run with --latency) into the shape `loadTest` returns. */
export function parseWrk(output) {
  const number = (pattern) => Number(pattern.exec(output)?.[1] ?? NaN);
  const latency = (label) => toMs(new RegExp(`^\\s+${label}%\\s+(\\S+)`, 'm').exec(output)?.[1] ?? 'NaNms');
  const requests = number(/(\d+) requests in/);
  const rps = number(/Requests\/sec:\s+([\d.]+)/);
  if (!Number.isFinite(requests) || !Number.isFinite(rps)) throw new Error(`wrk printed no totals:\n${output}`);
  const kinds = {};
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (socket) ['connect', 'read', 'write', 'timeout'].forEach((kind, i) => Number(socket[i + 1]) && (kinds[kind] = Number(socket[i + 1])));
  const non2xx = number(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) kinds['non-2xx'] = non2xx;
  const max = /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(output)?.[1];
  return {
    requests,
    errors: Object.values(kinds).reduce((sum, n) => sum + n, 0),
    kinds,
    p50: latency('50'), p99: latency('99'), max: max ? toMs(max) : NaN,
    rps,
  };
}

/**
 * `duration` seconds of wrk on `port` (one thread, `connections` connections). A connection per
 * request is wrk sending `Connection: close`: the server closes after each reply, wrk reconnects.
 */
export function wrkTest(port, pattern, duration, { connections = CONNECTIONS } = {}) {
  const args = ['-t1', `-c${connections}`, `-d${duration}s`, '--latency', ...(pattern.reconnectRate ? ['-H', 'Connection: close'] : []), `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`wrk ${args.join(' ')} failed: ${stderr || error.message}`));
      try {
        resolve(parseWrk(stdout));
      } catch (parseError) {
        reject(parseError);
      }
    });
  });
}
