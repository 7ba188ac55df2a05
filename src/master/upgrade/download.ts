import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BuildRejectedError } from '../../errors.js';

/** Hashes what passes through and stops the stream once more than `maxBytes` went by. */
class HashingLimit extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly what: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(new BuildRejectedError(`${this.what} is larger than maxBuildSize (${this.maxBytes} bytes): raise maxBuildSize if this build is meant to be that big`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

/** How often a download still under way says how far it got. */
export const PROGRESS_EVERY_MS = 2000;

/** What a download reports while it runs. */
export interface DownloadProgress {
  bytes: number;
  /** The size the source announced, when it did. */
  size: number | undefined;
  /** Whole percent of `size`, when known. */
  percent: number | undefined;
  bytesPerSecond: number;
}

export interface Downloaded {
  /** Hex SHA-256 of the bytes as the source published them: what checksums and signatures cover. */
  sha256: string;
  bytes: number;
}

/**
 * Streams a build to `path`, hashing on the way and stopping past `maxBytes`; memory use does not
 * grow with the build's size. A stream that errors (a truncated download) leaves no file behind.
 */
export async function download(
  stream: Readable,
  path: string,
  options: { maxBytes: number; signal: AbortSignal; size?: number | undefined; onProgress?: (progress: DownloadProgress) => void },
): Promise<Downloaded> {
  const limit = new HashingLimit(options.maxBytes, 'the build');
  const began = Date.now();
  // A timer, not a check per chunk: a fast download says nothing, a long one speaks every few seconds.
  const progress = setInterval(() => {
    const size = options.size;
    options.onProgress?.({
      bytes: limit.bytes,
      size,
      percent: size ? Math.min(100, Math.floor((limit.bytes / size) * 100)) : undefined,
      bytesPerSecond: Math.round(limit.bytes / ((Date.now() - began) / 1000)),
    });
  }, PROGRESS_EVERY_MS);
  try {
    await pipeline(stream, limit, createWriteStream(path, { mode: 0o600 }), { signal: options.signal });
  } catch (error) {
    stream.destroy();
    await rm(path, { force: true });
    throw error;
  } finally {
    clearInterval(progress);
  }
  return { sha256: limit.hash.digest('hex'), bytes: limit.bytes };
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

export async function isGzip(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await file.read(head, 0, 2, 0);
    return bytesRead === 2 && head.equals(GZIP_MAGIC);
  } finally {
    await file.close();
  }
}

/** Gunzips `from` into `to` (a gzipped single-file build); resolves with the hex SHA-256 of what was written. */
export async function gunzipFile(from: string, to: string, maxBytes: number): Promise<string> {
  const limit = new HashingLimit(maxBytes, 'the gunzipped build');
  try {
    await pipeline(createReadStream(from), createGunzip(), limit, createWriteStream(to, { mode: 0o600 }));
  } catch (error) {
    await rm(to, { force: true });
    if (error instanceof BuildRejectedError) throw error;
    throw new BuildRejectedError(`the build starts like gzip but does not gunzip (${(error as Error).message}): publish it whole, or uncompressed`, { cause: error });
  }
  return limit.hash.digest('hex');
}
