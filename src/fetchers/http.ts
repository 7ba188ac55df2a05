import { isIPv4 } from 'node:net';
import { posix } from 'node:path';
import { Transform, pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Agent, Dispatcher } from 'undici';
import { ConfigError, FetchError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FetchedBuild, Fetcher, FetcherContext } from './fetcher.js';
import { describeLocation, describeStatus, explainFailure, redactURL, type TimeoutsByName } from './http-messages.js';

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
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Longer delays overflow Node's timers, which then fire at once. */
const MAX_DELAY_MS = 2_147_483_647;
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
  #validators: Validators = {};
  #log: Logger = silentLogger;

  constructor(options: HTTPFetcherOptions) {
    this.#allowInsecureHTTP = options.allowInsecureHTTP === true;
    const url = parseURL(options.url);
    const problem = this.#schemeProblem(url);
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
    const controller = new AbortController();
    let failStream: ((error: FetchError) => void) | undefined;
    const stop = (error: FetchError) => {
      controller.abort(error);
      failStream?.(error);
    };
    const onCallerAbort = () => stop(new FetchError(this.source, `fetch of ${this.source} aborted`, { cause: signal.reason }));
    const deadline = setTimeout(
      () => stop(new FetchError(this.source, `fetch of ${this.source} did not finish within ${this.#timeout} ms (timeout); check the server and the network, or raise timeout`)),
      this.#timeout,
    );
    signal.addEventListener('abort', onCallerAbort, { once: true });
    if (signal.aborted) onCallerAbort();
    // undici loads only here, in the master: every worker imports this module too, and undici is heavy.
    const undici = await import('undici');
    const agent = new undici.Agent({
      connectTimeout: this.#connectTimeout,
      headersTimeout: Math.min(this.#timeout, this.#idleTimeout),
      bodyTimeout: this.#idleTimeout,
    });
    const release = () => {
      clearTimeout(deadline);
      signal.removeEventListener('abort', onCallerAbort);
      agent.destroy().catch(() => {});
    };

    const at = { url: this.#url };
    try {
      const response = await this.#follow(undici.request, agent, controller.signal, at);
      if (response.statusCode === 200) {
        const build = this.#handOver(response, at.url, release);
        failStream = (error) => build.stream.destroy(error);
        return build;
      }
      await response.body.dump();
      if (response.statusCode === 304) return undefined;
      throw new FetchError(this.source, describeStatus(describeLocation(this.source, at.url), response.statusCode));
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason;
      if (error instanceof FetchError) throw error;
      const explanation = explainFailure(error, this.#timeoutsByName());
      throw new FetchError(this.source, `fetch of ${describeLocation(this.source, at.url)} failed: ${explanation}`, { cause: error });
    } finally {
      if (!failStream) release();
    }
  }

  /** Requests the URL, following redirects by hand so that each hop is checked; `at.url` is the hop under way. */
  async #follow(request: typeof import('undici').request, agent: Agent, signal: AbortSignal, at: { url: URL }): Promise<Dispatcher.ResponseData> {
    let sameOrigin = true;
    for (let redirects = 0; ; redirects++) {
      const url = at.url;
      const response = await request(url, { dispatcher: agent, method: 'GET', headers: this.#requestHeaders(sameOrigin), signal });
      this.#log.debug({ source: this.source, status: response.statusCode }, 'HTTP fetch answered');
      if (!REDIRECT_STATUSES.has(response.statusCode)) return response;
      await response.body.dump();
      const where = describeLocation(this.source, url);
      if (redirects >= this.#maxRedirects) {
        throw new FetchError(this.source, `fetch of ${where} was redirected more than maxRedirects (${this.#maxRedirects}) times; point url at the final location or raise maxRedirects`);
      }
      const location = firstHeader(response.headers, 'location');
      const next = location !== undefined && URL.canParse(location, url.href) ? new URL(location, url) : undefined;
      if (!next) {
        throw new FetchError(this.source, `fetch of ${where} answered ${response.statusCode} without a usable Location header; check the server's redirect`);
      }
      next.username = '';
      next.password = '';
      next.hash = '';
      const problem = this.#schemeProblem(next);
      if (problem) throw new FetchError(this.source, `fetch of ${where} was redirected to ${redactURL(next)}: ${problem}`);
      // Once a hop leaves the origin the credentials stay behind, even if a later hop returns.
      if (next.origin !== this.#url.origin) sameOrigin = false;
      this.#log.debug({ source: this.source, status: response.statusCode, location: redactURL(next) }, 'HTTP fetch redirected');
      at.url = next;
    }
  }

  #requestHeaders(withCredentials: boolean): Record<string, string> {
    const headers: Record<string, string> = { 'accept-encoding': 'gzip, deflate, br', 'user-agent': 'overseer' };
    if (withCredentials) Object.assign(headers, this.#credentialHeaders);
    if (this.#validators.etag !== undefined) headers['if-none-match'] = this.#validators.etag;
    if (this.#validators.lastModified !== undefined) headers['if-modified-since'] = this.#validators.lastModified;
    return headers;
  }

  /** Wraps a 200's body in a stream that errors, never ends quietly, when the download is cut short. */
  #handOver(response: Dispatcher.ResponseData, url: URL, release: () => void): FetchedBuild {
    const { headers, body } = response;
    const decoders = contentDecoders(firstHeader(headers, 'content-encoding'));
    if (decoders === undefined) {
      body.dump().catch(() => {});
      throw new FetchError(this.source, `fetch of ${this.source} answered with a Content-Encoding this fetcher cannot decode (${firstHeader(headers, 'content-encoding')}); serve the file without it, or with gzip`);
    }
    const lengthHeader = firstHeader(headers, 'content-length');
    const expected = decoders.length === 0 && lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const validators: Validators = { etag: firstHeader(headers, 'etag'), lastModified: firstHeader(headers, 'last-modified') };
    const source = this.source;
    const timeouts = this.#timeoutsByName();
    const upstreamErrors = new WeakSet<object>();
    let received = 0;

    const guard = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback(null, chunk);
      },
      flush(callback) {
        if (expected === undefined || received === expected) return callback();
        callback(new FetchError(source, `download from ${describeLocation(source, url)} ended after ${received} of ${expected} bytes (Content-Length); check the server and any proxy in between`));
      },
      destroy(error, callback) {
        // Errors from the transport become FetchErrors; a consumer's own error stays its own.
        const translated = error && upstreamErrors.has(error) && !(error instanceof FetchError)
          ? new FetchError(source, `download from ${describeLocation(source, url)} was cut short after ${received} bytes: ${explainFailure(error, timeouts)}`, { cause: error })
          : error;
        callback(translated);
      },
    });
    const stages: (Readable | Transform)[] = [body, ...decoders];
    for (const stage of stages) stage.on('error', (error: Error) => upstreamErrors.add(error));
    pipeline([...stages, guard], () => {});
    guard.once('end', () => {
      this.#validators = validators;
      this.#log.debug({ source, status: 200, bytes: received }, 'HTTP download ended');
    });
    guard.once('close', release);

    const name = safeDecode(posix.basename(url.pathname));
    return {
      stream: guard,
      ...(validators.etag ?? validators.lastModified ? { version: validators.etag ?? validators.lastModified } : {}),
      ...(expected !== undefined ? { size: expected } : {}),
      ...(name ? { name } : {}),
    };
  }

  /** Why fetching `url` would be unsafe or impossible; undefined when it is fine. */
  #schemeProblem(url: URL): string | undefined {
    if (url.protocol === 'https:') return undefined;
    if (url.protocol !== 'http:') return `scheme ${url.protocol} is not supported; use an https:// URL (FileFetcher reads local files)`;
    if (this.#allowInsecureHTTP || isLoopback(url.hostname)) return undefined;
    return `plain http to ${url.hostname}, which is not loopback, lets anyone on the path read or replace the build; use https, or set allowInsecureHTTP: true if the network is trusted`;
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

function parseURL(input: string | URL): URL {
  try {
    return new URL(String(input));
  } catch {
    // The text is not echoed: a mistyped URL may still hold a token.
    throw new ConfigError('HTTPFetcher url is not an absolute URL; give one such as https://releases.example.com/app.mjs');
  }
}

function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.startsWith('127.');
}

function positiveMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_DELAY_MS) {
    throw new ConfigError(`HTTPFetcher option ${name} must be a number of milliseconds above 0 and at most ${MAX_DELAY_MS}; got ${String(value)}`);
  }
  return value;
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

function firstHeader(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Decoders undoing `Content-Encoding`, outermost last as sent; undefined for one not supported. */
function contentDecoders(header: string | undefined): Transform[] | undefined {
  const codings = (header ?? '').split(',').map((coding) => coding.trim().toLowerCase()).filter((coding) => coding !== '' && coding !== 'identity');
  const decoders: Transform[] = [];
  for (const coding of codings.reverse()) {
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(createGunzip());
    else if (coding === 'deflate') decoders.push(createInflate());
    else if (coding === 'br') decoders.push(createBrotliDecompress());
    else return undefined;
  }
  return decoders;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
