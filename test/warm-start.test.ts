import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { cleanupAll, DIST_INDEX, eventually, isAlive, makeTempDir, startMaster, writeFile, type MasterProcess } from './helpers/processes.js';

afterEach(cleanupAll);

// Spares log at debug level.
const DEBUG = { OVERSEER_LOG_DEBUG: '1' };

/** What a worker knows of itself: how it was started, as node and as overseer's worker. */
const SELF_REPORT = `if (url.pathname === '/self') {
  res.end(JSON.stringify({
    pid: process.pid,
    argv: process.argv.slice(1),
    execArgv: process.execArgv,
    mainUrl: import.meta.url,
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => key.startsWith('OVERSEER_') || key.startsWith('LISTEN_'))),
    generation: state.generation,
  }));
  return;
}`;

interface SelfReport {
  pid: number;
  argv: string[];
  execArgv: string[];
  mainUrl: string;
  env: Record<string, string>;
  generation: number;
}

async function selfReport(port: number): Promise<SelfReport> {
  return JSON.parse((await get({ port }, '/self')).body) as SelfReport;
}

/** The processes the master started, as /proc lists them. */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

async function spareReady(master: MasterProcess, count = 1): Promise<number> {
  return Number((await master.waitForLog('warm spare ready', { count })).sparePid);
}

describe('warm start', () => {
  it('starts the next generation from the spare: same argv, environment and main module as a cold worker, then boots a new spare', async () => {
    const app = new TestApp({ onRequest: SELF_REPORT });
    const master = startMaster(app.path, DEBUG, ['--flag', 'value']);
    const port = await master.port();
    await master.waitForLog('worker ready');
    const cold = await selfReport(port);
    const spare = await spareReady(master);
    expect(spare).not.toBe(cold.pid);
    expect(childrenOf(master.pid).sort()).toEqual([cold.pid, spare].sort());

    master.signal('SIGUSR2');
    const started = await master.waitForLog('worker started', { count: 2 });
    expect(started.warm).toBe(true);
    expect(Number(started.workerPid)).toBe(spare);
    await master.waitForLog('restart done');
    await master.waitForLog('generation drained');
    const warm = await selfReport(port);
    expect(warm.pid).toBe(spare);
    expect(warm.generation).toBe(2);
    expect(warm.argv).toEqual(cold.argv);
    expect(warm.argv).toEqual([app.path, '--flag', 'value']);
    expect(warm.execArgv).toEqual(cold.execArgv);
    expect(warm.mainUrl).toBe(cold.mainUrl);
    expect(warm.env).toEqual({ ...cold.env, OVERSEER_GENERATION: '2' });

    const next = await spareReady(master, 2);
    expect(next).not.toBe(spare);
    expect(childrenOf(master.pid).sort()).toEqual([spare, next].sort());
  });

  it('runs a CommonJS entry as the main module (require.main === module) in a warm worker', async () => {
    const dir = makeTempDir();
    const script = join(dir, 'app.cjs');
    writeFile(
      script,
      `const http = require('node:http');
const isMain = require.main === module;
import(${JSON.stringify(DIST_INDEX)}).then(({ run }) => run({
  address: '127.0.0.1:0',
  program: (state) => state.serve(http.createServer((req, res) => res.end(JSON.stringify({ isMain, generation: state.generation, pid: process.pid })))),
}));
`,
    );
    const master = startMaster(script, DEBUG);
    const port = await master.port();
    await master.waitForLog('worker ready');
    const spare = await spareReady(master);
    master.signal('SIGUSR2');
    await master.waitForLog('generation drained');
    const reply = JSON.parse((await get({ port }, '/')).body) as { isMain: boolean; generation: number; pid: number };
    expect(reply).toEqual({ isMain: true, generation: 2, pid: spare });
  });

  it('replaces a crashed worker from the spare, under load, with no refused connection', async () => {
    const app = new TestApp();
    const master = startMaster(app.path, DEBUG);
    const port = await master.port();
    const first = await master.waitForLog('worker ready');
    const spare = await spareReady(master);
    const load = startLoad({ port }, { connections: 10, keepAlive: false });
    await load.flowing();
    process.kill(Number(first.workerPid), 'SIGKILL');
    await master.waitForLog('worker exited unexpectedly');
    const replacement = await master.waitForLog('worker ready', { count: 2 });
    expect(Number(replacement.workerPid)).toBe(spare);
    expect(master.find('worker started')[1]?.warm).toBe(true);
    await load.flowing(50);
    const result = await load.stop();
    expect(result.errors.ECONNREFUSED).toBeUndefined();
    expect(result.ok).toBeGreaterThan(50);
  });

  it('keeps the old generation serving when the build a spare runs throws, and boots a spare again after', async () => {
    const app = new TestApp({ reply: 'v1' });
    const master = startMaster(app.path, DEBUG);
    const port = await master.port();
    await master.waitForLog('worker ready');
    const spare = await spareReady(master);
    app.update({ reply: 'v2', startup: 'throw' });
    master.signal('SIGUSR2');
    const abandoned = await master.waitForLog('restart abandoned');
    expect(String(abandoned.reason)).toContain(`new worker ${spare} of generation 2`);
    expect((await get({ port }, '/')).body).toBe('v1');
    const next = await spareReady(master, 2);
    expect(next).not.toBe(spare);

    app.update({ reply: 'v3' });
    master.signal('SIGUSR2');
    await master.waitForLog('generation drained');
    expect((await get({ port }, '/')).body).toBe('v3');
    expect(master.find('worker started').at(-1)?.warm).toBe(true);
  });

  it('boots another spare when one dies while it waits', async () => {
    const app = new TestApp();
    const master = startMaster(app.path, DEBUG);
    await master.waitForLog('worker ready');
    const spare = await spareReady(master);
    process.kill(spare, 'SIGKILL');
    const exited = await master.waitForLog('warm spare exited while waiting');
    expect(exited.signal).toBe('SIGKILL');
    const next = await spareReady(master, 2);
    master.signal('SIGUSR2');
    const started = await master.waitForLog('worker started', { count: 2 });
    expect(Number(started.workerPid)).toBe(next);
  });

  it('turns itself off, logging why, when spares cannot boot: workers then start cold and restarts still work', async () => {
    const app = new TestApp({ reply: 'v1' });
    // Loaded by every node process the master starts; only the spare entry script dies of it.
    const preload = join(app.dir, 'break-spares.mjs');
    writeFile(preload, "if (process.argv[1]?.endsWith('spare.js')) process.exit(7);\n");
    const master = startMaster(app.path, { ...DEBUG, NODE_OPTIONS: `--import=${preload}` });
    const port = await master.port();
    await master.waitForLog('worker ready');
    const off = await master.waitForLog('warm start off');
    expect(off.reason).toBe('a spare exited with code 7 before it was ready');
    app.update({ reply: 'v2' });
    master.signal('SIGUSR2');
    await master.waitForLog('generation drained');
    expect((await get({ port }, '/')).body).toBe('v2');
    expect(master.find('worker started').at(-1)?.warm).toBeUndefined();
    expect(master.find('warm spare ready')).toHaveLength(0);
  });

  it('warmStart: false keeps no spare: the master runs its workers only, each started cold', async () => {
    const app = new TestApp({ extraOptions: 'warmStart: false,' });
    const master = startMaster(app.path, DEBUG);
    await master.waitForLog('worker ready');
    master.signal('SIGUSR2');
    const ready = await master.waitForLog('worker ready', { count: 2 });
    await master.waitForLog('generation drained');
    expect(childrenOf(master.pid)).toEqual([Number(ready.workerPid)]);
    expect(master.find('worker started').map((line) => line.warm)).toEqual([undefined, undefined]);
    expect(master.find('warm spare')).toHaveLength(0);
  });

  it('spares leave with the master: on SIGTERM, and on SIGKILL (they see the IPC channel close)', async () => {
    const app = new TestApp();
    const graceful = startMaster(app.path, DEBUG);
    await graceful.waitForLog('worker ready');
    const first = await spareReady(graceful);
    graceful.signal('SIGTERM');
    expect(await graceful.waitForExit()).toEqual({ code: 0, signal: null });
    await eventually(() => !isAlive(first), `spare ${first} to exit with its master`);

    const killed = startMaster(app.path, DEBUG);
    await killed.waitForLog('worker ready');
    const second = await spareReady(killed);
    killed.signal('SIGKILL');
    await killed.waitForExit();
    await eventually(() => !isAlive(second), `spare ${second} to exit once its master was killed`);
  });
});
