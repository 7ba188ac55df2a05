import { posix } from 'node:path';
import { ConfigError, FetchError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checksumFor } from './checksums.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import { describeStatus, redactURL } from './http-messages.js';
import { HttpSession, firstHeader, positiveMs as positiveMsOf, safeDecode, schemeProblem, type HttpResponse } from './http-session.js';

/** Options of {@link HTTPFetcher}. */
export interface HTTPFetcherOptions {
  /** The build's URL. Userinfo (`https://user:pass@host/`) is sent as Basic auth, like `headers`. */
  url: string | URL;
  /** ms between polls; default 60_000 */
  interval?: number;
  /** extra request headers (auth); never logged, never part of `source` or error messages */
  headers?: Record<string, string>;
  /** ms to establish a connection; default 10_000 */
  connectTimeout?: number;
  /** ms for the whole response, headers and body; default 600_000 */
  timeout?: number;
  /**
   * ms with no bytes arriving before the download counts as hung; default 30_000. It also bounds
   * the wait for the response headers (as does `timeout`, whichever is shorter).
   */
  idleTimeout?: number;
  /** most redirects followed; default 5 */
  maxRedirects?: number;
  /** allow plain http to a host that is not loopback; default false */
  allowInsecureHTTP?: boolean;
  /**
   * A checksum file published beside the build (`sha256sum` output, or an `app.mjs.sha256`
   * holding one bare hash). Fetched after each new build's headers arrive; the SHA-256 it lists
   * for the build's file name becomes the build's `sha256`, which the upgrade checks. `headers`
   * (and userinfo) go to it only when it is on the same origin as `url`.
   */
  checksumUrl?: string | URL;
}

/** A checksum file bigger than this is not one. */
const CHECKSUM_FILE_LIMIT = 1024 * 1024;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the fetcher or the HTTP/1.1 connection manage; a user's value would break them. */
const MANAGED_HEADERS = new Set(['if-none-match', 'if-modified-since', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'expect', 'te']);
const ETAG_SHAPE = /^(W\/)?"[^"]*"$/;

const silentLogger: Logger = {
  fatal() {},
  error() {},
  warn() {},
  info() {},
  debug() {},
  child: () => silentLogger,
};

/** What the server said about the last build handed over, sent back to ask "anything newer?". */
interface Validators {
  etag?: string | undefined;
  lastModified?: string | undefined;
}

/**
 * Polls an HTTP(S) URL for a new build. Conditional requests (`If-None-Match`,
 * `If-Modified-Since`) make a poll with nothing new cost one small 304 response; the validators
 * are remembered only once a download has ended cleanly, so a cut-short one is fetched again.
 *
 * `Content-Encoding` (gzip, deflate, br) is undone here. A file that is itself gzipped
 * (`app.tar.gz` served without `Content-Encoding`) is handed on as the bytes it is: the upgrade
 * pipeline recognises gzip by content.
 */
export class HTTPFetcher implements Fetcher {
  /** The URL without userinfo and without its query string, both of which may hold secrets. */
  readonly source: string;
  readonly interval: number;
  readonly #url: URL;
  readonly #credentialHeaders: Record<string, string>;
  readonly #connectTimeout: number;
  readonly #timeout: number;
  readonly #idleTimeout: number;
  readonly #maxRedirects: number;
  readonly #allowInsecureHTTP: boolean;
  readonly #checksumUrl: URL | undefined;
  #validators: Validators = {};
  #log: Logger = silentLogger;

  constructor(options: HTTPFetcherOptions) {
    this.#allowInsecureHTTP = options.allowInsecureHTTP === true;
    const url = parseURL(options.url, 'url');
    const problem = schemeProblem(url, this.#allowInsecureHTTP);
    if (problem) throw new ConfigError(`HTTPFetcher url ${redactURL(url)}: ${problem}`);
    this.#credentialHeaders = validateHeaders(options.headers ?? {});
    if ((url.username || url.password) && !('authorization' in this.#credentialHeaders)) {
      const user = safeDecode(url.username);
      const password = safeDecode(url.password);
      this.#credentialHeaders.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    }
    url.username = '';
    url.password = '';
    url.hash = '';
    this.#url = url;
    this.source = redactURL(url);
    this.interval = positiveMs('interval', options.interval, 60_000);
    this.#connectTimeout = positiveMs('connectTimeout', options.connectTimeout, 10_000);
    this.#timeout = positiveMs('timeout', options.timeout, 600_000);
    this.#idleTimeout = positiveMs('idleTimeout', options.idleTimeout, 30_000);
    const maxRedirects = options.maxRedirects ?? 5;
    if (!Number.isInteger(maxRedirects) || maxRedirects < 0) {
      throw new ConfigError(`HTTPFetcher option maxRedirects must be a whole number, 0 or more; got ${String(maxRedirects)}`);
    }
    this.#maxRedirects = maxRedirects;
    if (options.checksumUrl !== undefined) {
      const checksumUrl = parseURL(options.checksumUrl, 'checksumUrl');
      const checksumProblem = schemeProblem(checksumUrl, this.#allowInsecureHTTP);
      if (checksumProblem) throw new ConfigError(`HTTPFetcher checksumUrl ${redactURL(checksumUrl)}: ${checksumProblem}`);
      this.#checksumUrl = checksumUrl;
    }
  }

  /** Keeps the master's logger; a running build whose version is an ETag spares the first download. */
  init(context: FetcherContext): void {
    this.#log = context.log;
    const running = context.runningVersion;
    if (running !== undefined && ETAG_SHAPE.test(running) && this.#validators.etag === undefined) {
      this.#validators = { etag: running };
    }
  }

  async fetch(signal: AbortSignal): Promise<FetchedBuild | undefined> {
    const session = await HttpSession.open(signal, {
      source: this.source,
      connectTimeout: this.#connectTimeout,
      timeout: this.#timeout,
      idleTimeout: this.#idleTimeout,
      maxRedirects: this.#maxRedirects,
      allowInsecureHTTP: this.#allowInsecureHTTP,
      log: this.#log,
    });
    try {
      const response = await session.get({ url: this.#url, headers: this.#validatorHeaders(), credentials: this.#credentialHeaders });
      if (response.status === 200) {
        let sha256: string | undefined;
        try {
          if (this.#checksumUrl) sha256 = await this.#publishedChecksum(session, this.#checksumUrl, response);
        } catch (error) {
          session.abandon(response);
          throw error;
        }
        return this.#handOver(session, response, sha256);
      }
      await session.discard(response);
      if (response.status === 304) return undefined;
      throw new FetchError(this.source, describeStatus(response.where, response.status));
    } finally {
      session.close();
    }
  }

  #validatorHeaders(): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.#validators.etag !== undefined) headers['if-none-match'] = this.#validators.etag;
    if (this.#validators.lastModified !== undefined) headers['if-modified-since'] = this.#validators.lastModified;
    return headers;
  }

  /** Wraps a 200's body in a stream that errors, never ends quietly, when the download is cut short. */
  #handOver(session: HttpSession, response: HttpResponse, sha256: string | undefined): FetchedBuild {
    const { headers, url } = response;
    const lengthHeader = firstHeader(headers, 'content-length');
    const expected = !HttpSession.isEncoded(response) && lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const validators: Validators = { etag: firstHeader(headers, 'etag'), lastModified: firstHeader(headers, 'last-modified') };
    const stream = session.handOver(response, expected === undefined ? undefined : { bytes: expected, from: 'Content-Length' }, (bytes) => {
      this.#validators = validators;
      this.#log.debug({ source: this.source, status: 200, bytes }, 'HTTP download ended');
    });
    const name = buildName(url);
    return {
      stream,
      ...(validators.etag ?? validators.lastModified ? { version: validators.etag ?? validators.lastModified } : {}),
      ...(expected !== undefined ? { size: expected } : {}),
      ...(name ? { name } : {}),
      ...(sha256 !== undefined ? { sha256 } : {}),
    };
  }

  /** The SHA-256 the checksum file lists for the build: by the name it was served under, else the name asked for. */
  async #publishedChecksum(session: HttpSession, checksumUrl: URL, build: HttpResponse): Promise<string> {
    const label = redactURL(checksumUrl);
    const response = await session.get({ url: checksumUrl, credentials: this.#credentialHeaders, credentialOrigin: this.#url.origin });
    if (response.status !== 200) {
      await session.discard(response);
      throw new FetchError(this.source, `checksumUrl: ${describeStatus(response.where, response.status)}`);
    }
    const text = (await session.read(response, CHECKSUM_FILE_LIMIT, 'the checksum file')).toString('utf8');
    const names = [...new Set([buildName(build.url), buildName(this.#url)])].filter((name) => name !== '');
    try {
      for (const name of names) {
        const sha256 = checksumFor(text, name, label);
        if (sha256 !== undefined) return sha256;
      }
    } catch (error) {
      throw new FetchError(this.source, `cannot use the checksum file: ${describeError(error)}`, { cause: error });
    }
    throw new FetchError(this.source, `the checksum file ${label} does not list ${names.join(' or ') || 'the build'}; publish the build's SHA-256 there, or remove checksumUrl`);
  }
}

/** The file name a URL serves, decoded. */
function buildName(url: URL): string {
  return safeDecode(posix.basename(url.pathname));
}

function parseURL(input: string | URL, option: string): URL {
  try {
    return new URL(String(input));
  } catch {
    // The text is not echoed: a mistyped URL may still hold a token.
    throw new ConfigError(`HTTPFetcher ${option} is not an absolute URL; give one such as https://releases.example.com/app.mjs`);
  }
}

function positiveMs(name: string, value: number | undefined, fallback: number): number {
  return positiveMsOf('HTTPFetcher', name, value, fallback);
}

/** Lower-cased copies of the user's headers; problems name the header, never its value. */
function validateHeaders(headers: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name)) throw new ConfigError(`HTTPFetcher headers: ${JSON.stringify(name)} is not a valid header name`);
    if (MANAGED_HEADERS.has(lower)) throw new ConfigError(`HTTPFetcher headers: ${name} is managed by the fetcher or the connection; remove it`);
    if (typeof value !== 'string' || /[\r\n\0]/.test(value)) {
      throw new ConfigError(`HTTPFetcher headers: the value of ${name} must be a string without line breaks`);
    }
    result[lower] = value;
  }
  return result;
}
