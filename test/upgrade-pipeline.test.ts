import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { controlledFetcherSource, FetcherControl } from './helpers/controlled-fetcher.js';
import { get, startLoad } from './helpers/load.js';
import { startWatching, upgradeEnded } from './helpers/upgrades.js';
import { cleanupAll } from './helpers/processes.js';

afterEach(cleanupAll);

function controlledApp(options: AppOptions = {}) {
  const app = new TestApp();
  const controlPath = join(app.dir, 'control.json');
  const control = new FetcherControl(controlPath);
  const withFetcher = (more: AppOptions): AppOptions => ({
    readyTimeout: 3000,
    ...options,
    ...more,
    top: controlledFetcherSource(controlPath),
    fetcher: 'globalThis.controlledFetcher',
    extraOptions: `fetchTimeout: 500, ${options.extraOptions ?? ''}`,
  });
  app.update(withFetcher({}));
  let n = 0;
  return {
    app,
    /** Writes a build file and tells the fetcher to hand it over (with `sha256`, the right one by default). */
    offer(build: AppOptions | string, sha256?: string) {
      n += 1;
      const buildPath = join(app.dir, `build-${n}.mjs`);
      writeFileSync(buildPath, typeof build === 'string' ? build : appSource(withFetcher(build)));
      control.offer(buildPath, { sha256 });
      return buildPath;
    },
    misbehave: (mode: 'fail' | 'hang') => control.misbehave(mode),
  };
}



describe('upgrade pipeline with a hand-written fetcher', () => {
  it('rejects a build whose SHA-256 is not the one its source published, before running it', async () => {
    const { app, offer } = controlledApp();
    const { master, port } = await startWatching(app);
    const installedBefore = readFileSync(app.path, 'utf8');
    const load = startLoad({ port }, { connections: 8 });
    await load.flowing();

    offer({ reply: 'tampered' }, 'ab'.repeat(32));
    const rejected = await upgradeEnded(master);
    expect(rejected.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(rejected.reason)).toMatch(/checksum mismatch: the source says SHA-256 (ab)+, the build downloaded has [0-9a-f]{64}/);
    expect(master.find('upgrade: sanity check passed')).toHaveLength(0);
    expect(readFileSync(app.path, 'utf8')).toBe(installedBefore);
    // The bytes may have been damaged on the way: the fetcher is told to download them again.
    expect(master.find('controlled fetcher: forget').map((line) => line.forgets)).toEqual([1]);

    offer({ reply: 'Hello checked build' });
    expect((await upgradeEnded(master, 2)).msg).toBe('upgrade done');
    await load.flowing();
    expect((await load.stop()).errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello checked build');
    expect(master.find('controlled fetcher: forget')).toHaveLength(1);
  });

  for (const mode of ['fail', 'hang'] as const) {
    it(`logs a source that ${mode === 'fail' ? 'answers with an error' : 'hangs'} at warn, retries with backoff, keeps serving, and installs once it recovers`, async () => {
      const { app, offer, misbehave } = controlledApp();
      const { master, port } = await startWatching(app);
      const load = startLoad({ port }, { connections: 8 });
      await load.flowing();

      misbehave(mode);
      const first = await master.waitForLog('fetch failed: will retry', { count: 1 });
      const second = await master.waitForLog('fetch failed: will retry', { count: 2 });
      const third = await master.waitForLog('fetch failed: will retry', { count: 3 });
      expect(first.level).toBe(40);
      expect(String(first.reason)).toMatch(mode === 'fail' ? /answered 500/ : /did not answer within fetchTimeout \(500 ms\)/);
      expect([first, second, third].map((line) => line.consecutiveFailures)).toEqual([1, 2, 3]);
      // Backoff: the gap before the third failure is longer than the one before the second.
      expect(Number(third.time) - Number(second.time)).toBeGreaterThan(Number(second.time) - Number(first.time));
      await load.flowing();

      offer({ reply: 'Hello after recovery' });
      expect((await upgradeEnded(master)).msg).toBe('upgrade done');
      expect(master.find('source status', (line) => line.result === 'new build')).toHaveLength(1);
      await load.flowing();
      expect((await load.stop()).errors).toEqual({});
      expect((await get({ port })).body).toBe('Hello after recovery');
    });
  }

  it("remembers the installed build's version across a restart of the master, and tells the fetcher", async () => {
    const { app, offer } = controlledApp();
    const first = await startWatching(app);
    expect(first.master.find('watching for new builds')[0]?.runningVersion).toBeUndefined();
    offer({ reply: 'Hello v1' });
    const done = await upgradeEnded(first.master);
    expect(done).toMatchObject({ msg: 'upgrade done', version: 'v1' });
    first.master.signal('SIGTERM');
    await first.master.waitForExit();

    const second = await startWatching(app);
    expect(second.master.find('watching for new builds')[0]?.runningVersion).toBe('v1');
    expect((await get({ port: second.port })).body).toBe('Hello v1');
  });

  it('runs a native build (a program of its own, told apart by content) directly', async () => {
    const { app, offer } = controlledApp();
    const { master, port } = await startWatching(app);
    // A program that is not a node script: a shell script that starts an overseer program.
    const inner = join(app.dir, 'inner.mjs');
    writeFileSync(inner, appSource({ reply: 'Hello from a native build', readyTimeout: 3000 }));
    const buildPath = offer(`#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(inner)} "$@"\n`);
    chmodSync(buildPath, 0o644);
    const done = await upgradeEnded(master);
    expect(done.msg).toBe('upgrade done');
    expect(master.find('upgrade: sanity check passed')[0]?.kind).toBe('native');
    expect((await get({ port })).body).toBe('Hello from a native build');
  });
});
