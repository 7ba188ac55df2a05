import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { writeCraftedTar, type CraftedEntry } from './helpers/archives.js';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { controlledFetcherSource, FetcherControl } from './helpers/controlled-fetcher.js';
import { get, startLoad } from './helpers/load.js';
import { startWatching, upgradeEnded } from './helpers/upgrades.js';
import { minisignKeys } from './helpers/minisign-keys.js';
import { cleanupAll, makeTempDir, startMaster } from './helpers/processes.js';

afterEach(cleanupAll);

describe('signed builds (publicKey)', () => {
  it('installs only builds signed with the configured key (by minisign or overseer sign); unsigned, wrongly signed, tampered builds and altered trusted comments never run', async () => {
    const app = new TestApp();
    const keys = minisignKeys(app.dir, 'release');
    const stranger = minisignKeys(app.dir, 'stranger');
    const controlPath = join(app.dir, 'control.json');
    const control = new FetcherControl(controlPath);
    const options = (more: AppOptions): AppOptions => ({
      readyTimeout: 3000,
      ...more,
      top: controlledFetcherSource(controlPath),
      fetcher: 'globalThis.controlledFetcher',
      extraOptions: `publicKey: ${JSON.stringify(keys.pub)},`,
    });
    app.update(options({}));
    const build = (name: string, reply: string) => {
      const path = join(app.dir, name);
      writeFileSync(path, appSource(options({ reply })));
      return path;
    };
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    const installedBefore = readFileSync(app.path, 'utf8');
    const load = startLoad({ port }, { connections: 8 });
    await load.flowing();

    control.offer(build('unsigned.mjs', 'unsigned'));
    const unsigned = await upgradeEnded(master, 1);
    expect(unsigned.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(unsigned.reason)).toMatch(/no signature and publicKey requires one: publish .*\.minisig/);

    const foreign = build('foreign.mjs', 'foreign');
    control.offer(foreign, { signature: stranger.sign(foreign) });
    const wrongKey = await upgradeEnded(master, 2);
    expect(String(wrongKey.reason)).toMatch(/signature check failed: .*key/i);

    const tampered = build('tampered.mjs', 'tampered');
    const signature = keys.sign(tampered);
    writeFileSync(tampered, appSource(options({ reply: 'tampered after signing' })));
    control.offer(tampered, { signature });
    const altered = await upgradeEnded(master, 3);
    expect(String(altered.reason)).toMatch(/signature check failed/);

    const commented = build('commented.mjs', 'trusted comment altered');
    const commentedSignature = keys.sign(commented);
    writeFileSync(commentedSignature, readFileSync(commentedSignature, 'utf8').replace(/^trusted comment: .*$/m, 'trusted comment: approved by nobody'));
    control.offer(commented, { signature: commentedSignature });
    const comment = await upgradeEnded(master, 4);
    expect(comment.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(comment.reason)).toMatch(/signature check failed: .*trusted comment/i);

    expect(master.find('upgrade: sanity check passed')).toHaveLength(0);
    expect(readFileSync(app.path, 'utf8')).toBe(installedBefore);
    await load.flowing();

    const good = build('good.mjs', 'Hello signed build');
    control.offer(good, { signature: keys.sign(good) });
    const done = await upgradeEnded(master, 5);
    expect(done.msg).toBe('upgrade done');
    expect((await get({ port })).body).toBe('Hello signed build');

    const byOverseer = build('by-overseer.mjs', 'Hello, signed by overseer sign');
    control.offer(byOverseer, { signature: keys.signWithOverseer(byOverseer) });
    expect((await upgradeEnded(master, 6)).msg).toBe('upgrade done');
    expect(master.find('upgrade: signature verified')).toHaveLength(2);
    await load.flowing();
    expect((await load.stop()).errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello, signed by overseer sign');
  });

  it('refuses to start with a public key that is not one, saying so', async () => {
    const app = new TestApp({ extraOptions: "publicKey: 'not-a-key', fetcher: { fetch: async () => undefined },", readyTimeout: 3000 });
    const master = startMaster(app.path);
    const exit = await master.waitForExit();
    expect(exit.code).toBe(1);
    expect(String(master.find('master cannot start')[0]?.msg)).toMatch(/public key/i);
  });
});

describe('app archives', () => {
  /** `<root>/releases/first/` holding the app, `<root>/current` pointing at it. */
  function releaseLayout() {
    const root = makeTempDir();
    const controlPath = join(root, 'control.json');
    const control = new FetcherControl(controlPath);
    const appOptions = (reply: string, more: AppOptions = {}): AppOptions => ({
      readyTimeout: 3000,
      ...more,
      reply,
      top: controlledFetcherSource(controlPath),
      fetcher: 'globalThis.controlledFetcher',
      extraOptions: 'maxReleaseSize: 1_000_000,',
      imports: "import { greeting } from 'greeting';",
      prelude: 'if (greeting() !== "hi") throw new Error("node_modules not found");',
    });
    const writeApp = (dir: string, reply: string, more: AppOptions = {}) => {
      mkdirSync(join(dir, 'node_modules', 'greeting'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', type: 'module', main: 'server.mjs' }));
      writeFileSync(join(dir, 'server.mjs'), appSource(appOptions(reply, more)));
      writeFileSync(join(dir, 'node_modules', 'greeting', 'package.json'), JSON.stringify({ name: 'greeting', type: 'module', main: 'index.js' }));
      writeFileSync(join(dir, 'node_modules', 'greeting', 'index.js'), 'export const greeting = () => "hi";\n');
    };
    writeApp(join(root, 'releases', 'first'), 'Hello release 1');
    symlinkSync(join('releases', 'first'), join(root, 'current'));
    let n = 0;
    return {
      root,
      entry: join(root, 'current', 'server.mjs'),
      /** Packs an app replying `reply` into a .tar.gz and offers it. */
      async offer(reply: string, more: AppOptions = {}) {
        n += 1;
        const dir = join(root, `src-${n}`);
        writeApp(dir, reply, more);
        const archive = join(root, `app-${n}.tgz`);
        await tar.c({ gzip: true, file: archive, cwd: dir, portable: true }, ['.']);
        control.offer(archive);
        return archive;
      },
      offerFile(path: string) {
        control.offer(path);
      },
    };
  }

  it('extracts a new release, switches current to it, serves it, and switches back when the next one fails', async () => {
    const layout = releaseLayout();
    const master = startMaster(layout.entry);
    const port = await master.port();
    await master.waitForLog('worker ready');
    expect((await get({ port })).body).toBe('Hello release 1');
    const load = startLoad({ port }, { connections: 8 });
    await load.flowing();

    await layout.offer('Hello release 2');
    const done = await upgradeEnded(master);
    expect(done.msg).toBe('upgrade done');
    expect(readlinkSync(join(layout.root, 'current'))).toBe(join('releases', String(done.buildId)));
    expect((await get({ port })).body).toBe('Hello release 2');

    await layout.offer('broken release', { startup: 'throw' });
    const rolledBack = await upgradeEnded(master, 2);
    expect(rolledBack.msg).toBe('upgrade rolled back: the previous build keeps serving');
    expect(String(rolledBack.reason)).toMatch(/program threw: boom at start/);
    expect(readlinkSync(join(layout.root, 'current'))).toBe(join('releases', String(done.buildId)));
    await load.flowing();
    expect((await load.stop()).errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello release 2');
  });

  const hostile: Array<[string, CraftedEntry, string]> = [
    ['a path that climbs out (..)', { name: '../outside.txt', body: 'escaped' }, '../outside.txt'],
    ['an absolute path', { name: '/tmp/overseer-absolute.txt', body: 'escaped' }, '/tmp/overseer-absolute.txt'],
    ['a symlink that points out of the release', { name: 'escape', type: '2', linkname: '../../..' }, 'escape'],
    ['more bytes than maxReleaseSize', { name: 'huge.bin', body: Buffer.alloc(1_500_000) }, 'huge.bin'],
  ];
  for (const [what, entry, named] of hostile) {
    it(`refuses an archive with ${what}, naming the entry, writing nothing outside, and keeps serving`, async () => {
      const layout = releaseLayout();
      const master = startMaster(layout.entry);
      const port = await master.port();
      await master.waitForLog('worker ready');
      const evil = join(layout.root, 'evil.tar');
      writeCraftedTar(evil, [{ name: 'server.mjs', body: 'console.log(1)' }, entry]);
      layout.offerFile(evil);
      const before = readdirSync(layout.root).sort();
      const rejected = await upgradeEnded(master);
      expect(rejected.msg).toBe('upgrade rejected: the running build keeps serving');
      expect(String(rejected.reason)).toContain(named);
      expect(readlinkSync(join(layout.root, 'current'))).toBe(join('releases', 'first'));
      expect(readdirSync(join(layout.root, 'releases'))).toEqual(['first']);
      expect(readdirSync(layout.root).sort()).toEqual(before);
      expect(existsSync('/tmp/overseer-absolute.txt')).toBe(false);
      expect((await get({ port })).body).toBe('Hello release 1');
    });
  }
});
