// The peers every benchmark compares, each started from a build file it imports at start-up, and
// each with the same operations: restart (its own way), the manager's pid (for memory), stop.
import { renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startPm2 } from './pm2.mjs';
import { killGroup, makeTempDir, removeDir, spawnNode } from './processes.mjs';
import { probe } from './probe.mjs';

const server = (name) => fileURLToPath(new URL(`../servers/${name}.mjs`, import.meta.url));

export const PEERS = [
  { key: 'bare', name: 'bare node', kind: 'bare', workers: 1 },
  { key: 'pm2-1', name: 'PM2 cluster, 1 instance', kind: 'pm2', workers: 1 },
  { key: 'pm2-2', name: 'PM2 cluster, 2 instances', kind: 'pm2', workers: 2 },
  { key: 'overseer-1', name: 'overseer, 1 worker', kind: 'overseer', workers: 1 },
  { key: 'overseer-2', name: 'overseer, 2 workers', kind: 'overseer', workers: 2 },
];

/** overseer without warm spares (`warmStart: false`): every worker boots node from scratch. Restart time only. */
export const COLD_PEERS = [
  { key: 'overseer-1-cold', name: 'overseer, 1 worker, warmStart: false', kind: 'overseer', workers: 1, warmStart: false },
  { key: 'overseer-2-cold', name: 'overseer, 2 workers, warmStart: false', kind: 'overseer', workers: 2, warmStart: false },
];

/** The build a server imports at start: `BUILD` names it; a broken one throws. */
export class BuildFile {
  constructor(dir) {
    this.path = join(dir, 'build.mjs');
    this.write('v1');
  }

  write(id) {
    this.current = id;
    this.#replace(`export const BUILD = ${JSON.stringify(id)};\n`);
  }

  writeBroken() {
    this.#replace("throw new Error('this build throws at start');\n");
  }

  #replace(source) {
    writeFileSync(`${this.path}.tmp`, source);
    renameSync(`${this.path}.tmp`, this.path);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probeServer = net.createServer().once('error', reject);
    probeServer.listen(0, '127.0.0.1', () => {
      const { port } = probeServer.address();
      probeServer.close(() => resolve(port));
    });
  });
}

async function waitUntilServing(port, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await probe(port)).status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing served on port ${port} within ${timeoutMs} ms`);
}

/** A bare `node bare.mjs`; resolves once it printed its port. */
export async function startBare(build, port) {
  const child = spawnNode(server('bare'), { BENCH_BUILD: build.path, ...(port ? { PORT: String(port) } : {}) });
  child.stderr.on('data', (chunk) => process.stderr.write(`[bare] ${chunk}`));
  const printed = new Promise((resolve) => createInterface({ input: child.stdout }).on('line', (line) => /^\d+$/.test(line) && resolve(Number(line))));
  const boundPort = await Promise.race([printed, child.exited.then((how) => { throw new Error(`bare node exited (${how}) before it listened`); })]);
  return { child, port: boundPort };
}

/** An overseer master; counts its restarts from its log. */
async function startOverseer(build, workers, warmStart = true) {
  const child = spawnNode(server('overseer'), { BENCH_BUILD: build.path, BENCH_WORKERS: String(workers), BENCH_WARM_START: String(warmStart) });
  const log = { done: 0, abandoned: 0, drained: 0, warnings: {}, waiters: new Set() };
  const port = new Promise((resolve, reject) => {
    child.exited.then((how) => reject(new Error(`overseer exited (${how}) before it was ready`)));
    let boundPort;
    createInterface({ input: child.stderr }).on('line', (line) => {
      let entry;
      try { entry = JSON.parse(line); } catch { return void process.stderr.write(`[overseer] ${line}\n`); }
      const msg = String(entry.msg);
      if (msg === 'bound') boundPort = Number(entry.address.split(':').pop());
      if (msg === 'worker ready' && boundPort) resolve(boundPort);
      if (msg === 'restart done') log.done++;
      if (msg.startsWith('restart abandoned')) log.abandoned++;
      if (msg === 'generation drained') log.drained++;
      if (entry.level >= 40) log.warnings[msg] = (log.warnings[msg] ?? 0) + 1;
      for (const waiter of log.waiters) waiter();
    });
  });
  child.stdout.resume();
  const waitFor = (test, what, timeoutMs = 60_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { log.waiters.delete(check); reject(new Error(`overseer: no ${what} within ${timeoutMs} ms`)); }, timeoutMs);
    const check = () => { if (test()) { clearTimeout(timer); log.waiters.delete(check); resolve(); } };
    log.waiters.add(check);
    check();
  });
  return { child, port: await port, log, waitFor };
}

/**
 * Starts `peer` serving `build`. The result has `port`, `managerPid` (overseer's master, PM2's
 * daemon; none for bare node), `restart()` (resolves when the restart is over: old code gone or
 * rolled back), `counts` ({ asked, done }) and `stop()`.
 */
export async function startPeer(peer) {
  const dir = makeTempDir(`overseer-bench-${peer.key}-`);
  const build = new BuildFile(dir);
  const counts = { asked: 0, done: 0 };
  const cleanup = () => removeDir(dir);
  try {
    if (peer.kind === 'bare') {
      let current = await startBare(build);
      const { port } = current;
      return {
        peer, build, port, counts, managerPid: undefined,
        get pid() { return current.child.pid; },
        // What a restart is without a manager (systemctl restart): stop it, start it again.
        async restart() {
          counts.asked++;
          process.kill(current.child.pid, 'SIGTERM');
          await current.child.exited;
          killGroup(current.child.pid);
          try {
            current = await startBare(build, port);
            counts.done++;
          } catch (error) {
            counts.failed = (counts.failed ?? 0) + 1;
            counts.lastError = error.message;
          }
        },
        async stop() { killGroup(current.child.pid); cleanup(); },
      };
    }
    if (peer.kind === 'overseer') {
      const master = await startOverseer(build, peer.workers, peer.warmStart);
      return {
        peer, build, port: master.port, counts, managerPid: master.child.pid, log: master.log,
        async restart() {
          counts.asked++;
          const { done, abandoned } = master.log;
          process.kill(master.child.pid, 'SIGUSR2');
          await master.waitFor(() => master.log.done > done || master.log.abandoned > abandoned, 'restart done or abandoned');
          counts.done = master.log.done;
        },
        /** Signals without waiting: the master coalesces signals that arrive during a restart. */
        signal() { counts.asked++; process.kill(master.child.pid, 'SIGUSR2'); },
        waitForDrained: (n) => master.waitFor(() => master.log.drained >= n, `${n} generations drained`),
        alive: () => master.child.exitCode === null && master.child.signalCode === null,
        async stop() { killGroup(master.child.pid); cleanup(); },
      };
    }
    const port = await freePort();
    const pm2 = await startPm2({ name: peer.key, instances: peer.workers, port, env: { BENCH_BUILD: build.path } });
    await waitUntilServing(port).catch(async (error) => { await pm2.stop(); throw error; });
    return {
      peer, build, port, counts, managerPid: pm2.godPid,
      async restart() {
        counts.asked++;
        try {
          await pm2.reload();
          counts.done++;
        } catch (error) {
          counts.failed = (counts.failed ?? 0) + 1;
          counts.lastError = error.message;
        }
      },
      async stop() { await pm2.stop(); cleanup(); },
    };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** Restarts `running` every `everyMs` until stop(); a restart still running absorbs the ticks meanwhile into one more. */
export function restartEvery(running, everyMs) {
  let stopped = false, busy, pending = false;
  const ticks = { count: 0 };
  const timer = setInterval(() => {
    ticks.count++;
    if (running.signal) return void running.signal();
    if (busy) { pending = true; return; }
    const cycle = async () => {
      do { pending = false; await running.restart(); } while (pending && !stopped);
      busy = undefined;
    };
    busy = cycle();
  }, everyMs);
  return {
    ticks,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await busy;
    },
  };
}
