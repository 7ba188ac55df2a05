import type { Readable } from 'node:stream';
import type { Logger } from '../logger.js';

/** What a fetcher knows about a build it found. Every field is optional. */
export interface BuildInfo {
  /** A human-readable version: a release tag, an ETag, a modification time. */
  version?: string;
  /** Expected SHA-256 of the bytes as fetched, in hex, when the source publishes one. */
  sha256?: string;
  /** The build's minisign signature (the text of its `.minisig` file), when the source publishes one. */
  signature?: string;
  /** Size in bytes, when known before the download ends (a Content-Length). */
  size?: number;
  /** The artifact's file name at the source (`app.mjs`, `app-linux-x64.tar.gz`), for logs. */
  name?: string;
}

/**
 * A new build: its bytes, exactly as the source publishes them, as a stream (never buffered
 * whole), and what the source says about it. Transport encodings (`Content-Encoding: gzip`) are
 * the fetcher's to undo; a file that is itself gzipped (`app.mjs.gz`) is passed on as it is.
 */
export interface FetchedBuild extends BuildInfo {
  stream: Readable;
}

/**
 * A source of builds. The master calls `fetch()` at start-up and then on a schedule; it resolves
 * to `undefined` when there is nothing new, or to the new build. Throwing (a `FetchError`, ideally)
 * is a failed fetch: the master logs it at warn level with the message and retries with backoff;
 * it never stops the master. A minimal fetcher is an object with `fetch`.
 */
export interface Fetcher {
  /** Where builds come from, for logs and status (`file:/srv/app.mjs`). Must not contain secrets. */
  readonly source?: string;
  /** Milliseconds between polls. The master adds jitter and never polls closer than `minFetchInterval`. */
  readonly interval?: number;
  /** Called once in the master before the first fetch. */
  init?(context: FetcherContext): void | Promise<void>;
  /** Resolves to a new build, or `undefined` when there is none. Stop work when `signal` aborts. */
  fetch(signal: AbortSignal): Promise<FetchedBuild | undefined>;
  /**
   * Optional push: the fetcher calls `onChange` when the source may have changed (a filesystem
   * watch fired), and the master fetches soon, still no closer than `minFetchInterval`.
   * Returns a function that stops watching.
   */
  watch?(onChange: () => void): () => void;
  /**
   * Optional: forget what was handed over last (the validators, identity or tag remembered to ask
   * "anything newer?"), so that the next fetch downloads it again. The master calls it when the
   * bytes it got did not match the published checksum or signature: they may have been damaged
   * in transit, and a conditional request would otherwise never fetch them again.
   */
  forget?(): void;
}

/** What the master tells a fetcher about the running build. */
export interface FetcherContext {
  /** Hex SHA-256 of the running build. */
  runningId: string;
  /** Version of the running build, when a fetcher reported one. */
  runningVersion?: string | undefined;
  /** Path of the running build. */
  binPath: string;
  /** The master's logger; fetchers log with it and never log secrets (tokens, auth headers). */
  log: Logger;
}
