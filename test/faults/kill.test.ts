import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from '../helpers/app.js';
import { get, startLoad } from '../helpers/load.js';
import { cleanupAll, eventually, isAlive, startMaster } from '../helpers/processes.js';

afterEach(cleanupAll);

/** A port the OS says is free now: for the one test that must start a second master on the same address. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('fault: SIGKILL', () => {
  it('of a worker: a replacement takes its slot, no connection is refused, and only requests inside the killed worker fail', async () => {
    const app = new TestApp({ workers: 2 });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready', { count: 2 });
    const [victim, survivor] = master.find('worker ready').map((line) => Number(line.workerPid));
    const keepAlive = startLoad({ port }, { connections: 6, keepAlive: true });
    const fresh = startLoad({ port }, { connections: 4, keepAlive: false });
    await Promise.all([keepAlive.flowing(), fresh.flowing()]);

    process.kill(victim!, 'SIGKILL');
    const crash = await master.waitForLog('worker exited unexpectedly');
    expect(crash).toMatchObject({ workerPid: victim, signal: 'SIGKILL', delayMs: 0 });
    const replacement = await master.waitForLog('worker ready', { count: 3 });
    expect(master.find('worker started', (line) => line.workerPid === replacement.workerPid)).toHaveLength(1);
    await Promise.all([keepAlive.flowing(50), fresh.flowing(50)]);
    const results = [await keepAlive.stop(), await fresh.stop()];

    for (const result of results) {
      // The listening socket never closed: a connection made while the slot was empty waited in
      // the kernel's queue for the survivor or the replacement.
      expect(result.errors.ECONNREFUSED).toBeUndefined();
      for (const code of Object.keys(result.errors)) expect(['ECONNRESET', 'socket hang up', 'EPIPE']).toContain(code);
    }
    // Unavoidable: a request the killed worker had accepted dies with it (SIGKILL allows no drain),
    // and a keep-alive client may reuse a socket the kernel is just resetting: at most one per client.
    expect(results[0]!.failed).toBeLessThanOrEqual(6);
    expect(results[1]!.failed).toBeLessThanOrEqual(4);
    expect(isAlive(survivor!)).toBe(true);
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add(Number((await get({ port })).headers['x-pid']));
    expect(seen).toEqual(new Set([survivor, Number(replacement.workerPid)]));
  });

  it('of the master: its workers are gone within 2 s (no orphans), and a new master on the same address serves', async () => {
    const port = await freePort();
    const app = new TestApp({ workers: 2, addresses: [`127.0.0.1:${port}`] });
    const first = startMaster(app.path);
    await first.waitForLog('worker ready', { count: 2 });
    const orphansToBe = first.find('worker ready').map((line) => Number(line.workerPid));
    const load = startLoad({ port }, { connections: 4, keepAlive: false });
    await load.flowing();

    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    await eventually(() => orphansToBe.every((pid) => !isAlive(pid)), 'every worker gone after its master was SIGKILLed', 2_000);
    // Unavoidable: from here until a new master binds, no process owns the socket, so connections
    // are refused (only a socket held by systemd, see "systemd" in the README, would queue them).

    const second = startMaster(app.path);
    expect(await second.address()).toBe(`127.0.0.1:${port}`);
    const ready = await second.waitForLog('worker ready', { count: 2 });
    await load.flowing(20);
    const failedOnceServing = load.result.failed;
    await load.flowing(200);
    const result = await load.stop();
    // Once the new master serves, nothing fails.
    expect(result.failed).toBe(failedOnceServing);
    const reply = await get({ port });
    expect(orphansToBe).not.toContain(Number(reply.headers['x-pid']));
    expect(second.find('worker ready').map((line) => line.workerPid)).toContain(ready.workerPid);
  });
});
