import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp, type Startup } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { cleanupAll, eventually, startMaster, type MasterProcess } from './helpers/processes.js';

afterEach(cleanupAll);

/**
 * The master's child processes that it started as workers, live now. Its other children are warm
 * spares (one per worker slot at most), which become workers only at a restart.
 */
function childPids(master: MasterProcess, workers = 2): number[] {
  let children: number[];
  try {
    children = execFileSync('pgrep', ['-P', String(master.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    children = [];
  }
  const started = new Set(master.find('worker started').map((line) => Number(line.workerPid)));
  const live = children.filter((pid) => started.has(pid));
  expect(children.length - live.length, 'children that are neither workers nor spares').toBeLessThanOrEqual(workers);
  return live;
}

async function startServing(app: TestApp, env: NodeJS.ProcessEnv = {}) {
  const master = startMaster(app.path, env);
  const port = await master.port();
  await master.waitForLog('worker ready');
  return { master, port };
}

describe('restart with overlap', () => {
  it('runs workers: 2 on the same socket, and both accept connections', async () => {
    const app = new TestApp({ workers: 2 });
    const { master, port } = await startServing(app);
    await master.waitForLog('worker ready', { count: 2 });
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(String((await get({ port })).headers['x-pid']));
    expect(seen.size).toBe(2);
    expect(childPids(master)).toHaveLength(2);

    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    await master.waitForLog('generation drained');
    expect(childPids(master)).toHaveLength(2);
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });

  it("logs 'restart done' only once the old workers have closed their listeners: from then on only the new code accepts", async () => {
    const app = new TestApp({ workers: 2 });
    const { master, port } = await startServing(app);
    await master.waitForLog('worker ready', { count: 2 });
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    // Each old worker logs 'drain begun' as it closes its listeners, then says so to the master,
    // over the same channel: the master writes both lines before 'restart done'.
    const order = master.logs.map((line) => `${line.msg}/${line.role}/${line.generation}`);
    const done = order.indexOf('restart done/master/2');
    const oldDrains = order.flatMap((entry, index) => (entry === 'drain begun/worker/1' ? [index] : []));
    expect(oldDrains).toHaveLength(2);
    for (const index of oldDrains) expect(index).toBeLessThan(done);
    const generations = new Set<string>();
    for (let i = 0; i < 20; i++) generations.add(String((await get({ port })).headers['x-generation']));
    expect([...generations]).toEqual(['2']);
  });

  const badStarts: Array<[Startup, RegExp]> = [
    ['throw', /program threw: boom at start/],
    ['exit', /exited with code 3 before it was ready/],
    ['never-ready', /not ready within readyTimeout \(1500 ms\)/],
  ];
  for (const [startup, reason] of badStarts) {
    it(`keeps the old generation serving when the new one ${startup === 'never-ready' ? 'never gets ready' : `${startup}s at start`}, and a later good build still starts`, async () => {
      const app = new TestApp({ readyTimeout: 1500 });
      const { master, port } = await startServing(app);
      const load = startLoad({ port }, { connections: 8, keepAlive: startup !== 'exit' });
      await load.flowing();

      app.update({ reply: 'broken', startup, readyTimeout: 1500 });
      master.signal('SIGUSR2');
      const abandoned = await master.waitForLog('restart abandoned');
      expect(String(abandoned.reason)).toMatch(reason);
      expect(abandoned.level).toBeGreaterThanOrEqual(50);
      await load.flowing();

      app.update({ reply: 'fixed', readyTimeout: 1500 });
      master.signal('SIGUSR2');
      const done = await master.waitForLog('restart done');
      expect(done.generation).toBe(3);
      await load.flowing();
      const result = await load.stop();
      expect(result.errors).toEqual({});
      expect(result.generations['2']).toBeUndefined();
      expect((await get({ port })).body).toBe('fixed');
      expect(childPids(master, 1)).toHaveLength(1);
    });
  }

  it('coalesces a storm of 20 SIGUSR2 in one second into at most one more restart, with no failed request', async () => {
    const app = new TestApp({ workers: 2 });
    const { master, port } = await startServing(app);
    await master.waitForLog('worker ready', { count: 2 });
    const load = startLoad({ port }, { connections: 10, keepAlive: true });
    await load.flowing();
    for (let i = 0; i < 20; i++) {
      master.signal('SIGUSR2');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const lastSignalAt = Date.now();
    await master.waitForLog('restart done');
    const allDrained = () => {
      const begun = master.find('restart begun').length;
      return master.find('restart done').length === begun && master.find('generation drained').length === begun;
    };
    await eventually(allDrained, 'every restart done and every old generation drained');
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect(master.find('restart abandoned')).toHaveLength(0);

    const lifecycle = master.logs.filter((line) => line.msg === 'restart begun' || line.msg === 'restart done').map((line) => line.msg);
    const begun = lifecycle.filter((msg) => msg === 'restart begun').length;
    expect(begun).toBeGreaterThanOrEqual(2);
    expect(begun).toBeLessThan(20);
    // Never two at once: begun and done alternate.
    expect(lifecycle).toEqual(Array.from({ length: begun }, () => ['restart begun', 'restart done']).flat());
    // Signals during a restart become at most one more restart after it.
    expect(master.find('restart begun', (line) => Number(line.time) > lastSignalAt).length).toBeLessThanOrEqual(1);
    expect(childPids(master)).toHaveLength(2);
  });

  for (const keepAlive of [true, false]) {
    it(`drains with no failed request for clients ${keepAlive ? 'on keep-alive connections' : 'opening a connection per request'} across five restarts`, async () => {
      const app = new TestApp({ workers: 1 });
      const { master, port } = await startServing(app);
      const load = startLoad({ port }, { connections: 20, keepAlive });
      await load.flowing();
      for (let i = 1; i <= 5; i++) {
        master.signal('SIGUSR2');
        await master.waitForLog('restart done', { count: i });
        await load.flowing();
      }
      await eventually(() => master.find('generation drained').length === 5, 'five old generations drained');
      const result = await load.stop();
      expect(result.errors).toEqual({});
      expect(Object.keys(result.generations).length).toBeGreaterThanOrEqual(5);
      const drainDone = master.find('drain done');
      expect(drainDone).toHaveLength(5);
    });
  }

  it('caps the generations still draining: past maxDrainingGenerations the oldest is killed, and the log says so', async () => {
    const app = new TestApp({ extraOptions: 'maxDrainingGenerations: 1,', terminateTimeout: 60_000 });
    const { master, port } = await startServing(app);
    const pinInCurrentGeneration = async () => {
      let inWorker!: (generation: string) => void;
      const arrived = new Promise<string>((resolve) => (inWorker = resolve));
      const reply = get({ port }, '/?delay=30000', undefined, 40_000, (headers) => inWorker(String(headers['x-generation']))).catch(
        (error: NodeJS.ErrnoException) => error,
      );
      return { generation: await arrived, reply };
    };

    const first = await pinInCurrentGeneration();
    expect(first.generation).toBe('1');
    master.signal('SIGUSR2');
    expect((await master.waitForLog('restart done')).draining).toBe(1);

    const second = await pinInCurrentGeneration();
    expect(second.generation).toBe('2');
    master.signal('SIGUSR2');
    const forced = await master.waitForLog('drain forced: too many generations draining');
    expect(forced).toMatchObject({ generation: 1, maxDrainingGenerations: 1, draining: 1 });
    expect((await master.waitForLog('restart done', { count: 2 })).draining).toBe(1);
    // Generation 1 was killed with its long request; generation 2 still drains its own.
    expect(await first.reply).toBeInstanceOf(Error);
    expect(master.find('generation drained', (line) => line.generation === 2)).toHaveLength(0);
  });

  it('restarts when a worker calls restart()', async () => {
    const app = new TestApp({ prelude: 'if (state.generation === 1) setTimeout(() => restart(), 100);' });
    const { master, port } = await startServing(app);
    const done = await master.waitForLog('restart done');
    expect(done.generation).toBe(2);
    expect(String(master.find('restart begun')[0]?.reason)).toMatch(/requested by worker \d+/);
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });
});
