import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from '../helpers/app.js';
import { get, startLoad } from '../helpers/load.js';
import { cleanupAll, eventually, isAlive, makeTempDir, startCli, startMaster, type LogLine } from '../helpers/processes.js';

afterEach(cleanupAll);

const MiB = 1024 * 1024;

/**
 * Each worker whose pid is listed in `leakFile` keeps 16 MiB more (touched, so resident) every
 * 50 ms, up to 256 MiB: a leak that only the workers the test names have, so their replacements
 * stay small.
 */
function leakWhenListed(leakFile: string): string {
  return `
    const leaked = [];
    setInterval(() => {
      let listed = false;
      try { listed = fs.readFileSync(${JSON.stringify(leakFile)}, 'utf8').split(',').includes(String(process.pid)); } catch {}
      if (listed && leaked.length < 16) leaked.push(Buffer.alloc(16 * 1024 * 1024, 1));
    }, 50).unref();
  `;
}

describe('fault: workers leaking memory past maxMemory', () => {
  it('replaces them one at a time, each old worker draining only once its replacement is ready, with no failed request', async () => {
    const app = new TestApp();
    const leakFile = join(app.dir, 'leakers');
    app.update({
      workers: 2,
      imports: "import fs from 'node:fs';",
      prelude: leakWhenListed(leakFile),
      extraOptions: "maxMemory: '160MB', memoryCheckInterval: 200,",
    });
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready', { count: 2 });
    const leakers = master.find('worker ready').map((line) => Number(line.workerPid));
    const keepAlive = startLoad({ port }, { connections: 6, keepAlive: true });
    const fresh = startLoad({ port }, { connections: 4, keepAlive: false });
    await Promise.all([keepAlive.flowing(), fresh.flowing()]);

    writeFileSync(leakFile, leakers.join(','));
    const second = await master.waitForLog('worker over maxMemory: replacing it', { count: 2, timeoutMs: 30_000 });
    const over = master.find('worker over maxMemory: replacing it');
    expect(new Set(over.map((line) => line.workerPid))).toEqual(new Set(leakers));
    for (const line of over) {
      expect(line.level).toBe(40);
      expect(line.maxMemory).toBe(160 * MiB);
      expect(Number(line.rss)).toBeGreaterThan(160 * MiB);
    }
    // Rolling: the second worker is replaced only after the first one's replacement was ready.
    await master.waitForLog('worker replaced: the old one drains', { count: 2 });
    const replaced = master.find('worker replaced: the old one drains');
    const firstReplacementReady = master.find('worker ready', (line) => line.workerPid === replaced[0]!.replacementPid)[0]!;
    expect(Number(firstReplacementReady.time)).toBeLessThanOrEqual(Number(second.time));
    expect(Number(replaced[0]!.time)).toBeLessThanOrEqual(Number(second.time));

    const exits: LogLine[] = [];
    for (const pid of leakers) exits.push(await master.waitForLog('worker exited', { where: (line) => line.workerPid === pid }));
    for (const exit of exits) expect(exit).toMatchObject({ level: 30, code: 0 });
    expect(master.find('drain forced')).toHaveLength(0);
    expect(master.find('worker exited unexpectedly')).toHaveLength(0);
    await eventually(() => leakers.every((pid) => !isAlive(pid)), 'both leaking workers gone');

    await Promise.all([keepAlive.flowing(), fresh.flowing()]);
    const results = [await keepAlive.stop(), await fresh.stop()];
    for (const result of results) expect(result.errors).toEqual({});
    // The replacements do not leak: they are in the same generation, and nothing else was replaced.
    const replacements = replaced.map((line) => Number(line.replacementPid));
    expect(replacements.every(isAlive)).toBe(true);
    expect(master.find('worker over maxMemory')).toHaveLength(2);
    expect((await get({ port })).headers['x-generation']).toBe('1');
  });

  it('keeps a worker over maxMemory serving when its replacement cannot start, and replaces it once one can', async () => {
    const app = new TestApp();
    const leakFile = join(app.dir, 'leakers');
    const options = (startup: 'serve' | 'throw') => ({
      startup,
      imports: "import fs from 'node:fs';",
      prelude: leakWhenListed(leakFile),
      extraOptions: "maxMemory: '160MB', memoryCheckInterval: 200,",
    });
    app.update(options('serve'));
    const master = startMaster(app.path);
    const port = await master.port();
    const leaker = Number((await master.waitForLog('worker ready')).workerPid);
    const load = startLoad({ port }, { connections: 6, keepAlive: true });
    await load.flowing();

    // A deploy left a build on disk that throws at start: the replacement is made from it.
    app.update(options('throw'));
    writeFileSync(leakFile, String(leaker));
    const failed = await master.waitForLog('worker replacement failed: the worker over maxMemory keeps serving');
    expect(failed).toMatchObject({ level: 50, workerPid: leaker, cause: 'memory' });
    expect(String(failed.reason)).toMatch(/program threw: boom at start/);
    await load.flowing();
    expect(isAlive(leaker)).toBe(true);
    expect(master.find('worker exited unexpectedly')).toHaveLength(0);

    app.update(options('serve'));
    const replaced = await master.waitForLog('worker replaced: the old one drains', { timeoutMs: 30_000 });
    expect(replaced.workerPid).toBe(leaker);
    await master.waitForLog('worker exited', { where: (line) => line.workerPid === leaker && line.code === 0 });
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect(Number((await get({ port })).headers['x-pid'])).toBe(replaced.replacementPid);
  });

  it('overseer run --max-memory replaces a plain command (no heartbeat: its RSS is read from /proc) gracefully', async () => {
    const dir = makeTempDir();
    const server = join(dir, 'leaky-server.mjs');
    writeFileSync(
      server,
      `import http from 'node:http';
const leaked = [];
const server = http.createServer((req, res) => {
  if (req.url === '/leak') leaked.push(Buffer.alloc(48 * 1024 * 1024, 1));
  res.setHeader('x-pid', String(process.pid));
  res.end('ok');
});
server.listen({ fd: 3 }, () => process.send?.('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`,
    );
    const master = startCli(['run', '-a', '127.0.0.1:0', '--max-memory', '100MB', '--memory-check-interval', '200', '--', process.execPath, server]);
    const port = await master.port();
    const ready = await master.waitForLog('worker ready');
    const load = startLoad({ port }, { connections: 4, keepAlive: false });
    await load.flowing();
    expect((await get({ port }, '/leak')).status).toBe(200);
    expect((await get({ port }, '/leak')).status).toBe(200);

    const over = await master.waitForLog('worker over maxMemory: replacing it');
    expect(over).toMatchObject({ workerPid: ready.workerPid, maxMemory: 100 * MiB });
    const replaced = await master.waitForLog('worker replaced: the old one drains');
    const exit = await master.waitForLog('worker exited', { where: (line) => line.workerPid === ready.workerPid });
    // It was asked with SIGTERM (--stop-signal) and drained: its own handler exits 0.
    expect(exit).toMatchObject({ level: 30, code: 0 });
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect(Number((await get({ port })).headers['x-pid'])).toBe(replaced.replacementPid);
  });
});
