import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { cleanupAll, eventually, isAlive, startMaster } from './helpers/processes.js';

afterEach(cleanupAll);

describe('supervision', () => {
  it('replaces a worker killed with SIGKILL under load without refusing a connection', async () => {
    const app = new TestApp();
    const master = startMaster(app.path);
    const port = await master.port();
    const first = await master.waitForLog('worker ready');
    const load = startLoad({ port }, { connections: 10, keepAlive: false });
    await load.flowing();

    process.kill(Number(first.workerPid), 'SIGKILL');
    const crash = await master.waitForLog('worker exited unexpectedly');
    expect(crash.signal).toBe('SIGKILL');
    expect(crash.delayMs).toBe(0);
    const replacement = await master.waitForLog('worker ready', { count: 2 });
    expect(replacement.workerPid).not.toBe(first.workerPid);
    await load.flowing(50);
    const result = await load.stop();
    // Requests inside the killed worker die with it; a connection made meanwhile waits in the kernel's queue.
    expect(result.errors.ECONNREFUSED).toBeUndefined();
    expect(result.ok).toBeGreaterThan(50);
  });

  it('backs off exponentially when workers keep crashing at start', async () => {
    const app = new TestApp({ startup: 'exit' });
    const master = startMaster(app.path);
    await master.waitForLog('worker exited unexpectedly', { count: 5 });
    const delays = master.find('worker exited unexpectedly').slice(0, 5).map((line) => line.delayMs);
    expect(delays).toEqual([0, 150, 225, 338, 506]);
    const crashes = master.find('worker exited unexpectedly').map((line) => line.consecutiveCrashes);
    expect(crashes.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
  });

  it('drains on SIGTERM: the request in flight finishes, the master exits 0 and removes its unix socket', async () => {
    const app = new TestApp();
    const socketPath = join(app.dir, 'app.sock');
    app.update({ addresses: [`unix:${socketPath}`] });
    const master = startMaster(app.path);
    await master.waitForLog('worker ready');
    expect(existsSync(socketPath)).toBe(true);

    let inWorker!: () => void;
    const started = new Promise<void>((resolve) => (inWorker = resolve));
    const slow = get({ socketPath }, '/?delay=1500', undefined, 15_000, () => inWorker());
    await started;
    master.signal('SIGTERM');
    const reply = await slow;
    expect(reply.body).toBe('Hello World');
    const exit = await master.waitForExit();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(existsSync(socketPath)).toBe(false);
    const workerPid = Number(master.find('worker ready')[0]?.workerPid);
    expect(isAlive(workerPid)).toBe(false);
    expect(master.find('shutdown done')).toHaveLength(1);
  });

  it('exits at once on a second SIGINT, even with a request still in flight', async () => {
    const app = new TestApp();
    const master = startMaster(app.path);
    const port = await master.port();
    const ready = await master.waitForLog('worker ready');
    let inWorker!: () => void;
    const started = new Promise<void>((resolve) => (inWorker = resolve));
    const slow = get({ port }, '/?delay=20000', undefined, 30_000, () => inWorker()).catch((error: Error) => error);
    await started;
    master.signal('SIGINT');
    await master.waitForLog('shutdown begun');
    master.signal('SIGINT');
    const exit = await master.waitForExit(5_000);
    expect(exit.code).toBe(130);
    await eventually(() => !isAlive(Number(ready.workerPid)), 'worker killed with its master');
    expect(await slow).toBeInstanceOf(Error);
  });

  it('takes its workers down within 2 s when the master is SIGKILLed', async () => {
    const app = new TestApp({ workers: 2 });
    const master = startMaster(app.path);
    await master.waitForLog('worker ready', { count: 2 });
    const workers = master.find('worker ready').map((line) => Number(line.workerPid));
    process.kill(master.pid, 'SIGKILL');
    await master.exited;
    await eventually(() => workers.every((pid) => !isAlive(pid)), 'every worker gone after its master was SIGKILLed', 2_000);
  });

  it('forwards SIGHUP to the workers', async () => {
    const app = new TestApp({ prelude: "process.on('SIGHUP', () => console.log(JSON.stringify({ msg: 'test: worker got SIGHUP', worker: process.pid })));" });
    const master = startMaster(app.path);
    const ready = await master.waitForLog('worker ready');
    master.signal('SIGHUP');
    const got = await master.waitForLog('test: worker got SIGHUP');
    expect(got.worker).toBe(ready.workerPid);
    expect(master.child.exitCode).toBeNull();
  });
});
