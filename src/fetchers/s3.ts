import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { firstHeader, guardDownload, positiveMs } from './download.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import { explainFailure, type TimeoutsByName } from './http-messages.js';
import {
  checkCredentials,
  resolveCredentials,
  resolveRegion,
  resolveTarget,
  type CredentialOrigin,
  type S3Credentials,
  type S3CredentialsProvider,
  type S3Target,
} from './s3-config.js';
import { MAX_ERROR_BODY, describeS3Failure, parseS3Error } from './s3-errors.js';

export type { S3Credentials, S3CredentialsProvider } from './s3-config.js';

/** Options of {@link S3Fetcher}. */
export interface S3FetcherOptions {
  /** The bucket's name alone: `my-builds`. */
  bucket: string;
  /** The object's key: `releases/app.mjs` (no leading slash unless the key has one). */
  key: string;
  /** The bucket's region; default `AWS_REGION`, else `AWS_DEFAULT_REGION`. Required for signing, also by S3-compatible stores. */
  region?: string;
  /**
   * An S3-compatible store (MinIO, Ceph, R2, ...): `https://minio.example.com:9000`. Addressing is
   * path-style there unless `forcePathStyle: false`. Default: AWS, `https://s3.<region>.amazonaws.com`,
   * virtual-hosted (`<bucket>.s3.<region>.amazonaws.com`).
   */
  endpoint?: string | URL;
  /**
   * Keys, or a function called before every poll that returns them (for temporary credentials).
   * Default: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
   */
  credentials?: S3Credentials | S3CredentialsProvider;
  /** Address the bucket in the path (`/<bucket>/<key>`) rather than in the host name. */
  forcePathStyle?: boolean;
  /** ms between polls; default 60_000 */
  interval?: number;
  /** allow a plain http endpoint that is not loopback; default false */
  allowInsecureHTTP?: boolean;
  /** ms to establish a connection; default 10_000 */
  connectTimeout?: number;
  /** ms for the whole response, headers and body; default 600_000 */
  timeout?: number;
  /** ms with no bytes arriving before the download counts as hung (also bounds the wait for headers); default 30_000 */
  idleTimeout?: number;
}

const ETAG_SHAPE = /^(W\/)?"[^"]*"$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const SHA256_BASE64 = /^[A-Za-z0-9+/]{43}=$/;
const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const silentLogger: Logger = {
  fatal() {},
  error() {},
  warn() {},
  info() {},
  debug() {},
  child: () => silentLogger,
};

/**
 * Polls one S3 object (AWS or an S3-compatible store) for a new build, with requests signed by
 * AWS Signature Version 4. A poll is a `GET` with `If-None-Match: <last ETag>`, so an unchanged
 * object costs one small 304; the ETag is remembered only once a download has ended cleanly.
 *
 * The build's version is its `x-amz-version-id` in a versioned bucket, else its ETag. A SHA-256
 * published with the object, as user metadata `x-amz-meta-sha256` (64 hex digits) or as S3's own
 * full-object `SHA256` checksum, is passed on for the upgrade to verify. The bytes are handed on
 * as stored: an object uploaded gzipped is recognised by content downstream.
 */
export class S3Fetcher implements Fetcher {
  /** `s3://<bucket>/<key>`, plus the endpoint when it is not AWS's. */
  readonly source: string;
  readonly interval: number;
  readonly #target: S3Target;
  readonly #credentials: S3Credentials | S3CredentialsProvider;
  readonly #credentialOrigin: CredentialOrigin;
  readonly #connectTimeout: number;
  readonly #timeout: number;
  readonly #idleTimeout: number;
  #etag: string | undefined;
  #log: Logger = silentLogger;

  constructor(options: S3FetcherOptions) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('S3Fetcher needs options { bucket, key, ... }');
    const region = resolveRegion(options.region);
    this.#target = resolveTarget({
      bucket: options.bucket,
      key: options.key,
      region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      allowInsecureHTTP: options.allowInsecureHTTP === true,
    });
    this.source = this.#target.source;
    const { credentials, origin } = resolveCredentials(options.credentials);
    this.#credentials = credentials;
    this.#credentialOrigin = origin;
    this.interval = positiveMs('S3Fetcher', 'interval', options.interval, 60_000);
    this.#connectTimeout = positiveMs('S3Fetcher', 'connectTimeout', options.connectTimeout, 10_000);
    this.#timeout = positiveMs('S3Fetcher', 'timeout', options.timeout, 600_000);
    this.#idleTimeout = positiveMs('S3Fetcher', 'idleTimeout', options.idleTimeout, 30_000);
  }

  /** Keeps the master's logger; a running build whose version is the object's ETag spares the first download. */
  init(context: FetcherContext): void {
    this.#log = context.log;
    const running = context.runningVersion;
    if (running !== undefined && ETAG_SHAPE.test(running) && this.#etag === undefined) this.#etag = running;
  }

  async fetch(signal: AbortSignal): Promise<FetchedBuild | undefined> {
    const controller = new AbortController();
    let failStream: ((error: FetchError) => void) | undefined;
    const stop = (error: FetchError) => {
      controller.abort(error);
      failStream?.(error);
    };
    const onCallerAbort = () => stop(new FetchError(this.source, `fetch of ${this.source} aborted`, { cause: signal.reason }));
    const deadline = setTimeout(
      () => stop(new FetchError(this.source, `fetch of ${this.source} did not finish within ${this.#timeout} ms (timeout); check the endpoint and the network, or raise timeout`)),
      this.#timeout,
    );
    signal.addEventListener('abort', onCallerAbort, { once: true });
    if (signal.aborted) onCallerAbort();
    let agent: Agent | undefined;
    const release = () => {
      clearTimeout(deadline);
      signal.removeEventListener('abort', onCallerAbort);
      agent?.destroy().catch(() => {});
    };

    try {
      const credentials = await untilAborted(this.#currentCredentials(), controller.signal);
      // undici and the signer load only here, in the master: every worker imports this module too.
      const [undici, { default: aws4 }] = await Promise.all([import('undici'), import('aws4')]);
      controller.signal.throwIfAborted();
      agent = new undici.Agent({
        connectTimeout: this.#connectTimeout,
        headersTimeout: Math.min(this.#timeout, this.#idleTimeout),
        bodyTimeout: this.#idleTimeout,
      });
      const { origin, path } = this.#target;
      const headers = this.#signedHeaders(aws4, credentials);
      const response = await agent.request({ origin, path, method: 'GET', headers, signal: controller.signal });
      this.#log.debug({ source: this.source, status: response.statusCode }, 'S3 fetch answered');
      if (response.statusCode === 200) {
        const build = this.#handOver(response, release);
        failStream = (error) => build.stream.destroy(error);
        return build;
      }
      if (response.statusCode === 304) {
        await response.body.dump();
        return undefined;
      }
      throw await this.#failure(response, credentials);
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason;
      if (error instanceof FetchError) throw error;
      if (error instanceof ConfigError) throw new FetchError(this.source, error.message, { cause: error });
      const explanation = explainFailure(error, this.#timeoutsByName());
      throw new FetchError(this.source, `fetch of ${this.source} failed: ${explanation}`, { cause: error });
    } finally {
      if (!failStream) release();
    }
  }

  async #currentCredentials(): Promise<S3Credentials> {
    if (typeof this.#credentials !== 'function') return this.#credentials;
    let provided: unknown;
    try {
      provided = await this.#credentials();
    } catch (error) {
      throw new FetchError(this.source, `the credentials function of ${this.source} failed: ${describeError(error)}; the fetch is retried later`, { cause: error });
    }
    return checkCredentials(provided, 'provider');
  }

  #signedHeaders(aws4: typeof import('aws4'), credentials: S3Credentials): Record<string, string> {
    const { host, path, region } = this.#target;
    const headers: Record<string, string> = {
      host,
      'x-amz-content-sha256': EMPTY_BODY_SHA256,
      // Asks S3 for the object's own SHA-256 checksum, when it was uploaded with one.
      'x-amz-checksum-mode': 'ENABLED',
    };
    if (this.#etag !== undefined) headers['if-none-match'] = this.#etag;
    const signed = aws4.sign({ service: 's3', region, method: 'GET', host, path, headers }, credentials);
    const result: Record<string, string> = { 'user-agent': 'overseer' };
    for (const [name, value] of Object.entries(signed.headers ?? {})) {
      if (value !== undefined) result[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    }
    return result;
  }

  /** The FetchError for an answer other than 200 or 304, from the S3 error document in its body. */
  async #failure(response: Dispatcher.ResponseData, credentials: S3Credentials): Promise<FetchError> {
    const text = await readBounded(response.body, MAX_ERROR_BODY);
    const message = describeS3Failure(this.#target, {
      status: response.statusCode,
      body: parseS3Error(text),
      bucketRegion: firstHeader(response.headers, 'x-amz-bucket-region'),
      credentialOrigin: this.#credentialOrigin,
      secrets: [credentials.secretAccessKey, credentials.sessionToken ?? ''],
    });
    return new FetchError(this.source, message);
  }

  #handOver(response: Dispatcher.ResponseData, release: () => void): FetchedBuild {
    const { headers, body } = response;
    const lengthHeader = firstHeader(headers, 'content-length');
    const size = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const etag = firstHeader(headers, 'etag');
    const versionId = firstHeader(headers, 'x-amz-version-id');
    const sha256 = this.#publishedSha256(headers);
    const stream = guardDownload([body], {
      source: this.source,
      where: this.source,
      expectedBytes: size,
      timeouts: this.#timeoutsByName(),
      onEnd: (bytes) => {
        this.#etag = etag;
        this.#log.debug({ source: this.source, status: 200, bytes }, 'S3 download ended');
      },
      onClose: release,
    });
    // An object put in a bucket before versioning was enabled has version id "null".
    const version = versionId !== undefined && versionId !== 'null' ? versionId : etag;
    const name = posix.basename(this.#target.key);
    return {
      stream,
      ...(version !== undefined ? { version } : {}),
      ...(size !== undefined ? { size } : {}),
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(name ? { name } : {}),
    };
  }

  /** The SHA-256 the object was published with: user metadata first, else S3's full-object checksum. */
  #publishedSha256(headers: Dispatcher.ResponseData['headers']): string | undefined {
    const metadata = firstHeader(headers, 'x-amz-meta-sha256')?.trim();
    if (metadata !== undefined) {
      if (SHA256_HEX.test(metadata)) return metadata.toLowerCase();
      this.#log.warn({ source: this.source }, 'S3 object metadata sha256 is not 64 hex digits: ignored; store the hex SHA-256 of the object');
    }
    const checksum = firstHeader(headers, 'x-amz-checksum-sha256')?.trim();
    const type = firstHeader(headers, 'x-amz-checksum-type');
    // A multipart upload's COMPOSITE checksum is a hash of part hashes, not of the object.
    if (checksum !== undefined && SHA256_BASE64.test(checksum) && (type === undefined || type.toUpperCase() === 'FULL_OBJECT')) {
      return Buffer.from(checksum, 'base64').toString('hex');
    }
    return undefined;
  }

  #timeoutsByName(): TimeoutsByName {
    const headersTimeout = Math.min(this.#timeout, this.#idleTimeout);
    return {
      connectTimeout: this.#connectTimeout,
      headersTimeout,
      headersTimeoutName: headersTimeout === this.#timeout ? 'timeout' : 'idleTimeout',
      idleTimeout: this.#idleTimeout,
    };
  }
}

/** Up to `limit` characters of a body, then the rest is dropped. */
async function readBounded(body: Readable, limit: number): Promise<string> {
  let text = '';
  body.setEncoding('utf8');
  for await (const chunk of body) {
    text += chunk as string;
    if (text.length >= limit) break;
  }
  return text.slice(0, limit);
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts: a hung credentials function must not hang the poll. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
