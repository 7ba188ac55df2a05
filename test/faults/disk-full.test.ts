import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, type AppOptions } from '../helpers/app.js';
import { get, startLoad } from '../helpers/load.js';
import { cleanupAll, makeTempDir, startMaster, tempMarker } from '../helpers/processes.js';
import { upgradeEnded } from '../helpers/upgrades.js';

const mounts: string[] = [];

/** A directory on a tmpfs of `size` (mount(8) syntax): a real filesystem that really fills up. */
function mountSmallDisk(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), tempMarker()));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  mounts.push(dir);
  return dir;
}

function unmountAll(): void {
  for (const dir of mounts.splice(0)) {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN): CI runs as root. */
function whyNoMount(): string | undefined {
  try {
    mountSmallDisk('64k');
    unmountAll();
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs here (${String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim()}): run as root to test a full disk`;
  }
}

const noMount = whyNoMount();

afterEach(async () => {
  // Masters first: a filesystem their files are open on cannot be unmounted.
  await cleanupAll();
  unmountAll();
});

describe('fault: the disk fills up during an install', () => {
  it.skipIf(noMount !== undefined)(`keeps the installed build serving, leaves no partial file, and installs the next build that fits${noMount ? ` (skipped: ${noMount})` : ''}`, async () => {
    const disk = mountSmallDisk('256k');
    const appPath = join(disk, 'app.mjs');
    const buildPath = join(makeTempDir(), 'next-build.mjs');
    const withFetcher = (more: AppOptions): AppOptions => ({
      readyTimeout: 3000,
      ...more,
      fetcher: `new FileFetcher({ path: ${JSON.stringify(buildPath)}, interval: 200, settle: 100 })`,
    });
    const publish = (source: string) => {
      writeFileSync(`${buildPath}.tmp`, source);
      renameSync(`${buildPath}.tmp`, buildPath);
    };
    writeFileSync(appPath, appSource(withFetcher({ reply: 'Hello v1' })));
    const installedBefore = readFileSync(appPath, 'utf8');
    const master = startMaster(appPath);
    const port = await master.port();
    await master.waitForLog('worker ready');
    await master.waitForLog('watching for new builds');
    const load = startLoad({ port }, { connections: 8, keepAlive: true });
    await load.flowing();

    // A build four times the size of the whole disk: the download beside app.mjs runs out of space.
    publish(`${appSource(withFetcher({ reply: 'Hello too big' }))}\n// ${'x'.repeat(1024 * 1024)}\n`);
    const failed = await upgradeEnded(master);
    expect(failed.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(failed.reason)).toMatch(/ENOSPC|no space left on device/i);
    expect(failed.level).toBe(50);
    expect(readFileSync(appPath, 'utf8')).toBe(installedBefore);
    expect(readdirSync(disk).filter((name) => name !== 'app.mjs' && name !== 'app.versions.json')).toEqual([]);
    await load.flowing();
    expect((await get({ port })).body).toBe('Hello v1');

    // The space came back with the partial file: a build that fits installs as usual.
    publish(appSource(withFetcher({ reply: 'Hello v2' })));
    const done = await upgradeEnded(master, 2);
    expect(done.msg).toBe('upgrade done');
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello v2');
    expect(existsSync(join(disk, 'app.prev.mjs'))).toBe(true);
  });
});
