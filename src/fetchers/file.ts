import { watch as watchFileSystem, type FSWatcher, type Stats } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Readable, addAbortSignal } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checksumFor } from './checksums.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';

/** Options of {@link FileFetcher}. */
export interface FileFetcherOptions {
  /** The file a build tool writes the new build to; relative paths are resolved against the working directory. */
  path: string;
  /** Milliseconds between polls. Default 1000. */
  interval?: number;
  /** Milliseconds the file must stay unchanged (size, modification time) before it is taken. Default 300. */
  settle?: number;
  /**
   * A checksum file the build tool writes beside the build (`sha256sum` output, or one bare hash):
   * the SHA-256 it lists for the build's file name becomes the build's `sha256`, which the upgrade
   * checks. A build is not taken until this file exists; a new checksum file offers the build again.
   */
  checksumPath?: string;
}

const DEFAULT_INTERVAL = 1000;
const DEFAULT_SETTLE = 300;
const READ_CHUNK = 64 * 1024;
/** A checksum file bigger than this is not one. */
const CHECKSUM_FILE_LIMIT = 1024 * 1024;

/** What tells one version of the file from another without reading it. */
interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

function identityOf(stats: Stats): FileIdentity {
  return { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function errorCode(error: unknown): string | undefined {
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

function readError(source: string, path: string, error: unknown, what = 'build file'): FetchError {
  const code = errorCode(error) ?? describeError(error);
  const fix = FIXES[code] ?? DEFAULT_FIX;
  return new FetchError(source, `cannot read the ${what} ${path} (${code}): ${fix}`, { cause: error });
}

function positiveMilliseconds(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(
      `FileFetcher ${name} must be a positive number of milliseconds, got ${JSON.stringify(value)}: ` +
        `pass a number > 0 or leave ${name} out for the default (${fallback})`,
    );
  }
  return value;
}

const silentLogger: Logger = {
  fatal: () => {},
  error: () => {},
  warn: () => {},
  info: () => {},
  debug: () => {},
  child: () => silentLogger,
};

/**
 * Takes new builds from a file on disk, such as the output of a build tool or a file a deploy
 * script copies into place. A build is handed over only once the file has stayed unchanged for
 * `settle` milliseconds, and its stream errors if the file changes while it is being read, so a
 * half-written file is never taken. The same file is not handed over twice.
 */
export class FileFetcher implements Fetcher {
  /** `file:` and the build file's absolute path. */
  readonly source: string;
  /** Milliseconds between polls. */
  readonly interval: number;
  /** Absolute path of the build file. */
  readonly path: string;
  /** Milliseconds the file must stay unchanged before it is taken. */
  readonly settle: number;
  /** Absolute path of the checksum file, when there is one. */
  readonly checksumPath: string | undefined;

  private log: Logger = silentLogger;
  /** The file as it was when its last handed-over stream ended cleanly. */
  private taken: FileIdentity | undefined;
  /** The checksum file as it was when that stream ended. */
  private takenChecksum: FileIdentity | undefined;
  /** Whether "waiting for the checksum file" was logged since it was last seen. */
  private checksumWaitLogged = false;
  /** Whether "waiting for a build" was logged since the file was last seen. */
  private waitingLogged = false;

  constructor(options: FileFetcherOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ConfigError("FileFetcher takes an options object: new FileFetcher({ path: './build/app.mjs' })");
    }
    if (typeof options.path !== 'string' || options.path.trim() === '') {
      throw new ConfigError(
        `FileFetcher path must be a non-empty string, got ${JSON.stringify(options.path)}: ` +
          "pass the file your build tool writes, e.g. new FileFetcher({ path: './build/app.mjs' })",
      );
    }
    this.path = resolve(options.path);
    this.source = `file:${this.path}`;
    this.interval = positiveMilliseconds('interval', options.interval, DEFAULT_INTERVAL);
    this.settle = positiveMilliseconds('settle', options.settle, DEFAULT_SETTLE);
    if (options.checksumPath !== undefined && (typeof options.checksumPath !== 'string' || options.checksumPath.trim() === '')) {
      throw new ConfigError(`FileFetcher checksumPath must be a non-empty string, got ${JSON.stringify(options.checksumPath)}: pass the checksum file your build tool writes, or leave it out`);
    }
    this.checksumPath = options.checksumPath === undefined ? undefined : resolve(options.checksumPath);
  }

  /** Keeps the master's logger. */
  init(context: FetcherContext): void {
    this.log = context.log;
  }

  /** Resolves to the file's bytes when it holds a build not handed over before and has stopped changing. */
  async fetch(signal: AbortSignal): Promise<FetchedBuild | undefined> {
    signal.throwIfAborted();
    const before = await this.statBuild();
    if (!before) return undefined;
    const identity = identityOf(before);
    const checksumBefore = await this.statChecksum();
    if (checksumBefore === null) return undefined;
    const checksumUnchanged = !checksumBefore || (this.takenChecksum !== undefined && sameIdentity(checksumBefore, this.takenChecksum));
    if (this.taken && sameIdentity(identity, this.taken) && checksumUnchanged) return undefined;

    await sleep(this.settle, undefined, { signal });
    const settled = await this.statBuild();
    if (!settled) return undefined;
    if (!sameIdentity(identityOf(settled), identity)) return this.stillBeingWritten();
    const checksum = await this.readChecksum();
    if (checksum === null) return undefined;
    if (checksumBefore && !(checksum && sameIdentity(checksum.identity, checksumBefore))) return this.stillBeingWritten();

    const handle = await this.openBuild();
    if (!handle) return undefined;
    let opened: Stats;
    try {
      opened = await handle.stat();
      signal.throwIfAborted();
    } catch (error) {
      await handle.close().catch(() => {});
      if (signal.aborted) throw error;
      throw this.readError(error);
    }
    // Renamed over or written between the second stat and the open: not the file that settled.
    if (!sameIdentity(identityOf(opened), identity)) {
      await handle.close().catch(() => {});
      return this.stillBeingWritten();
    }

    const stream = new SettledFileStream(handle, identity, this.path, this.source);
    stream.once('end', () => {
      this.taken = identity;
      this.takenChecksum = checksum?.identity;
    });
    addAbortSignal(signal, stream);
    return {
      stream,
      size: opened.size,
      version: opened.mtime.toISOString(),
      name: basename(this.path),
      ...(checksum ? { sha256: checksum.sha256 } : {}),
    };
  }

  /**
   * Calls `onChange` when the build file may have changed. Watches the file's directory, since a
   * build tool that writes a temporary file and renames it over the target would end a watch on
   * the file itself. Where watching is impossible, returns a no-op: polling still finds builds.
   */
  watch(onChange: () => void): () => void {
    const directory = dirname(this.path);
    const names = new Set([basename(this.path)]);
    if (this.checksumPath !== undefined && dirname(this.checksumPath) === directory) names.add(basename(this.checksumPath));
    let watcher: FSWatcher;
    try {
      watcher = watchFileSystem(directory, { persistent: false }, (_event, filename) => {
        if (filename !== null && !names.has(filename)) return;
        try {
          onChange();
        } catch (error) {
          this.log.warn({ source: this.source, err: describeError(error) }, 'build change handler failed');
        }
      });
    } catch (error) {
      this.log.debug(
        { source: this.source, directory, code: errorCode(error), err: describeError(error) },
        'cannot watch the build directory; polling only',
      );
      return () => {};
    }
    watcher.on('error', (error) => {
      this.log.debug(
        { source: this.source, directory, code: errorCode(error), err: describeError(error) },
        'watching the build directory failed; polling only',
      );
      watcher.close();
    });
    return () => watcher.close();
  }

  /** The file's stats, or undefined when there is no file yet. */
  private async statBuild(): Promise<Stats | undefined> {
    let stats: Stats;
    try {
      stats = await stat(this.path);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return this.noBuildYet();
      throw this.readError(error);
    }
    this.waitingLogged = false;
    if (stats.isDirectory()) throw this.readError(Object.assign(new Error('is a directory'), { code: 'EISDIR' }));
    if (!stats.isFile()) {
      throw new FetchError(
        this.source,
        `the build path ${this.path} is not a regular file (a FIFO, socket or device): ` +
          'point the path option at the file your build tool writes',
      );
    }
    return stats;
  }

  /** The checksum file's identity; undefined without a checksumPath, null while it does not exist. */
  private async statChecksum(): Promise<FileIdentity | undefined | null> {
    if (this.checksumPath === undefined) return undefined;
    let stats: Stats;
    try {
      stats = await stat(this.checksumPath);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return this.noChecksumYet();
      throw readError(this.source, this.checksumPath, error, 'checksum file');
    }
    this.checksumWaitLogged = false;
    if (!stats.isFile()) throw new FetchError(this.source, `the checksum path ${this.checksumPath} is not a regular file: point checksumPath at the file your build tool writes`);
    if (stats.size > CHECKSUM_FILE_LIMIT) {
      throw new FetchError(this.source, `the checksum file ${this.checksumPath} is ${stats.size} bytes, more than a checksum file has (${CHECKSUM_FILE_LIMIT}): check checksumPath`);
    }
    return identityOf(stats);
  }

  /** The SHA-256 the checksum file gives for the build, and the file's identity as read; same undefined/null as statChecksum. */
  private async readChecksum(): Promise<{ sha256: string; identity: FileIdentity } | undefined | null> {
    const identity = await this.statChecksum();
    if (identity === null) return null;
    if (identity === undefined || this.checksumPath === undefined) return undefined;
    let text: string;
    try {
      text = await readFile(this.checksumPath, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return this.noChecksumYet();
      throw readError(this.source, this.checksumPath, error, 'checksum file');
    }
    const name = basename(this.path);
    let sha256: string | undefined;
    try {
      sha256 = checksumFor(text, name, this.checksumPath);
    } catch (error) {
      throw new FetchError(this.source, `cannot use the checksum file: ${describeError(error)}`, { cause: error });
    }
    if (sha256 === undefined) {
      throw new FetchError(this.source, `the checksum file ${this.checksumPath} does not list ${name}: have the build tool write the build's SHA-256 there (sha256sum ${name})`);
    }
    return { sha256, identity };
  }

  private noChecksumYet(): null {
    if (!this.checksumWaitLogged) {
      this.checksumWaitLogged = true;
      this.log.info({ source: this.source, checksumPath: this.checksumPath }, 'waiting for the checksum file');
    }
    return null;
  }

  private async openBuild(): Promise<FileHandle | undefined> {
    try {
      return await open(this.path, 'r');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return this.noBuildYet();
      throw this.readError(error);
    }
  }

  private noBuildYet(): undefined {
    if (!this.waitingLogged) {
      this.waitingLogged = true;
      this.log.info({ source: this.source }, 'waiting for a build');
    }
    return undefined;
  }

  private stillBeingWritten(): undefined {
    this.log.debug({ source: this.source }, 'build still being written');
    return undefined;
  }

  private readError(error: unknown): FetchError {
    return readError(this.source, this.path, error);
  }
}

/**
 * The bytes of a file that settled, read through one open handle. Errors instead of ending when
 * the file is not, at the end, the file that was opened: more or fewer bytes than its size, or a
 * different identity on the handle or at the path (written in place, replaced, removed).
 */
class SettledFileStream extends Readable {
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
