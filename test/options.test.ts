import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from './helpers/app.js';
import { get } from './helpers/load.js';
import { cleanupAll, PINO_URL, startMaster } from './helpers/processes.js';

afterEach(cleanupAll);

const LIFECYCLE = [
  'bound',
  'master started',
  'worker started',
  'worker ready',
  'restart begun',
  'restart done',
  'drain begun',
  'drain done',
  'worker exited',
  'generation drained',
  'shutdown begun',
  'shutdown done',
];

describe('logs and options', () => {
  it('logs every lifecycle event at info or above, with pid, and generation, buildId and workerPid where a worker is concerned', async () => {
    const app = new TestApp();
    const master = startMaster(app.path);
    await master.waitForLog('worker ready');
    master.signal('SIGUSR2');
    await master.waitForLog('generation drained');
    master.signal('SIGTERM');
    await master.waitForExit();
    for (const msg of LIFECYCLE) {
      const lines = master.find(msg);
      expect(lines.length, `a "${msg}" line`).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line.level, msg).toBeGreaterThanOrEqual(30);
        expect(line.pid, msg).toBeTypeOf('number');
      }
    }
    for (const msg of ['worker started', 'worker ready', 'worker exited']) {
      for (const line of master.find(msg)) expect(line, msg).toMatchObject({ workerPid: expect.any(Number), generation: expect.any(Number), buildId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    }
    for (const msg of ['restart begun', 'restart done', 'drain begun', 'drain done']) {
      for (const line of master.find(msg)) expect(line, msg).toMatchObject({ generation: expect.any(Number), buildId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    }
    expect(master.find('spawning worker')).toHaveLength(0);
  });

  it('uses the logger it is given, in the master and in workers', async () => {
    const app = new TestApp({
      imports: `import { pino } from ${JSON.stringify(PINO_URL)};`,
      extraOptions: "logger: pino({ base: { service: 'custom-logger' } }, pino.destination({ fd: 1, sync: true })),",
    });
    const master = startMaster(app.path);
    const ready = await master.waitForLog('worker ready');
    expect(ready.service).toBe('custom-logger');
    master.signal('SIGTERM');
    await master.waitForExit();
    const drain = master.find('drain done');
    expect(drain.length).toBeGreaterThan(0);
    expect(drain.every((line) => line.service === 'custom-logger' && line.pid !== master.pid)).toBe(true);
  });

  it("hands a worker's own lines to the master to write, errors intact, so a worker never loads pino", async () => {
    const app = new TestApp({
      imports: "import { createRequire } from 'node:module';",
      prelude: `
        if (state.generation === 2) throw new Error('boom in generation 2');
        state.gracefulShutdown.addEventListener('abort', () => {
          const loaded = Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/pino/'));
          console.log(JSON.stringify({ msg: 'test: pino loaded at drain', loaded }));
        });`,
    });
    const master = startMaster(app.path);
    const ready = await master.waitForLog('worker ready');
    master.signal('SIGUSR2');
    const failed = await master.waitForLog('program failed to start');
    expect(failed).toMatchObject({ role: 'worker', pid: master.pid, generation: 2, workerPid: expect.any(Number), level: 50 });
    expect(failed.workerPid).not.toBe(ready.workerPid);
    expect(failed.err).toMatchObject({ type: 'Error', message: 'boom in generation 2', stack: expect.stringContaining('boom in generation 2') });
    await master.waitForLog('restart abandoned');

    master.signal('SIGTERM');
    await master.waitForExit();
    expect((await master.waitForLog('test: pino loaded at drain')).loaded).toBe(false);
    const drain = master.find('drain done', (line) => line.workerPid === ready.workerPid);
    expect(drain).toHaveLength(1);
    expect(drain[0]).toMatchObject({ role: 'worker', pid: master.pid, generation: 1, buildId: ready.buildId });
  });

  it('logs at debug level with debug: true', async () => {
    const app = new TestApp({ extraOptions: 'debug: true,' });
    const master = startMaster(app.path);
    await master.waitForLog('worker ready');
    const spawning = master.find('spawning worker');
    expect(spawning).toHaveLength(1);
    expect(spawning[0]).toMatchObject({ level: 20, generation: 1, args: [app.path], listenFds: 1 });
  });

  it('turns the restart signal into a graceful stop with noRestart', async () => {
    const app = new TestApp({ extraOptions: 'noRestart: true,' });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    expect((await get({ port })).status).toBe(200);
    master.signal('SIGUSR2');
    expect(await master.waitForExit()).toEqual({ code: 0, signal: null });
    expect(master.find('restart begun')).toHaveLength(0);
    expect(master.find('shutdown done')[0]?.signal).toBe('SIGUSR2');
  });

  it('restarts on a custom restartSignal and forwards SIGUSR2 to workers instead', async () => {
    const app = new TestApp({
      extraOptions: "restartSignal: 'SIGHUP',",
      prelude: "process.on('SIGUSR2', () => console.log(JSON.stringify({ msg: 'test: worker got SIGUSR2' })));",
    });
    const master = startMaster(app.path);
    await master.waitForLog('worker ready');
    master.signal('SIGUSR2');
    await master.waitForLog('test: worker got SIGUSR2');
    master.signal('SIGHUP');
    expect((await master.waitForLog('restart done')).generation).toBe(2);
  });
});
