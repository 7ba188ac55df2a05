import { randomBytes } from 'node:crypto';
import { open, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ArchiveError, ConfigError, describeError } from '../../errors.js';

const RELEASES = 'releases';
const CURRENT = 'current';

/**
 * A release id names one directory under `releases/`: a single path segment, and not starting
 * with a dot, which marks extractions still in progress.
 */
export function checkReleaseId(id: string): void {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(id)) {
    throw new ArchiveError(`release id "${id}" is not usable as a directory name: use letters, digits, ".", "_" and "-", not starting with "."`);
  }
}

/**
 * Points `<root>/current` at `releases/<id>` (a relative link, so the root can move) by making
 * a temporary link beside it and renaming it over `current`: a reader sees the old target or
 * the new one, never no link.
 */
export async function activateRelease(root: string, id: string): Promise<void> {
  checkReleaseId(id);
  const releaseDir = join(root, RELEASES, id);
  const stats = await stat(releaseDir).catch(() => undefined);
  if (!stats?.isDirectory()) {
    throw new ArchiveError(`cannot activate release "${id}": "${releaseDir}" is not a directory; extract the build first (extractRelease)`);
  }
  const current = join(root, CURRENT);
  const temporary = join(root, `.${CURRENT}-${process.pid}-${randomBytes(6).toString('hex')}`);
  await symlink(join(RELEASES, id), temporary);
  try {
    await rename(temporary, current);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new ArchiveError(`cannot point "${current}" at release "${id}": ${describeError(error)}; if "${current}" is a real directory, move it away so overseer can manage it as a link`);
  }
  await syncDirectory(root);
}

/** Makes the rename durable across a power cut; not every platform can fsync a directory. */
async function syncDirectory(path: string): Promise<void> {
  try {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}

/** The id of the release `<root>/current` points at, or undefined when there is none. */
export async function currentRelease(root: string): Promise<string | undefined> {
  let target: string;
  try {
    target = await readlink(join(root, CURRENT));
  } catch {
    return undefined; // missing, or not a link
  }
  const releasesDir = resolve(root, RELEASES);
  const absolute = resolve(root, target);
  return dirname(absolute) === releasesDir ? basename(absolute) : undefined;
}

/**
 * Removes all but the newest `keep` releases (by the mtime of each release directory), never
 * those in `protect` (the running and the previous release) nor the one `current` points at.
 * Extractions in progress (`.tmp-*`) are left alone. Resolves with the removed ids.
 */
export async function pruneReleases(root: string, keep: number, protect: readonly string[]): Promise<string[]> {
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new ConfigError(`releases to keep must be a non-negative integer, got ${String(keep)}`);
  }
  const releasesDir = join(root, RELEASES);
  let names: string[];
  try {
    names = await readdir(releasesDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const releases: Array<{ id: string; mtimeMs: number }> = [];
  for (const id of names) {
    if (id.startsWith('.')) continue;
    const stats = await stat(join(releasesDir, id)).catch(() => undefined);
    if (stats?.isDirectory()) releases.push({ id, mtimeMs: stats.mtimeMs });
  }
  releases.sort((a, b) => b.mtimeMs - a.mtimeMs || b.id.localeCompare(a.id));
  const kept = new Set(protect);
  const active = await currentRelease(root);
  if (active !== undefined) kept.add(active);
  const removed: string[] = [];
  for (const { id } of releases.slice(keep)) {
    if (kept.has(id)) continue;
    await rm(join(releasesDir, id), { recursive: true, force: true, maxRetries: 3 });
    removed.push(id);
  }
  return removed;
}
