import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from './helpers/app.js';
import { get } from './helpers/load.js';
import { cleanupAll, startMaster } from './helpers/processes.js';

afterEach(cleanupAll);

describe('the seed scenario', () => {
  it('serves new code after SIGUSR2 while a slow request finishes on the old code, and the master keeps its pid', async () => {
    const app = new TestApp({ reply: 'Hello World' });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    expect((await get({ port })).body).toBe('Hello World');

    let inOldWorker!: () => void;
    const slowStarted = new Promise<void>((resolve) => (inOldWorker = resolve));
    const slow = get({ port }, '/?delay=3000', undefined, 15_000, () => inOldWorker());
    await slowStarted;
    app.update({ reply: 'Hello Harry' });
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');

    const fresh = await get({ port });
    expect(fresh.body).toBe('Hello Harry');
    expect(fresh.headers['x-generation']).toBe('2');

    const old = await slow;
    expect(old.body).toBe('Hello World');
    expect(old.headers['x-generation']).toBe('1');

    await master.waitForLog('generation drained');
    expect(master.child.exitCode).toBeNull();
    const masterLines = master.logs.filter((line) => line.role === 'master');
    expect(masterLines.length).toBeGreaterThan(5);
    expect(new Set(masterLines.map((line) => line.pid))).toEqual(new Set([master.pid]));
  });
});
