import { chmod, copyFile, link, rename, rm, stat } from 'node:fs/promises';
import type { BuildPaths } from './paths.js';

/**
 * Installs `paths.next` over `paths.installed` with one `rename` (atomic: a worker started at any
 * moment sees either the old build or the new one, whole), after keeping the installed build as
 * `paths.previous` for rollback. The new file gets the installed file's mode (executables stay
 * executable).
 */
export async function install(paths: BuildPaths): Promise<void> {
  const installedMode = (await stat(paths.installed)).mode & 0o7777;
  const nextMode = (await stat(paths.next)).mode & 0o7777;
  // The installed file's permissions, plus execute bits the candidate needs (a native build).
  await chmod(paths.next, installedMode | (nextMode & 0o111));
  await keepCopy(paths.installed, paths.previous);
  await rename(paths.next, paths.installed);
}

/** Puts `paths.previous` back in place, atomically, and keeps it as previous too. */
export async function restorePrevious(paths: BuildPaths): Promise<void> {
  await keepCopy(paths.previous, paths.next);
  await rename(paths.next, paths.installed);
}

/** A hard link where the filesystem allows one (instant, no extra space), else a copy. */
async function keepCopy(from: string, to: string): Promise<void> {
  await rm(to, { force: true });
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}
