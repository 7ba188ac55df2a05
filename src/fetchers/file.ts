import { watch as watchFileSystem, type FSWatcher, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { addAbortSignal } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checksumFor } from './checksums.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import { SettledFileStream, errorCode, identityOf, readError, sameIdentity, sameOrBothAbsent, type FileIdentity } from './settled-file.js';
import { SideFile, type SideFileContent } from './side-files.js';
import { silentLogger } from './silent-logger.js';

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
/** A checksum file bigger than this is not one. */
const CHECKSUM_FILE_LIMIT = 1024 * 1024;
/** A minisign signature is a few hundred bytes. */
const SIGNATURE_FILE_LIMIT = 64 * 1024;

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


/**
 * Takes new builds from a file on disk, such as the output of a build tool or a file a deploy
 * script copies into place. A build is handed over only once the file has stayed unchanged for
 * `settle` milliseconds, and its stream errors if the file changes while it is being read, so a
 * half-written file is never taken. The same file is not handed over twice. A minisign signature
 * written beside it, `<path>.minisig`, is read with it and settled with it; a new signature
 * offers the same build again.
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
  /** Absolute path of the signature file looked for beside the build: `<path>.minisig`. */
  readonly signaturePath: string;

  private log: Logger = silentLogger;
  private readonly checksumFile: SideFile | undefined;
  private readonly signatureFile: SideFile;
  /** The build file, checksum file and signature file as they were when the last handed-over stream ended cleanly. */
  private taken: { build: FileIdentity; checksum: FileIdentity | undefined; signature: FileIdentity | undefined } | undefined;
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
    this.signaturePath = `${this.path}.minisig`;
    const log = () => this.log;
    if (this.checksumPath !== undefined) {
      const fix = 'point checksumPath at the checksum file your build tool writes';
      this.checksumFile = new SideFile(this.checksumPath, { what: 'checksum file', option: 'checksumPath', fix, limit: CHECKSUM_FILE_LIMIT, required: true, source: this.source }, log);
    }
    const fix = 'write the minisign signature of the build there (overseer sign, or minisign -S), or nothing';
    this.signatureFile = new SideFile(this.signaturePath, { what: 'signature file', option: 'signaturePath', fix, limit: SIGNATURE_FILE_LIMIT, required: false, source: this.source }, log);
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
    const checksumBefore = await this.checksumFile?.stat();
    if (checksumBefore === null) return undefined;
    const signatureBefore = await this.signatureFile.stat();
    const { taken } = this;
    if (taken && sameIdentity(identity, taken.build) && sameOrBothAbsent(checksumBefore, taken.checksum) && sameOrBothAbsent(signatureBefore ?? undefined, taken.signature)) {
      return undefined;
    }

    await sleep(this.settle, undefined, { signal });
    const settled = await this.statBuild();
    if (!settled) return undefined;
    if (!sameIdentity(identityOf(settled), identity)) return this.stillBeingWritten();
    const checksumFile = await this.checksumFile?.read();
    if (checksumFile === null) return undefined;
    if (!sameOrBothAbsent(checksumFile?.identity, checksumBefore)) return this.stillBeingWritten();
    const signatureFile = await this.signatureFile.read();
    if (signatureFile === null || !sameOrBothAbsent(signatureFile?.identity, signatureBefore ?? undefined)) return this.stillBeingWritten();
    const sha256 = checksumFile && this.sha256From(checksumFile);

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
      this.taken = { build: identity, checksum: checksumFile?.identity, signature: signatureFile?.identity };
    });
    addAbortSignal(signal, stream);
    return {
      stream,
      size: opened.size,
      version: opened.mtime.toISOString(),
      name: basename(this.path),
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(signatureFile ? { signature: signatureFile.text } : {}),
    };
  }

  /** Forgets the file last handed over, so that the next fetch reads it again even if it has not changed. */
  forget(): void {
    this.taken = undefined;
  }

  /**
   * Calls `onChange` when the build file may have changed. Watches the file's directory, since a
   * build tool that writes a temporary file and renames it over the target would end a watch on
   * the file itself. Where watching is impossible, returns a no-op: polling still finds builds.
   */
  watch(onChange: () => void): () => void {
    const directory = dirname(this.path);
    const names = new Set([basename(this.path), basename(this.signaturePath)]);
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

  /** The SHA-256 the checksum file gives for the build. */
  private sha256From(checksumFile: SideFileContent): string {
    const name = basename(this.path);
    let sha256: string | undefined;
    try {
      sha256 = checksumFor(checksumFile.text, name, this.checksumPath);
    } catch (error) {
      throw new FetchError(this.source, `cannot use the checksum file: ${describeError(error)}`, { cause: error });
    }
    if (sha256 === undefined) {
      throw new FetchError(this.source, `the checksum file ${this.checksumPath} does not list ${name}: have the build tool write the build's SHA-256 there (sha256sum ${name})`);
    }
    return sha256;
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
