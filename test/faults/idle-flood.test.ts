import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from '../helpers/app.js';
import { startLoad } from '../helpers/load.js';
import { cleanupAll, eventually, isAlive, MasterProcess } from '../helpers/processes.js';

const IDLE_CONNECTIONS = 10_000;
/** File descriptors each side needs: the connections, and room for node's own. */
const FD_LIMIT = IDLE_CONNECTIONS + 2_000;
/** Runs the command after it with the open-files limit raised (the default soft limit is often 1024). */
const RAISED_LIMIT = ['-c', `ulimit -n ${FD_LIMIT} && exec "$@"`, 'sh'];

function hardFdLimit(): number {
  const out = execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Infinity : Number(out);
}
const fdLimitTooLow = hardFdLimit() < FD_LIMIT;

/**
 * A client that opens `count` connections, makes one keep-alive request on each, then leaves them
 * idle; prints `{"opened":n,...}` once every response came, then `{"closed":n,...}` once the server
 * closed them all. `ended` counts clean closes (FIN); `errors` anything else (a reset).
 */
const IDLE_CLIENT = `
import net from 'node:net';
const [port, count] = process.argv.slice(2).map(Number);
const stats = { opened: 0, closed: 0, ended: 0, errors: {} };
const report = (what) => process.stdout.write(JSON.stringify({ [what]: stats[what], ended: stats.ended, errors: stats.errors }) + '\\n');
function connect() {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write('GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'));
    socket.on('data', (chunk) => {
      received += chunk;
      if (received.endsWith('Hello World')) { stats.opened += 1; resolve(); }
    });
    socket.on('error', (error) => { stats.errors[error.code] = (stats.errors[error.code] ?? 0) + 1; });
    socket.on('end', () => { stats.ended += 1; });
    socket.on('close', () => {
      resolve();
      stats.closed += 1;
      if (stats.closed === count) { report('closed'); process.exit(0); }
    });
  });
}
// 250 at a time: well inside the listen backlog, so no SYN waits for a retransmit.
for (let i = 0; i < count; i += 250) await Promise.all(Array.from({ length: Math.min(250, count - i) }, connect));
report('opened');
`;

let client: ChildProcess | undefined;

afterEach(async () => {
  client?.kill('SIGKILL');
  client = undefined;
  await cleanupAll();
});

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resolves with the client's next JSON line that has `key`. */
function clientReport(child: ChildProcess, key: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`idle client printed no ${key} line within ${timeoutMs} ms; it printed: ${buffered}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (const line of buffered.split('\n')) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (key in parsed) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          resolve(parsed);
        }
      }
    };
    child.stdout!.on('data', onData);
  });
}

describe('fault: a flood of idle keep-alive connections during a drain', () => {
  it.skipIf(fdLimitTooLow)(
    `closes ${IDLE_CONNECTIONS} idle connections cleanly, fails no request made meanwhile, and the old worker exits well before terminateTimeout, releasing them${fdLimitTooLow ? ` (skipped: the hard limit on open files, ulimit -Hn, is below ${FD_LIMIT})` : ''}`,
    async () => {
      const terminateTimeout = 60_000;
      const app = new TestApp({ terminateTimeout });
      const clientPath = join(app.dir, 'idle-client.mjs');
      writeFileSync(clientPath, IDLE_CLIENT);
      const master = new MasterProcess(app.path, {}, [], { command: '/bin/sh', args: RAISED_LIMIT });
      const port = await master.port();
      const ready = await master.waitForLog('worker ready');
      const oldWorker = Number(ready.workerPid);

      client = spawn('/bin/sh', [...RAISED_LIMIT, process.execPath, clientPath, String(port), String(IDLE_CONNECTIONS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const opened = await clientReport(client, 'opened', 30_000);
      expect(opened).toMatchObject({ opened: IDLE_CONNECTIONS, errors: {} });
      expect(openFds(oldWorker)).toBeGreaterThanOrEqual(IDLE_CONNECTIONS);
      const masterFdsBefore = openFds(master.pid);

      const keepAlive = startLoad({ port }, { connections: 8, keepAlive: true });
      const fresh = startLoad({ port }, { connections: 4, keepAlive: false });
      await Promise.all([keepAlive.flowing(), fresh.flowing()]);
      const closedReport = clientReport(client, 'closed', 30_000);
      master.signal('SIGUSR2');
      await master.waitForLog('restart done');
      const newWorker = Number(master.find('worker ready')[1]!.workerPid);
      const drained = await master.waitForLog('drain done', { where: (line) => line.workerPid === oldWorker, timeoutMs: 30_000 });
      const exited = await master.waitForLog('worker exited', { where: (line) => line.workerPid === oldWorker });
      expect(exited).toMatchObject({ level: 30, code: 0 });
      expect(master.find('drain forced')).toHaveLength(0);
      // Well before the deadline: the idle sockets are closed once they sat idle, not waited on.
      expect(Number(drained.durationMs)).toBeLessThan(terminateTimeout / 2);

      // Every idle connection was closed by the server with a FIN, none reset.
      expect(await closedReport).toEqual({ closed: IDLE_CONNECTIONS, ended: IDLE_CONNECTIONS, errors: {} });
      await Promise.all([keepAlive.flowing(), fresh.flowing()]);
      const results = [await keepAlive.stop(), await fresh.stop()];
      for (const result of results) expect(result.errors).toEqual({});

      // Released: the old worker is gone with its descriptors; neither the master nor the new worker took them over.
      await eventually(() => !isAlive(oldWorker), 'the old worker gone');
      expect(openFds(master.pid)).toBeLessThanOrEqual(masterFdsBefore + 2);
      expect(openFds(newWorker)).toBeLessThan(100);
    },
  );
});
