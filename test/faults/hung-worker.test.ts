import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from '../helpers/app.js';
import { get, startLoad } from '../helpers/load.js';
import { cleanupAll, eventually, isAlive, startMaster } from '../helpers/processes.js';

afterEach(cleanupAll);

/** `/hang` blocks the worker's event loop for ten minutes: no timer, no I/O, no heartbeat. */
const HANG_ON_REQUEST = `if (url.pathname === '/hang') { const until = Date.now() + 600_000; while (Date.now() < until) {} }`;

describe('fault: a worker whose event loop is blocked (hung)', () => {
  it('is caught by the liveness check, replaced in its slot, then killed, while the other worker keeps serving', async () => {
    const app = new TestApp({ workers: 2, extraOptions: 'livenessInterval: 200, livenessTimeout: 1500,', onRequest: HANG_ON_REQUEST });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready', { count: 2 });
    const load = startLoad({ port }, { connections: 6, keepAlive: false });
    await load.flowing();

    const hangRequest = get({ port }, '/hang', undefined, 30_000).catch((error: NodeJS.ErrnoException) => error);
    const hung = await master.waitForLog('worker hung: no heartbeat for');
    expect(hung.level).toBe(50);
    expect(Number(hung.silentMs)).toBeGreaterThanOrEqual(1500);
    expect(hung.msg).toBe(`worker hung: no heartbeat for ${hung.silentMs} ms`);
    const hungPid = Number(hung.workerPid);
    // The other worker served all along: the load keeps succeeding while the hung one is replaced.
    await load.flowing(50);

    const killed = await master.waitForLog('hung worker killed: its replacement is ready');
    expect(killed.workerPid).toBe(hungPid);
    const replacementPid = Number(killed.replacementPid);
    const replacementReady = master.find('worker ready', (line) => line.workerPid === replacementPid);
    expect(replacementReady).toHaveLength(1);
    expect(master.find('worker started', (line) => line.workerPid === replacementPid)[0]?.generation).toBe(1);
    const exited = await master.waitForLog('worker exited', { where: (line) => line.workerPid === hungPid });
    expect(exited.signal).toBe('SIGKILL');
    await eventually(() => !isAlive(hungPid), 'the hung worker gone');
    // A kill the master chose is not a crash: no second replacement, no backoff.
    expect(master.find('worker exited unexpectedly')).toHaveLength(0);
    // The request that hung the worker was inside it when it was killed: it dies with it (unavoidable).
    expect(await hangRequest).toBeInstanceOf(Error);

    await load.flowing(50);
    const result = await load.stop();
    // Nothing was refused at any point. The only requests that can fail are those whose
    // connection the hung worker had accepted before it blocked: at most one per client.
    expect(result.errors.ECONNREFUSED).toBeUndefined();
    expect(result.failed).toBeLessThanOrEqual(6);
    for (const code of Object.keys(result.errors)) expect(['ECONNRESET', 'socket hang up']).toContain(code);

    // Both slots serve again: the replacement and the worker that never hung.
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(Number((await get({ port })).headers['x-pid']));
    expect(seen.has(replacementPid)).toBe(true);
    expect(seen.has(hungPid)).toBe(false);
    expect(master.find('worker hung')).toHaveLength(1);
  });

  it('never counts a worker hung when its loop is blocked for many heartbeat intervals but less than livenessTimeout', async () => {
    const app = new TestApp({
      extraOptions: 'livenessInterval: 100, livenessTimeout: 2000,',
      onRequest: `if (url.pathname === '/block') { const until = Date.now() + 1200; while (Date.now() < until) {} }`,
    });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    for (let i = 0; i < 3; i++) expect((await get({ port }, '/block')).status).toBe(200);
    // A restart is logged after any verdict on the blocks above would have been.
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    expect(master.find('worker hung')).toHaveLength(0);
    expect(master.find('worker started')).toHaveLength(2);
  });
});
