import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { startWatching, upgradeEnded } from './helpers/upgrades.js';
import { cleanupAll } from './helpers/processes.js';

afterEach(cleanupAll);

/** An app whose fetcher watches `build/app.mjs` in its own directory. */
function fileFetchedApp(options: AppOptions = {}, settle = 100) {
  const app = new TestApp();
  const buildPath = join(app.dir, 'next-build.mjs');
  const fetcher = `new FileFetcher({ path: ${JSON.stringify(buildPath)}, interval: 200, settle: ${settle} })`;
  const withFetcher = (more: AppOptions): AppOptions => ({ readyTimeout: 3000, ...options, ...more, fetcher });
  app.update(withFetcher({}));
  return {
    app,
    buildPath,
    /** Publishes a build the way a build tool does: write a temporary file, rename it into place. */
    publish(more: AppOptions | string) {
      const temp = `${buildPath}.tmp`;
      writeFileSync(temp, typeof more === 'string' ? more : appSource(withFetcher(more)));
      renameSync(temp, buildPath);
    },
  };
}



describe('self-upgrade from a file', () => {
  it('installs a new build and serves it with no failed request under load, keeping the previous build beside it', async () => {
    const { app, publish } = fileFetchedApp();
    const { master, port } = await startWatching(app);
    const installedBefore = readFileSync(app.path, 'utf8');
    const load = startLoad({ port }, { connections: 10, keepAlive: true });
    await load.flowing();

    publish({ reply: 'Hello v2' });
    const done = await upgradeEnded(master);
    expect(done.msg).toBe('upgrade done');
    expect(done.outcome).toBe('installed');
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello v2');
    expect(readFileSync(app.path, 'utf8')).toContain('Hello v2');
    expect(readFileSync(join(app.dir, 'app.prev.mjs'), 'utf8')).toBe(installedBefore);
    for (const step of ['upgrade: new build found, downloading', 'upgrade: build downloaded', 'upgrade: sanity check passed', 'upgrade: build installed']) {
      expect(master.find(step), step).toHaveLength(1);
    }
    expect(master.find('restart done')[0]?.buildId).toBe(done.buildId);
    expect(existsSync(join(app.dir, 'app.next.mjs'))).toBe(false);
  });

  it('skips a build identical to the running one', async () => {
    const { app, buildPath } = fileFetchedApp();
    const { master } = await startWatching(app);
    writeFileSync(buildPath, readFileSync(app.path));
    const skipped = await upgradeEnded(master);
    expect(skipped).toMatchObject({ msg: 'upgrade skipped', reason: 'this build is already running' });
    expect(master.find('restart begun')).toHaveLength(0);
  });

  const badBuilds: Array<[string, AppOptions | string, RegExp, string]> = [
    ['a syntax error', 'import http from "node:http";\nthis is not javascript(\n', /sanity check failed: the build exited with code 1 before calling run\(\).*SyntaxError/s, 'upgrade rejected'],
    ['a throw at start', { reply: 'broken', startup: 'throw' }, /program threw: boom at start/, 'upgrade rolled back'],
    ['an exit at start', { reply: 'broken', startup: 'exit' }, /exited with code 3 before it was ready/, 'upgrade rolled back'],
    ['never becoming ready', { reply: 'broken', startup: 'never-ready' }, /not ready within readyTimeout/, 'upgrade rolled back'],
    ['a program that is not an overseer program', "console.log('I am some other script');\n", /not an overseer program: it exited without calling run\(\).*I am some other script/s, 'upgrade rejected'],
  ];
  for (const [what, build, reason, verdict] of badBuilds) {
    it(`keeps serving the running build when the new one has ${what}, and a later good build still installs`, async () => {
      const { app, publish } = fileFetchedApp();
      const { master, port } = await startWatching(app);
      const installedBefore = readFileSync(app.path, 'utf8');
      const load = startLoad({ port }, { connections: 8, keepAlive: true });
      await load.flowing();

      publish(build);
      const failed = await upgradeEnded(master);
      expect(failed.msg).toMatch(new RegExp(`^${verdict}`));
      expect(String(failed.reason)).toMatch(reason);
      expect(failed.level).toBeGreaterThanOrEqual(50);
      expect(readFileSync(app.path, 'utf8')).toBe(installedBefore);
      await load.flowing();

      publish({ reply: 'Hello good build' });
      const done = await upgradeEnded(master, 2);
      expect(done.msg).toBe('upgrade done');
      await load.flowing();
      const result = await load.stop();
      expect(result.errors).toEqual({});
      expect((await get({ port })).body).toBe('Hello good build');
    });
  }

  it('never takes a file that is still being written', async () => {
    // The writer pauses 50 ms between pieces; settle is ten times that, so a loaded machine that
    // stretches a pause does not make the file look finished.
    const { app, buildPath } = fileFetchedApp({}, 500);
    const { master, port } = await startWatching(app);
    const source = appSource({ reply: 'Hello slow writer', readyTimeout: 3000, fetcher: `new FileFetcher({ path: ${JSON.stringify(buildPath)}, interval: 200, settle: 500 })` });
    // A writer that appends the build in pieces over about a second, in place.
    writeFileSync(buildPath, '');
    const pieces = 20;
    const size = Math.ceil(source.length / pieces);
    for (let i = 0; i < pieces; i++) {
      writeFileSync(buildPath, source.slice(i * size, (i + 1) * size), { flag: 'a' });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const ended = await upgradeEnded(master);
    expect(ended.msg).toBe('upgrade done');
    expect(master.find('upgrade rejected')).toHaveLength(0);
    expect((await get({ port })).body).toBe('Hello slow writer');
  });
});
