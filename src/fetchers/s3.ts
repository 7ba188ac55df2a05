import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import { HttpSession, firstHeader, positiveMs, type HttpResponse } from './http-session.js';
import {
  checkCredentials,
  resolveCredentials,
  resolveRegion,
  resolveTarget,
  siblingTarget,
  type CredentialOrigin,
  type S3Credentials,
  type S3CredentialsProvider,
  type S3Target,
} from './s3-config.js';
import { MAX_ERROR_BODY, describeS3Failure, parseS3Error } from './s3-errors.js';
import { silentLogger } from './silent-logger.js';

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
/** A minisign signature is a few hundred bytes. */
const SIGNATURE_FILE_LIMIT = 64 * 1024;

/**
 * Polls one S3 object (AWS or an S3-compatible store) for a new build, with requests signed by
 * AWS Signature Version 4. A poll is a `GET` with `If-None-Match: <last ETag>`, so an unchanged
 * object costs one small 304; the ETag is remembered only once a download has ended cleanly.
 *
 * The build's version is its `x-amz-version-id` in a versioned bucket, else its ETag. A SHA-256
 * published with the object, as user metadata `x-amz-meta-sha256` (64 hex digits) or as S3's own
 * full-object `SHA256` checksum, is passed on for the upgrade to verify, and so is the object
 * `<key>.minisig`, a minisign signature, when there is one (fetched only with a new build). The
 * bytes are handed on as stored: an object uploaded gzipped is recognised by content downstream.
 */
export class S3Fetcher implements Fetcher {
  /** `s3://<bucket>/<key>`, plus the endpoint when it is not AWS's. */
  readonly source: string;
  readonly interval: number;
  readonly #target: S3Target;
  readonly #signatureTarget: S3Target;
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
    this.#signatureTarget = siblingTarget(this.#target, '.minisig');
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
    const session = await HttpSession.open(signal, {
      source: this.source,
      connectTimeout: this.#connectTimeout,
      timeout: this.#timeout,
      idleTimeout: this.#idleTimeout,
      maxRedirects: 0,
      // The endpoint's scheme was checked when the fetcher was made, and redirects are not followed.
      allowInsecureHTTP: true,
      log: this.#log,
    });
    try {
      const credentials = await untilAborted(this.#currentCredentials(), session.signal);
      // The signer loads only here, in the master: every worker imports this module too.
      const { default: aws4 } = await untilAborted(import('aws4'), session.signal);
      const response = await this.#get(session, aws4, credentials, this.#target, this.#etag);
      if (response.status === 304) {
        await session.discard(response);
        return undefined;
      }
      if (response.status !== 200) throw await this.#failure(session, response, credentials, this.#target);
      let signature: string | undefined;
      try {
        signature = await this.#signature(session, aws4, credentials);
      } catch (error) {
        session.abandon(response);
        throw error;
      }
      return this.#handOver(session, response, signature);
    } catch (error) {
      if (session.signal.aborted) throw session.signal.reason;
      if (error instanceof FetchError) throw error;
      if (error instanceof ConfigError) throw new FetchError(this.source, error.message, { cause: error });
      throw new FetchError(this.source, `fetch of ${this.source} failed: ${describeError(error)}`, { cause: error });
    } finally {
      session.close();
    }
  }

  /** Forgets the ETag of the object last handed over, so that the next fetch downloads it again. */
  forget(): void {
    this.#etag = undefined;
  }

  /** A signed GET of one object; S3's redirects carry an error document naming the bucket's region, so they are not followed. */
  #get(session: HttpSession, aws4: typeof import('aws4'), credentials: S3Credentials, target: S3Target, etag: string | undefined): Promise<HttpResponse> {
    const headers = this.#signedHeaders(aws4, credentials, target, etag);
    return session.get({ url: target.url, credentials: headers, label: target.source, followRedirects: false, asStored: true });
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

  #signedHeaders(aws4: typeof import('aws4'), credentials: S3Credentials, target: S3Target, etag: string | undefined): Record<string, string> {
    const { host, path, region } = target;
    const headers: Record<string, string> = {
      host,
      'x-amz-content-sha256': EMPTY_BODY_SHA256,
      // Asks S3 for the object's own SHA-256 checksum, when it was uploaded with one.
      'x-amz-checksum-mode': 'ENABLED',
    };
    if (etag !== undefined) headers['if-none-match'] = etag;
    const signed = aws4.sign({ service: 's3', region, method: 'GET', host, path, headers }, credentials);
    const result: Record<string, string> = {};
    for (const [name, value] of Object.entries(signed.headers ?? {})) {
      if (value !== undefined) result[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    }
    return result;
  }

  /** The text of `<key>.minisig`; undefined when the bucket has none. */
  async #signature(session: HttpSession, aws4: typeof import('aws4'), credentials: S3Credentials): Promise<string | undefined> {
    const target = this.#signatureTarget;
    const response = await this.#get(session, aws4, credentials, target, undefined);
    if (response.status === 200) return (await session.read(response, SIGNATURE_FILE_LIMIT, 'the signature')).toString('utf8');
    if (response.status === 404) {
      await session.discard(response);
      this.#log.debug({ source: this.source, key: target.key }, 'S3 has no signature beside the build');
      return undefined;
    }
    const failure = await this.#failure(session, response, credentials, target);
    throw new FetchError(this.source, `signature: ${failure.message}`);
  }

  /** The FetchError for an answer other than 200 or 304, from the S3 error document in its body. */
  async #failure(session: HttpSession, response: HttpResponse, credentials: S3Credentials, target: S3Target): Promise<FetchError> {
    let text: string;
    try {
      text = await readBounded(response.body, MAX_ERROR_BODY);
    } finally {
      session.abandon(response);
    }
    const message = describeS3Failure(target, {
      status: response.status,
      body: parseS3Error(text),
      bucketRegion: firstHeader(response.headers, 'x-amz-bucket-region'),
      credentialOrigin: this.#credentialOrigin,
      secrets: [credentials.secretAccessKey, credentials.sessionToken ?? ''],
    });
    return new FetchError(this.source, message);
  }

  #handOver(session: HttpSession, response: HttpResponse, signature: string | undefined): FetchedBuild {
    const { headers } = response;
    const lengthHeader = firstHeader(headers, 'content-length');
    const size = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const etag = firstHeader(headers, 'etag');
    const versionId = firstHeader(headers, 'x-amz-version-id');
    const sha256 = this.#publishedSha256(headers);
    const stream = session.handOver(response, size === undefined ? undefined : { bytes: size, from: 'Content-Length' }, (bytes) => {
      this.#etag = etag;
      this.#log.debug({ source: this.source, status: 200, bytes }, 'S3 download ended');
    });
    // An object put in a bucket before versioning was enabled has version id "null".
    const version = versionId !== undefined && versionId !== 'null' ? versionId : etag;
    const name = posix.basename(this.#target.key);
    return {
      stream,
      ...(version !== undefined ? { version } : {}),
      ...(size !== undefined ? { size } : {}),
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(signature !== undefined ? { signature } : {}),
      ...(name ? { name } : {}),
    };
  }

  /** The SHA-256 the object was published with: user metadata first, else S3's full-object checksum. */
  #publishedSha256(headers: HttpResponse['headers']): string | undefined {
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
