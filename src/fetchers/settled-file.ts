import type { Stats } from 'node:fs';
import { stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { FetchError, describeError } from '../errors.js';

const READ_CHUNK = 64 * 1024;

/** What tells one version of the file from another without reading it. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export function identityOf(stats: Stats): FileIdentity {
  return { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Whether two looks at a file that may be absent saw the same thing: both no file, or the same file. */
export function sameOrBothAbsent(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  return a === undefined || b === undefined ? a === b : sameIdentity(a, b);
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const PERMISSION_FIX = 'give the user running overseer read access to the file and search (x) access to every directory above it';
const FIXES: Record<string, string> = {
  EACCES: PERMISSION_FIX,
  EPERM: PERMISSION_FIX,
  EISDIR: 'the path option must name the build file itself, not a directory: point it at the file your build tool writes',
  ENOTDIR: 'a part of the path is a file, not a directory: point the path option at the build file',
  ELOOP: 'the path goes through a loop of symbolic links: fix the links or point the path option at the real file',
  ENAMETOOLONG: 'the path is too long for this filesystem: use a shorter path',
};
const DEFAULT_FIX = 'check that the path option names a readable regular file on a working filesystem';

/** The FetchError for a file that cannot be read, naming the fix for its error code. */
export function readError(source: string, path: string, error: unknown, what = 'build file'): FetchError {
  const code = errorCode(error) ?? describeError(error);
  const fix = FIXES[code] ?? DEFAULT_FIX;
  return new FetchError(source, `cannot read the ${what} ${path} (${code}): ${fix}`, { cause: error });
}

/**
 * The bytes of a file that settled, read through one open handle. Errors instead of ending when
 * the file is not, at the end, the file that was opened: more or fewer bytes than its size, or a
 * different identity on the handle or at the path (written in place, replaced, removed).
 */
export class SettledFileStream extends Readable {
  private position = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly opened: FileIdentity,
    private readonly path: string,
    private readonly source: string,
  ) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _read(size: number): void {
    this.readChunk(size).catch((error: unknown) => {
      this.destroy(error instanceof FetchError ? error : readError(this.source, this.path, error));
    });
  }

  private async readChunk(size: number): Promise<void> {
    // One byte past the expected end is enough to tell that the file grew.
    const length = Math.max(1, Math.min(size, this.opened.size - this.position + 1));
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.handle.read(buffer, 0, length, this.position);
    if (this.destroyed) return;
    this.position += bytesRead;
    if (this.position > this.opened.size) {
      this.destroy(this.changed(`it grew past ${this.opened.size} bytes`));
    } else if (bytesRead > 0) {
      this.push(buffer.subarray(0, bytesRead));
    } else {
      const problem = await this.changeAtEnd();
      if (this.destroyed) return;
      if (problem) this.destroy(this.changed(problem));
      else this.push(null);
    }
  }

  /** Why the file read is not the file opened, or undefined when it is. */
  private async changeAtEnd(): Promise<string | undefined> {
    if (this.position !== this.opened.size) return `it shrank to ${this.position} of ${this.opened.size} bytes`;
    if (!sameIdentity(identityOf(await this.handle.stat()), this.opened)) return 'it was written in place';
    let atPath: Stats;
    try {
      atPath = await stat(this.path);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return 'it was removed';
      throw error;
    }
    if (!sameIdentity(identityOf(atPath), this.opened)) return 'it was replaced';
    return undefined;
  }

  private changed(problem: string): FetchError {
    return new FetchError(
      this.source,
      `the build file ${this.path} changed while it was being read (${problem}): ` +
        'this build is skipped and the next fetch reads the file again once it stops changing; ' +
        'have the build tool write a temporary file and rename it over the path',
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.handle.close().then(
      () => callback(error),
      (closeError: unknown) => callback(error ?? (closeError as Error)),
    );
  }
}
