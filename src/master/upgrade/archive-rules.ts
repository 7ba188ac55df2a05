import { lstat, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { ReadEntry } from 'tar';
import { ArchiveError, ConfigError } from '../../errors.js';

/** Limits on what an archive may unpack to. */
export interface ExtractLimits {
  /** Total unpacked bytes, summed from the entries' headers. Default 2 GiB. */
  maxBytes?: number;
  /** Number of entries (files, directories, links). Default 200 000. */
  maxEntries?: number;
}

export const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;
export const DEFAULT_MAX_ENTRIES = 200_000;

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const TYPE_NAMES: Record<string, string> = {
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
};
/** Symbolic links a path may pass through before the kernel gives up (Linux MAXSYMLINKS). */
const MAX_SYMLINK_HOPS = 40;
const REBUILD = 'rebuild the archive from the app directory with relative paths (tar -C app -czf app.tar.gz .)';

/** `/etc/x`, `\x`, and on any platform a drive letter (`C:/x`, `C:x`). */
function isAbsoluteLike(path: string): boolean {
  return path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:/.test(path);
}

function hasDotDot(path: string): boolean {
  return path.split(/[\\/]/).includes('..');
}

/** `./a//b/` and `a/b` name the same entry. */
function normalizeEntryPath(path: string): string {
  return path
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.')
    .join('/');
}

/**
 * Applies the archive rules to each entry as its header arrives, before node-tar writes anything
 * for it. node-tar on its own strips absolute paths, skips `..` entries and devices with a warning
 * and goes on; a release must be all or nothing, so every breach refuses the whole archive.
 */
export class EntryGuard {
  private readonly maxBytes: number;
  private readonly maxEntries: number;
  private entries = 0;
  private bytes = 0;
  /** Entries a hard link may point at: earlier files and hard links. */
  private readonly linkableFiles = new Set<string>();
  /** Paths that currently hold a symbolic link, as the archive has laid them down so far. */
  private readonly symlinkPaths = new Set<string>();
  /** Every path a symbolic link was written at, for the check against the extracted tree. */
  readonly symlinksWritten = new Set<string>();
  private readonly admitted = new WeakSet<ReadEntry>();

  constructor(limits: ExtractLimits = {}) {
    this.maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
    for (const [name, value] of Object.entries({ maxBytes: this.maxBytes, maxEntries: this.maxEntries })) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new ConfigError(`extract limit ${name} must be a non-negative integer, got ${String(value)}`);
      }
    }
  }

  /** Throws the `ArchiveError` for the first rule `entry` breaks; otherwise records it. */
  admit(entry: ReadEntry): void {
    const raw = entry.path;
    this.count(entry);
    if (isAbsoluteLike(raw)) {
      throw refusal(raw, `has an absolute path; every entry must be a relative path inside the release: ${REBUILD}`);
    }
    if (hasDotDot(raw)) {
      throw refusal(raw, `has a ".." path segment, which could reach outside the release: ${REBUILD}`);
    }
    const path = normalizeEntryPath(raw);
    this.checkNotThroughSymlink(raw, path);
    if (path === '' && entry.type !== 'Directory') {
      throw refusal(raw, `is ${describeType(entry.type)} that would replace the release directory itself: ${REBUILD}`);
    }
    switch (entry.type) {
      case 'Directory':
        break;
      case 'SymbolicLink':
        this.checkSymlinkTarget(raw, path, entry.linkpath ?? '');
        break;
      case 'Link':
        this.checkHardLinkTarget(raw, entry.linkpath ?? '');
        break;
      default:
        if (!FILE_TYPES.has(entry.type)) {
          throw refusal(raw, `is ${describeType(entry.type)}; app archives may hold only files, directories, symbolic links and hard links`);
        }
    }
    this.record(entry, path);
  }

  /**
   * node-tar skips entries it cannot extract (unknown types, oversized extended headers) before
   * any filter sees them; an entry this guard did not admit was skipped that way.
   */
  checkIgnored(entry: ReadEntry): void {
    if (this.admitted.has(entry)) return;
    if (entry.meta) {
      throw refusal(entry.path, `carries an extended header of ${entry.size} bytes, more than the 1 MiB a header may have; the next entry would lose its real name`);
    }
    throw refusal(entry.path, `is ${describeType(entry.type)}; app archives may hold only files, directories, symbolic links and hard links`);
  }

  private count(entry: ReadEntry): void {
    this.entries += 1;
    if (this.entries > this.maxEntries) {
      throw refusal(entry.path, `is entry number ${this.entries}, past the limit of ${this.maxEntries} entries (maxEntries): refused before unpacking further; raise maxEntries if the app really is that large`);
    }
    this.bytes += entry.size;
    if (this.bytes > this.maxBytes) {
      throw refusal(entry.path, `brings the unpacked size to ${this.bytes} bytes, past the limit of ${this.maxBytes} bytes (maxBytes): refused before unpacking further; raise maxBytes if the app really is that large`);
    }
  }

  private checkNotThroughSymlink(raw: string, path: string): void {
    const segments = path.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const parent = segments.slice(0, depth).join('/');
      if (this.symlinkPaths.has(parent)) {
        throw refusal(raw, `would be written through the symbolic link "${parent}" made by an earlier entry, which could put it outside the release: ${REBUILD}`);
      }
    }
  }

  private checkSymlinkTarget(raw: string, path: string, target: string): void {
    if (isAbsoluteLike(target)) {
      throw refusal(raw, `is a symbolic link to the absolute path "${target}", which is outside the release; use a relative target inside the app`);
    }
    const resolved = posix.normalize(posix.join(posix.dirname(path), target));
    if (resolved === '..' || resolved.startsWith('../')) {
      throw refusal(raw, `is a symbolic link to "${target}", which resolves outside the release; use a target inside the app`);
    }
  }

  private checkHardLinkTarget(raw: string, target: string): void {
    if (isAbsoluteLike(target) || hasDotDot(target)) {
      throw refusal(raw, `is a hard link to "${target}", which is outside the release; hard links may only point at earlier files of the archive`);
    }
    const normalized = normalizeEntryPath(target);
    if (!this.linkableFiles.has(normalized)) {
      throw refusal(raw, `is a hard link to "${target}", which is not an earlier file entry of the archive; hard links may only point at earlier files`);
    }
    this.checkNotThroughSymlink(raw, normalized);
  }

  private record(entry: ReadEntry, path: string): void {
    this.admitted.add(entry);
    // Dropping setuid/setgid: a fetched build must not install programs that run with more rights.
    if (typeof entry.mode === 'number') entry.mode &= 0o777;
    if (entry.type === 'SymbolicLink') {
      this.symlinkPaths.add(path);
      this.symlinksWritten.add(path);
    } else {
      this.symlinkPaths.delete(path);
    }
    if (FILE_TYPES.has(entry.type) || entry.type === 'Link') this.linkableFiles.add(path);
    else this.linkableFiles.delete(path);
  }
}

function refusal(entryPath: string, rule: string): ArchiveError {
  return new ArchiveError(`archive entry "${entryPath}" ${rule}`, entryPath);
}

function describeType(type: string): string {
  if (type in TYPE_NAMES) return TYPE_NAMES[type] as string;
  if (type === 'Directory') return 'a directory';
  if (type === 'SymbolicLink') return 'a symbolic link';
  if (type === 'Link') return 'a hard link';
  if (FILE_TYPES.has(type)) return 'a file';
  // node-tar names every typeflag it does not know "Unsupported".
  return type === 'Unsupported' ? 'an entry of an unknown type' : `an entry of unsupported type "${type}"`;
}

/**
 * Checks, on the extracted tree, that every symbolic link resolves inside `root`. The per-entry
 * check sees one link at a time; links can combine (`d/e -> sh/..` with a later `d/sh -> ..`
 * reaches the parent), so the final tree is resolved the way the kernel will, hop by hop.
 */
export async function checkSymlinksInside(root: string, symlinks: Iterable<string>): Promise<void> {
  for (const path of symlinks) {
    const stats = await lstat(join(root, path)).catch(() => undefined);
    if (!stats?.isSymbolicLink()) continue; // replaced by a later entry
    const target = await readlink(join(root, path));
    const verdict = await resolveInside(root, path.split('/').slice(0, -1), target, { hops: 0 });
    if (verdict === 'outside') {
      throw refusal(path, `is a symbolic link to "${target}", which, through the other links of the archive, resolves outside the release; use targets inside the app`);
    }
    if (verdict === 'loop') {
      throw refusal(path, `is a symbolic link to "${target}", which loops through other links of the archive; use a target inside the app`);
    }
  }
}

/**
 * Resolves `target` from the directory `from` (segments under `root`), following links on disk.
 * A missing component is kept as it is: the kernel would fail there, so only a lexical escape
 * after it matters.
 */
async function resolveInside(root: string, from: string[], target: string, budget: { hops: number }): Promise<string[] | 'outside' | 'loop'> {
  if (isAbsoluteLike(target)) return 'outside';
  let stack = [...from];
  for (const segment of target.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (stack.length === 0) return 'outside';
      stack.pop();
      continue;
    }
    stack.push(segment);
    const here = join(root, ...stack);
    const stats = await lstat(here).catch(() => undefined);
    if (!stats?.isSymbolicLink()) continue;
    if (++budget.hops > MAX_SYMLINK_HOPS) return 'loop';
    const next = await resolveInside(root, stack.slice(0, -1), await readlink(here), budget);
    if (typeof next === 'string') return next;
    stack = next;
  }
  return stack;
}
