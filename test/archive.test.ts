import { chmodSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { ArchiveError, ConfigError } from '../src/errors.js';
import { activateRelease, currentRelease, detectArchive, extractRelease, pruneReleases, resolveEntryPoint } from '../src/master/upgrade/archive.js';
import { writeCraftedTar, type CraftedEntry } from './helpers/archives.js';
import { cleanupAll, makeTempDir } from './helpers/processes.js';

afterEach(cleanupAll);

const OLD = new Date('2001-01-01T00:00:00Z');

/** A small app as a build would ship it: package.json, code, node_modules with a .bin link, an executable, a hard link. */
function makeApp(dir: string, pkg: Record<string, unknown> = { name: 'app', main: 'server.js' }): string {
  mkdirSync(join(dir, 'node_modules', 'dep'), { recursive: true });
  mkdirSync(join(dir, 'node_modules', '.bin'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
  writeFileSync(join(dir, 'server.js'), 'console.log("serving")\n');
  writeFileSync(join(dir, 'node_modules', 'dep', 'index.js'), 'module.exports = 1\n');
  writeFileSync(join(dir, 'node_modules', 'dep', 'cli.js'), '#!/usr/bin/env node\n');
  chmodSync(join(dir, 'node_modules', 'dep', 'cli.js'), 0o755);
  symlinkSync('../dep/cli.js', join(dir, 'node_modules', '.bin', 'dep'));
  writeFileSync(join(dir, 'bin', 'start'), '#!/bin/sh\nexec node server.js\n');
  chmodSync(join(dir, 'bin', 'start'), 0o755);
  linkSync(join(dir, 'server.js'), join(dir, 'bin', 'server-copy.js'));
  utimesSync(dir, OLD, OLD);
  return dir;
}

async function packDir(cwd: string, file: string, entries: string[] = ['.'], gzip = true): Promise<string> {
  await tar.c({ gzip, file, cwd }, entries);
  return file;
}

async function expectRefused(promise: Promise<unknown>, entry: string | undefined, rule: RegExp): Promise<ArchiveError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, 'the archive was accepted').toBeInstanceOf(ArchiveError);
  const archiveError = error as ArchiveError;
  expect(archiveError.code).toBe('ERR_OVERSEER_ARCHIVE');
  expect(archiveError.message).toMatch(rule);
  expect(archiveError.entry).toBe(entry);
  if (entry !== undefined) expect(archiveError.message).toContain(entry);
  return archiveError;
}

describe('detectArchive', () => {
  it('tells a tar.gz and a plain tar by content, and says undefined for JS, gzipped or not, whatever the name', async () => {
    const dir = makeTempDir();
    const app = makeApp(join(dir, 'app'));
    const js = 'export const x = 1;\n'.repeat(50);
    expect(await detectArchive(await packDir(app, join(dir, 'build.bin')))).toBe('tar.gz');
    expect(await detectArchive(await packDir(app, join(dir, 'build.js'), ['.'], false))).toBe('tar');
    writeFileSync(join(dir, 'app.tar.gz'), gzipSync(js));
    expect(await detectArchive(join(dir, 'app.tar.gz'))).toBeUndefined();
    writeFileSync(join(dir, 'app.tar'), js);
    expect(await detectArchive(join(dir, 'app.tar'))).toBeUndefined();
    writeFileSync(join(dir, 'empty.tgz'), '');
    expect(await detectArchive(join(dir, 'empty.tgz'))).toBeUndefined();
  });
});

describe('extractRelease with a good archive', () => {
  it('extracts an app with node_modules, keeps modes and links, and resolves package.json main', async () => {
    const dir = makeTempDir();
    const archive = await packDir(makeApp(join(dir, 'app')), join(dir, 'app.tgz'));
    const releases = join(dir, 'releases');

    const release = await extractRelease(archive, releases, 'abc123');

    expect(release).toBe(join(releases, 'abc123'));
    expect(readdirSync(releases)).toEqual(['abc123']);
    expect(readFileSync(join(release, 'node_modules', 'dep', 'index.js'), 'utf8')).toBe('module.exports = 1\n');
    expect(statSync(join(release, 'bin', 'start')).mode & 0o111).toBe(0o111);
    expect(statSync(join(release, 'node_modules', 'dep', 'cli.js')).mode & 0o111).toBe(0o111);
    expect(statSync(join(release, 'server.js')).mode & 0o111).toBe(0);
    expect(readlinkSync(join(release, 'node_modules', '.bin', 'dep'))).toBe('../dep/cli.js');
    expect(statSync(join(release, 'bin', 'server-copy.js')).ino).toBe(statSync(join(release, 'server.js')).ino);
    // The archive's "./" entry carries 2001; pruning needs the time of extraction instead.
    expect(statSync(release).mtime.getTime()).toBeGreaterThan(OLD.getTime() + 1000 * 86400 * 365 * 10);
    expect(await resolveEntryPoint(release)).toBe(join(release, 'server.js'));
  });

  it('looks through a single top-level directory, from a plain tar too', async () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'src'));
    makeApp(join(dir, 'src', 'app-1.2.3'), { name: 'app', main: './lib' });
    mkdirSync(join(dir, 'src', 'app-1.2.3', 'lib'));
    writeFileSync(join(dir, 'src', 'app-1.2.3', 'lib', 'index.js'), '');
    const archive = await packDir(join(dir, 'src'), join(dir, 'app.tar'), ['app-1.2.3'], false);

    const release = await extractRelease(archive, join(dir, 'releases'), 'v1');

    expect(readdirSync(release)).toEqual(['app-1.2.3']);
    expect(await resolveEntryPoint(release)).toBe(join(release, 'app-1.2.3', 'lib', 'index.js'));
    expect(await resolveEntryPoint(release, 'bin/start')).toBe(join(release, 'app-1.2.3', 'bin', 'start'));
    expect(await resolveEntryPoint(release, 'app-1.2.3/server.js')).toBe(join(release, 'app-1.2.3', 'server.js'));
  });

  it('drops setuid and setgid bits but keeps the rest of the mode', async () => {
    const dir = makeTempDir();
    const archive = writeCraftedTar(join(dir, 'a.tgz'), [{ name: 'tool', body: '#!/bin/sh\n', mode: 0o6755 }], { gzip: true });
    const release = await extractRelease(archive, join(dir, 'releases'), 'r');
    expect(statSync(join(release, 'tool')).mode & 0o7777).toBe(0o755);
  });
});

describe('resolveEntryPoint', () => {
  async function releaseWith(pkg: Record<string, unknown> | undefined): Promise<string> {
    const dir = makeTempDir();
    const app = makeApp(join(dir, 'app'), pkg);
    if (pkg === undefined) writeFileSync(join(app, 'package.json'), '{ not json');
    return extractRelease(await packDir(app, join(dir, 'app.tgz')), join(dir, 'releases'), 'r');
  }

  it('takes a configured entry point inside the release, and refuses one that is missing or outside', async () => {
    const release = await releaseWith({ name: 'app' });
    expect(await resolveEntryPoint(release, 'node_modules/dep/cli.js')).toBe(join(release, 'node_modules', 'dep', 'cli.js'));
    await expectRefused(resolveEntryPoint(release, 'nope.js'), undefined, /configured entry point "nope.js" is not a file inside the release/);
    await expectRefused(resolveEntryPoint(release, '../../../../../../etc/passwd'), undefined, /outside the release/);
  });

  it('takes the single bin entry when there is no main', async () => {
    const release = await releaseWith({ name: 'app', bin: { dep: 'node_modules/dep/cli.js' } });
    expect(await resolveEntryPoint(release)).toBe(join(release, 'node_modules', 'dep', 'cli.js'));
  });

  it('says clearly when package.json names no entry point, names several, or is broken', async () => {
    await expectRefused(resolveEntryPoint(await releaseWith({ name: 'app' })), 'package.json', /neither "main" nor "bin".*configure the entry point/);
    await expectRefused(resolveEntryPoint(await releaseWith({ bin: { a: 'server.js', b: 'bin/start' } })), 'package.json', /2 "bin" entries \(a, b\).*ambiguous/);
    await expectRefused(resolveEntryPoint(await releaseWith({ main: 'gone.js' })), 'package.json', /"main" .* is "gone.js", which is not a file/);
    await expectRefused(resolveEntryPoint(await releaseWith(undefined)), 'package.json', /not valid JSON/);
  });
});

describe('extractRelease refuses a hostile archive whole, leaving nothing behind', () => {
  const cases: Array<{ name: string; entries: (outside: string) => CraftedEntry[]; entry: string; rule: RegExp }> = [
    { name: 'an absolute path', entries: () => [{ name: 'ok.js', body: '1' }, { name: '/etc/overseer-evil', body: 'x' }], entry: '/etc/overseer-evil', rule: /absolute path/ },
    { name: 'a drive letter with a slash', entries: () => [{ name: 'C:/evil', body: 'x' }], entry: 'C:/evil', rule: /absolute path/ },
    { name: 'a drive-relative path', entries: () => [{ name: 'C:evil', body: 'x' }], entry: 'C:evil', rule: /absolute path/ },
    { name: 'a leading ..', entries: () => [{ name: '../evil', body: 'x' }], entry: '../evil', rule: /"\.\." path segment/ },
    { name: 'a .. inside the path', entries: () => [{ name: 'a/', type: '5' }, { name: 'a/../../evil', body: 'x' }], entry: 'a/../../evil', rule: /"\.\." path segment/ },
    { name: 'a symlink to /etc', entries: () => [{ name: 'etc', type: '2', linkname: '/etc' }], entry: 'etc', rule: /symbolic link to the absolute path "\/etc"/ },
    { name: 'a symlink up and out', entries: () => [{ name: 'a/', type: '5' }, { name: 'a/up', type: '2', linkname: '../../x' }], entry: 'a/up', rule: /symbolic link to "\.\.\/\.\.\/x", which resolves outside/ },
    { name: 'a file written through an earlier symlink (to a directory inside)', entries: () => [{ name: 'sub/', type: '5' }, { name: 'link', type: '2', linkname: 'sub' }, { name: 'link/evil', body: 'x' }], entry: 'link/evil', rule: /through the symbolic link "link"/ },
    { name: 'a file written through an earlier symlink to a directory outside', entries: (outside) => [{ name: 'link', type: '2', linkname: outside }, { name: 'link/evil', body: 'x' }], entry: 'link', rule: /absolute path/ },
    { name: 'symlinks that escape only together', entries: () => [{ name: 'd/', type: '5' }, { name: 'd/e', type: '2', linkname: 'sh/..' }, { name: 'd/sh', type: '2', linkname: '..' }], entry: 'd/e', rule: /through the other links of the archive, resolves outside/ },
    { name: 'a hard link to /etc/passwd', entries: () => [{ name: 'pw', type: '1', linkname: '/etc/passwd' }], entry: 'pw', rule: /hard link to "\/etc\/passwd", which is outside/ },
    { name: 'a hard link up and out', entries: () => [{ name: 'pw', type: '1', linkname: '../x' }], entry: 'pw', rule: /hard link to "\.\.\/x", which is outside/ },
    { name: 'a hard link to a later entry', entries: () => [{ name: 'h', type: '1', linkname: 'later' }, { name: 'later', body: 'x' }], entry: 'h', rule: /not an earlier file entry/ },
    { name: 'a character device', entries: () => [{ name: 'null', type: '3' }], entry: 'null', rule: /is a character device; app archives may hold only/ },
    { name: 'a block device', entries: () => [{ name: 'sda', type: '4' }], entry: 'sda', rule: /is a block device/ },
    { name: 'a FIFO', entries: () => [{ name: 'pipe', type: '6' }], entry: 'pipe', rule: /is a FIFO/ },
    { name: 'an unknown entry type', entries: () => [{ name: 'ok.js', body: '1' }, { name: 'weird', type: 'Z', body: 'abc' }], entry: 'weird', rule: /an entry of an unknown type/ },
    { name: 'a sparse file', entries: () => [{ name: 'holes', type: 'S', body: 'abc' }], entry: 'holes', rule: /unsupported type "SparseFile"/ },
    { name: 'an extended header too large to apply', entries: () => [{ name: 'PaxHeader/f', type: 'x', body: 'x'.repeat(1100 * 1024) }, { name: 'f', body: '1' }], entry: 'PaxHeader/f', rule: /extended header of 1126400 bytes/ },
    { name: 'a bad entry after many good ones', entries: () => [...Array.from({ length: 200 }, (_, i) => ({ name: `d${i}/e/m.js`, body: 'y'.repeat(20_000) })), { name: '/etc/late', body: 'x' }], entry: '/etc/late', rule: /absolute path/ },
    { name: 'a file that would replace the release directory', entries: () => [{ name: '.', body: 'x' }], entry: '.', rule: /replace the release directory/ },
  ];
  for (const gzip of [true, false]) {
    for (const { name, entries, entry, rule } of cases) {
      it(`${name} (${gzip ? 'tar.gz' : 'tar'})`, async () => {
        const dir = makeTempDir();
        const outside = join(dir, 'outside');
        mkdirSync(outside);
        const archive = writeCraftedTar(join(dir, 'evil'), entries(outside), { gzip });
        const releases = join(dir, 'releases');
        await expectRefused(extractRelease(archive, releases, 'r'), entry, rule);
        expect(readdirSync(releases)).toEqual([]);
        expect(readdirSync(outside)).toEqual([]);
      });
    }
  }
});

describe('extractRelease limits and damage', () => {
  it('refuses an archive past maxBytes at the entry that passes it', async () => {
    const dir = makeTempDir();
    const body = 'x'.repeat(600);
    const archive = writeCraftedTar(join(dir, 'a.tgz'), [{ name: 'one', body }, { name: 'two', body }, { name: 'three', body }], { gzip: true });
    await expectRefused(extractRelease(archive, join(dir, 'releases'), 'r', { maxBytes: 1000 }), 'two', /1200 bytes, past the limit of 1000 bytes \(maxBytes\)/);
    expect(readdirSync(join(dir, 'releases'))).toEqual([]);
  });

  it('counts sizes from the headers: a declared 8 GiB entry is refused by the limit before any body arrives', async () => {
    const dir = makeTempDir();
    const archive = writeCraftedTar(join(dir, 'a.tgz'), [{ name: 'huge', declaredSize: 8 * 1024 ** 3 - 1 }], { gzip: true });
    await expectRefused(extractRelease(archive, join(dir, 'releases'), 'r'), 'huge', /past the limit of 2147483648 bytes \(maxBytes\)/);
    expect(readdirSync(join(dir, 'releases'))).toEqual([]);
  });

  it('refuses an archive past maxEntries at the first entry too many', async () => {
    const dir = makeTempDir();
    const entries = Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, body: String(i) }));
    const archive = writeCraftedTar(join(dir, 'a.tgz'), entries, { gzip: true });
    await expectRefused(extractRelease(archive, join(dir, 'releases'), 'r', { maxEntries: 5 }), 'f5', /entry number 6, past the limit of 5 entries \(maxEntries\)/);
    expect(readdirSync(join(dir, 'releases'))).toEqual([]);
  });

  it('refuses a truncated tar.gz and says so', async () => {
    const dir = makeTempDir();
    const app = makeApp(join(dir, 'app'));
    writeFileSync(join(app, 'node_modules', 'dep', 'blob.bin'), randomBytes(256 * 1024));
    const archive = await packDir(app, join(dir, 'app.tgz'));
    truncateSync(archive, Math.floor(statSync(archive).size / 2));
    await expectRefused(extractRelease(archive, join(dir, 'releases'), 'r'), undefined, /corrupt or truncated: its gzip data is damaged or ends early/);
    expect(readdirSync(join(dir, 'releases'))).toEqual([]);
  });

  it('refuses a plain tar whose last entry is cut short, and one with a damaged header', async () => {
    const dir = makeTempDir();
    const cut = writeCraftedTar(join(dir, 'cut.tar'), [{ name: 'ok.js', body: '1' }, { name: 'cut.js', body: 'short', declaredSize: 64 * 1024 }]);
    await expectRefused(extractRelease(cut, join(dir, 'releases'), 'r'), undefined, /corrupt or truncated: .*Truncated input/);
    const damaged = writeCraftedTar(join(dir, 'damaged.tar'), [{ name: 'ok.js', body: '1', badChecksum: true }]);
    await expectRefused(extractRelease(damaged, join(dir, 'releases'), 'r'), undefined, /corrupt or truncated: .*checksum/);
    expect(readdirSync(join(dir, 'releases'))).toEqual([]);
  });

  it('refuses what is not a tar, an unusable id or limit, and an id that already has a release', async () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'app.tar.gz'), gzipSync('console.log(1)'));
    await expectRefused(extractRelease(join(dir, 'app.tar.gz'), join(dir, 'releases'), 'r'), undefined, /is not a tar or gzip-compressed tar archive/);
    const archive = await packDir(makeApp(join(dir, 'app')), join(dir, 'app.tgz'));
    await expectRefused(extractRelease(archive, join(dir, 'releases'), '../escape'), undefined, /release id "\.\.\/escape" is not usable/);
    await expect(extractRelease(archive, join(dir, 'releases'), 'r', { maxEntries: -1 })).rejects.toThrow(ConfigError);
    await extractRelease(archive, join(dir, 'releases'), 'r');
    await expectRefused(extractRelease(archive, join(dir, 'releases'), 'r'), undefined, /already exists/);
    expect(readdirSync(join(dir, 'releases'))).toEqual(['r']);
  });
});

describe('release directories', () => {
  function makeReleases(root: string, ids: string[]): void {
    ids.forEach((id, index) => {
      mkdirSync(join(root, 'releases', id), { recursive: true });
      const time = new Date(Date.UTC(2020, 0, 1 + index));
      utimesSync(join(root, 'releases', id), time, time);
    });
  }

  it('activateRelease swaps current atomically: a reader never finds it missing', async () => {
    const root = makeTempDir();
    makeReleases(root, ['a', 'b']);
    expect(await currentRelease(root)).toBeUndefined();

    await activateRelease(root, 'a');
    expect(readlinkSync(join(root, 'current'))).toBe(join('releases', 'a'));
    expect(await currentRelease(root)).toBe('a');

    let swapping = true;
    let reads = 0;
    const misses: string[] = [];
    const reader = (async () => {
      while (swapping) {
        try {
          await readlink(join(root, 'current'));
          reads += 1;
        } catch (error) {
          misses.push(String(error));
        }
      }
    })();
    for (let i = 0; i < 200; i++) await activateRelease(root, i % 2 === 0 ? 'b' : 'a');
    swapping = false;
    await reader;
    expect(misses).toEqual([]);
    expect(reads).toBeGreaterThan(0);

    await activateRelease(root, 'b');
    expect(readlinkSync(join(root, 'current'))).toBe(join('releases', 'b'));
    expect(await currentRelease(root)).toBe('b');
    expect(readdirSync(root).sort()).toEqual(['current', 'releases']);
  });

  it('activateRelease refuses a release that does not exist and leaves current alone', async () => {
    const root = makeTempDir();
    makeReleases(root, ['a']);
    await activateRelease(root, 'a');
    await expectRefused(activateRelease(root, 'missing'), undefined, /cannot activate release "missing".*extract the build first/);
    expect(await currentRelease(root)).toBe('a');
  });

  it('pruneReleases keeps the newest N and the protected ones, and leaves extractions in progress alone', async () => {
    const root = makeTempDir();
    makeReleases(root, ['r1', 'r2', 'r3', 'r4', 'r5', '.tmp-r6-x']);

    expect((await pruneReleases(root, 2, ['r1'])).sort()).toEqual(['r2', 'r3']);
    expect(readdirSync(join(root, 'releases')).sort()).toEqual(['.tmp-r6-x', 'r1', 'r4', 'r5']);

    await activateRelease(root, 'r4');
    expect((await pruneReleases(root, 0, ['r5'])).sort()).toEqual(['r1']);
    expect(readdirSync(join(root, 'releases')).sort()).toEqual(['.tmp-r6-x', 'r4', 'r5']);
    expect(await pruneReleases(makeTempDir(), 1, [])).toEqual([]);
  });
});
