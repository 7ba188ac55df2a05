import type { Readable } from 'node:stream';

/** What a fetcher knows about a build it found. */
export interface BuildInfo {
  /** A human-readable version (a tag, an ETag, a modification time). */
  version?: string;
  /** Expected SHA-256 of the build's bytes, as hex, when the source publishes one. */
  sha256?: string;
  /** A minisign signature of the build, when the source publishes one. */
  signature?: string;
  /** Size in bytes, when known before the download ends. */
  size?: number;
}

/** A new build: its bytes as a stream, and what the source says about it. */
export interface FetchedBuild extends BuildInfo {
  stream: Readable;
}

/**
 * A source of builds. The master calls `fetch()` on a schedule; it resolves to `undefined` when
 * there is nothing new, or to the new build. Throwing is a failed fetch: it is logged and retried
 * with backoff, and never stops the master.
 */
export interface Fetcher {
  /** How often to poll, in milliseconds, unless the master is told otherwise. */
  readonly interval?: number;
  /** Called once in the master before the first fetch. */
  init?(context: FetcherContext): void | Promise<void>;
  fetch(signal: AbortSignal): Promise<FetchedBuild | undefined>;
}

/** What the master tells a fetcher about the running build. */
export interface FetcherContext {
  /** Hex SHA-256 of the running build. */
  runningId: string;
  /** Path of the running build. */
  binPath: string;
}
