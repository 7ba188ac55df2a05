import type { Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { FetchError } from '../errors.js';
import type { Logger } from '../logger.js';
import { errorCode, identityOf, readError, sameIdentity, type FileIdentity } from './settled-file.js';

/** How a {@link SideFile} is named in messages and what its absence means. */
export interface SideFileOptions {
  /** `checksum file`, `signature file`. */
  what: string;
  /** The option that names the file, for the field of the "waiting for" line (`checksumPath`). */
  option: string;
  /** What to do when it is not a regular file or is too big to be one of its kind. */
  fix: string;
  /** A file bigger than this is not one of its kind. */
  limit: number;
  /** The build is not taken until the file exists (a checksum the user asked for), rather than taken without it. */
  required: boolean;
  /** The fetcher's `source`, carried by every FetchError. */
  source: string;
}

/** A side file as read: its text, and its identity, unchanged while it was read. */
export interface SideFileContent {
  text: string;
  identity: FileIdentity;
}

/**
 * A small file a build tool writes beside the build (a checksum file, a minisign signature),
 * looked at before and after the build settles so that it is taken with the build it belongs to.
 *
 * `stat` and `read` resolve to `undefined` when the file does not exist (and is not required),
 * and to `null` when a required file does not exist yet or the file changed while it was read:
 * the fetch then waits for a later poll.
 */
export class SideFile {
  /** Whether "waiting for" this file was logged since it was last seen. */
  #waitLogged = false;

  constructor(
    readonly path: string,
    private readonly options: SideFileOptions,
    private readonly log: () => Logger,
  ) {}

  /** The file's identity, without reading it. */
  async stat(): Promise<FileIdentity | undefined | null> {
    try {
      return this.#checked(await stat(this.path));
    } catch (error) {
      return this.#absent(error);
    }
  }

  /** The file's text and the identity it had while it was read. */
  async read(): Promise<SideFileContent | undefined | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch (error) {
      return this.#absent(error);
    }
    try {
      const identity = this.#checked(await handle.stat());
      const text = await handle.readFile('utf8');
      // Written in place while it was read: the text may be half of it.
      if (!sameIdentity(identityOf(await handle.stat()), identity)) return null;
      return { text, identity };
    } catch (error) {
      if (error instanceof FetchError) throw error;
      throw readError(this.options.source, this.path, error, this.options.what);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  #checked(stats: Stats): FileIdentity {
    const { what, fix, limit, source } = this.options;
    this.#waitLogged = false;
    if (!stats.isFile()) throw new FetchError(source, `the ${what} ${this.path} is not a regular file: ${fix}`);
    if (stats.size > limit) throw new FetchError(source, `the ${what} ${this.path} is ${stats.size} bytes, more than a ${what} has (${limit}): ${fix}`);
    return identityOf(stats);
  }

  #absent(error: unknown): undefined | null {
    const { what, option, required, source } = this.options;
    if (errorCode(error) !== 'ENOENT') throw readError(source, this.path, error, what);
    if (!required) return undefined;
    if (!this.#waitLogged) {
      this.#waitLogged = true;
      this.log().info({ source, [option]: this.path }, `waiting for the ${what}`);
    }
    return null;
  }
}
