import { isIPv4 } from 'node:net';
import { Transform, pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Agent, Dispatcher } from 'undici';
import { ConfigError, FetchError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeLocation, explainFailure, redactURL, type TimeoutsByName } from './http-messages.js';

/** Longer delays overflow Node's timers, which then fire at once. */
export const MAX_DELAY_MS = 2_147_483_647;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The limits every request of a session runs under, in ms. */
export interface HttpTimeouts {
  /** to establish a connection */
  connectTimeout: number;
  /** for the whole session: every request and the body handed over */
  timeout: number;
  /** with no bytes arriving; also bounds the wait for response headers */
  idleTimeout: number;
}

/** How a session behaves; shared by every fetcher that speaks HTTP. */
export interface HttpSessionOptions extends HttpTimeouts {
  /** The fetcher's `source`, for errors and logs. */
  source: string;
  /** Most redirects followed per request. */
  maxRedirects: number;
  /** Allow plain http to a host that is not loopback. */
  allowInsecureHTTP: boolean;
  log: Logger;
}

/** One GET. */
export interface HttpRequest {
  url: URL;
  /** Sent on every hop, this fetcher's own headers (Accept, validators). */
  headers?: Record<string, string>;
  /**
   * Sent only while every hop so far stayed in `credentialOrigin`: once a redirect leaves it
   * they stay behind, even if a later hop comes back.
   */
  credentials?: Record<string, string>;
  /** The origin the credentials belong to; default the request URL's origin. */
  credentialOrigin?: string;
  /** How messages name the request; default the URL without userinfo, query or fragment. */
  label?: string;
  /** Follow redirects (default true); false hands a 3xx answer back as it is. */
  followRedirects?: boolean;
  /**
   * Ask for and undo no transport encoding (default false): the body is handed on as stored,
   * as an object store serves it, with whatever Content-Encoding it was uploaded with.
   */
  asStored?: boolean;
}

/** A response whose headers arrived; its body is still to be read, discarded or handed over. */
export interface HttpResponse {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  /** The hop that answered (after redirects), without userinfo or fragment. */
  url: URL;
  /** How messages name it: the URL asked for, and where a redirect led. */
  where: string;
  body: Dispatcher.ResponseData['body'];
  /** The request asked for the body as stored: no Content-Encoding is undone. */
  asStored: boolean;
}

/** What a body handed over should amount to, once decoded. */
export interface ExpectedSize {
  bytes: number;
  /** Where the number comes from, for the message when it is not met (`Content-Length`). */
  from: string;
}

/**
 * The requests one `fetch()` makes, on one undici agent, under one deadline and the caller's
 * AbortSignal. Redirects are followed by hand so each hop is checked (scheme, count) and
 * credentials never leave their origin. Transport failures become `FetchError`s that say what to
 * check. A body handed over as a stream keeps the session open until the stream closes; else
 * `close()` ends it.
 */
export class HttpSession {
  readonly #options: HttpSessionOptions;
  readonly #controller = new AbortController();
  readonly #callerSignal: AbortSignal;
  readonly #deadline: NodeJS.Timeout;
  readonly #onCallerAbort: () => void;
  #undici: typeof import('undici') | undefined;
  #agent: Agent | undefined;
  #handedOver: Readable | undefined;
  #closed = false;

  private constructor(signal: AbortSignal, options: HttpSessionOptions) {
    this.#options = options;
    this.#callerSignal = signal;
    const { source, timeout } = options;
    this.#onCallerAbort = () => this.#stop(new FetchError(source, `fetch of ${source} aborted`, { cause: signal.reason }));
    this.#deadline = setTimeout(
      () => this.#stop(new FetchError(source, `fetch of ${source} did not finish within ${timeout} ms (timeout); check the server and the network, or raise timeout`)),
      timeout,
    );
    signal.addEventListener('abort', this.#onCallerAbort, { once: true });
    if (signal.aborted) this.#onCallerAbort();
  }

  /** Starts a session; undici loads only here, in the master (workers import fetchers too, and undici is heavy). */
  static async open(signal: AbortSignal, options: HttpSessionOptions): Promise<HttpSession> {
    const session = new HttpSession(signal, options);
    try {
      session.#undici = await import('undici');
    } catch (error) {
      session.close();
      throw error;
    }
    session.#agent = new session.#undici.Agent({
      connectTimeout: options.connectTimeout,
      headersTimeout: Math.min(options.timeout, options.idleTimeout),
      bodyTimeout: options.idleTimeout,
    });
    return session;
  }

  /** Requests `request.url`, following redirects; resolves once the final hop's headers arrived. */
  async get(request: HttpRequest): Promise<HttpResponse> {
    const label = request.label ?? redactURL(request.url);
    const first = stripUserinfo(request.url);
    let url = first;
    const whereNow = () => (url === first ? label : describeLocation(label, url));
    const credentialOrigin = request.credentialOrigin ?? url.origin;
    const asStored = request.asStored === true;
    let withCredentials = url.origin === credentialOrigin;
    const problem = schemeProblem(url, this.#options.allowInsecureHTTP);
    if (problem) throw new FetchError(this.#options.source, `fetch of ${label}: ${problem}`);
    try {
      for (let redirects = 0; ; redirects++) {
        const headers: Record<string, string> = { ...(asStored ? {} : { 'accept-encoding': 'gzip, deflate, br' }), 'user-agent': 'overseer', ...request.headers };
        if (withCredentials) Object.assign(headers, request.credentials);
        const response = await this.#undici!.request(url, { dispatcher: this.#agent!, method: 'GET', headers, signal: this.#controller.signal });
        const where = whereNow();
        this.#options.log.debug({ source: this.#options.source, status: response.statusCode }, 'HTTP fetch answered');
        if (!REDIRECT_STATUSES.has(response.statusCode) || request.followRedirects === false) {
          return { status: response.statusCode, headers: response.headers, url, where, body: response.body, asStored };
        }
        await response.body.dump();
        const { source, maxRedirects } = this.#options;
        if (redirects >= maxRedirects) {
          throw new FetchError(source, `fetch of ${where} was redirected more than maxRedirects (${maxRedirects}) times; point url at the final location or raise maxRedirects`);
        }
        const location = firstHeader(response.headers, 'location');
        const next = location !== undefined && URL.canParse(location, url.href) ? stripUserinfo(new URL(location, url)) : undefined;
        if (!next) throw new FetchError(source, `fetch of ${where} answered ${response.statusCode} without a usable Location header; check the server's redirect`);
        const hopProblem = schemeProblem(next, this.#options.allowInsecureHTTP);
        if (hopProblem) throw new FetchError(source, `fetch of ${where} was redirected to ${redactURL(next)}: ${hopProblem}`);
        if (next.origin !== credentialOrigin) withCredentials = false;
        this.#options.log.debug({ source, status: response.statusCode, location: redactURL(next) }, 'HTTP fetch redirected');
        url = next;
      }
    } catch (error) {
      throw this.#translate(error, whereNow());
    }
  }

  /** Aborts, with a `FetchError` as its reason, when the caller aborts or the session's deadline passes: bound other waits with it. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Reads a response's body away, so its connection can be reused. */
  async discard(response: HttpResponse): Promise<void> {
    await response.body.dump().catch(() => {});
  }

  /** Drops a response whose body will not be read; the session's end closes its connection. */
  abandon(response: HttpResponse): void {
    response.body.on('error', () => {});
    response.body.destroy();
  }

  /** Reads a small body whole, decoded; a body past `limit` bytes is a `FetchError` naming `what`. */
  async read(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
    const { stream } = this.#decodedStream(response, undefined);
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limit) {
          throw new FetchError(this.#options.source, `${what} from ${response.where} is larger than ${limit} bytes; check that it is the right file`);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      stream.destroy();
      throw this.#translate(error, response.where);
    }
    return Buffer.concat(chunks);
  }

  /**
   * Hands a body over as a stream that errors, never ends quietly, when the download is cut
   * short or does not add up to `expected`. `onEnd` runs once it ended cleanly. The session
   * stays open until the stream closes.
   */
  handOver(response: HttpResponse, expected: ExpectedSize | undefined, onEnd: (bytes: number) => void): Readable {
    const { stream, received } = this.#decodedStream(response, expected);
    stream.once('end', () => onEnd(received()));
    this.#handedOver = stream;
    stream.once('close', () => this.#release());
    return stream;
  }

  /** Whether the body arrives with a Content-Encoding (its Content-Length then counts encoded bytes). */
  static isEncoded(response: HttpResponse): boolean {
    return !response.asStored && contentCodings(firstHeader(response.headers, 'content-encoding')).length > 0;
  }

  /** Ends the session unless a body was handed over (the stream's close ends it then). Idempotent. */
  close(): void {
    if (!this.#handedOver) this.#release();
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#deadline);
    this.#callerSignal.removeEventListener('abort', this.#onCallerAbort);
    this.#agent?.destroy().catch(() => {});
  }

  #stop(error: FetchError): void {
    this.#controller.abort(error);
    this.#handedOver?.destroy(error);
  }

  #translate(error: unknown, where: string): unknown {
    if (this.#controller.signal.aborted) return this.#controller.signal.reason;
    if (error instanceof FetchError) return error;
    return new FetchError(this.#options.source, `fetch of ${where} failed: ${explainFailure(error, this.#timeoutsByName())}`, { cause: error });
  }

  /** The body through its Content-Encoding decoders and a guard that turns transport errors into FetchErrors. */
  #decodedStream(response: HttpResponse, expected: ExpectedSize | undefined): { stream: Transform; received: () => number } {
    const { source } = this.#options;
    const { where } = response;
    const decoders = response.asStored ? [] : contentDecoders(firstHeader(response.headers, 'content-encoding'));
    if (decoders === undefined) {
      response.body.dump().catch(() => {});
      throw new FetchError(source, `fetch of ${where} answered with a Content-Encoding this fetcher cannot decode (${firstHeader(response.headers, 'content-encoding')}); serve the file without it, or with gzip`);
    }
    const timeouts = this.#timeoutsByName();
    const upstreamErrors = new WeakSet<object>();
    let received = 0;
    const guard = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback(null, chunk);
      },
      flush(callback) {
        if (expected === undefined || received === expected.bytes) return callback();
        callback(new FetchError(source, `download from ${where} ended after ${received} of ${expected.bytes} bytes (${expected.from}); check the server and any proxy in between`));
      },
      destroy(error, callback) {
        // Errors from the transport become FetchErrors; a consumer's own error stays its own.
        const translated = error && upstreamErrors.has(error) && !(error instanceof FetchError)
          ? new FetchError(source, `download from ${where} was cut short after ${received} bytes: ${explainFailure(error, timeouts)}`, { cause: error })
          : error;
        callback(translated);
      },
    });
    const stages: (Readable | Transform)[] = [response.body, ...decoders];
    for (const stage of stages) {
      // The body may have failed already, while a checksum or signature was being fetched.
      if (stage.errored) upstreamErrors.add(stage.errored);
      stage.on('error', (error: Error) => upstreamErrors.add(error));
    }
    pipeline([...stages, guard], () => {});
    return { stream: guard, received: () => received };
  }

  #timeoutsByName(): TimeoutsByName {
    const { connectTimeout, timeout, idleTimeout } = this.#options;
    const headersTimeout = Math.min(timeout, idleTimeout);
    return { connectTimeout, headersTimeout, headersTimeoutName: headersTimeout === timeout ? 'timeout' : 'idleTimeout', idleTimeout };
  }
}

/** A copy without userinfo and fragment. */
function stripUserinfo(url: URL): URL {
  const copy = new URL(url);
  copy.username = '';
  copy.password = '';
  copy.hash = '';
  return copy;
}

/** Why fetching `url` would be unsafe or impossible; undefined when it is fine. */
export function schemeProblem(url: URL, allowInsecureHTTP: boolean): string | undefined {
  if (url.protocol === 'https:') return undefined;
  if (url.protocol !== 'http:') return `scheme ${url.protocol} is not supported; use an https:// URL (FileFetcher reads local files)`;
  if (allowInsecureHTTP || isLoopback(url.hostname)) return undefined;
  return `plain http to ${url.hostname}, which is not loopback, lets anyone on the path read or replace the build; use https, or set allowInsecureHTTP: true if the network is trusted`;
}

export function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.startsWith('127.');
}

/** A duration option: `fallback` when absent, else a number of ms in (0, MAX_DELAY_MS]. */
export function positiveMs(owner: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_DELAY_MS) {
    throw new ConfigError(`${owner} option ${name} must be a number of milliseconds above 0 and at most ${MAX_DELAY_MS}; got ${String(value)}`);
  }
  return value;
}

export function firstHeader(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Decoders undoing `Content-Encoding`, outermost last as sent; undefined for one not supported. */
function contentDecoders(header: string | undefined): Transform[] | undefined {
  const decoders: Transform[] = [];
  for (const coding of contentCodings(header).reverse()) {
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(createGunzip());
    else if (coding === 'deflate') decoders.push(createInflate());
    else if (coding === 'br') decoders.push(createBrotliDecompress());
    else return undefined;
  }
  return decoders;
}

function contentCodings(header: string | undefined): string[] {
  return (header ?? '').split(',').map((coding) => coding.trim().toLowerCase()).filter((coding) => coding !== '' && coding !== 'identity');
}

export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
