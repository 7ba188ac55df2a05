import { isIPv4 } from 'node:net';
import { Transform, pipeline, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ConfigError, FetchError } from '../errors.js';
import { explainFailure, type TimeoutsByName } from './http-messages.js';

/** Longer delays overflow Node's timers, which then fire at once. */
export const MAX_DELAY_MS = 2_147_483_647;

/** Whether plain http to this host stays on the machine. */
export function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.startsWith('127.');
}

/** A millisecond option, checked; `owner` names the fetcher in the error. */
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

/** How {@link guardDownload} reports and what it calls back. */
export interface DownloadGuard {
  /** The fetcher's `source`, carried by every FetchError. */
  source: string;
  /** Where the bytes come from, for messages; never holds a secret. */
  where: string;
  /** The byte count the body must reach (a Content-Length), when known. */
  expectedBytes: number | undefined;
  timeouts: TimeoutsByName;
  /** The body ended cleanly with every byte: only now may the fetcher remember what it got. */
  onEnd(receivedBytes: number): void;
  /** The stream is finished with, cleanly or not: release the connection. */
  onClose(): void;
}

/**
 * Pipes a response body (and any decoders after it) into a stream that fails, never ends
 * quietly, when the download is cut short or comes up short of its Content-Length. Transport
 * errors become FetchErrors that say what to check; a consumer's own error stays its own.
 */
export function guardDownload(stages: readonly (Readable | Transform)[], guard: DownloadGuard): Readable {
  const { source, where, expectedBytes, timeouts } = guard;
  const upstreamErrors = new WeakSet<object>();
  let received = 0;
  const output = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      if (expectedBytes === undefined || received === expectedBytes) return callback();
      callback(new FetchError(source, `download from ${where} ended after ${received} of ${expectedBytes} bytes (Content-Length); check the server and any proxy in between`));
    },
    destroy(error, callback) {
      const translated = error && upstreamErrors.has(error) && !(error instanceof FetchError)
        ? new FetchError(source, `download from ${where} was cut short after ${received} bytes: ${explainFailure(error, timeouts)}`, { cause: error })
        : error;
      callback(translated);
    },
  });
  for (const stage of stages) stage.on('error', (error: Error) => upstreamErrors.add(error));
  pipeline([...stages, output], () => {});
  output.once('end', () => guard.onEnd(received));
  output.once('close', () => guard.onClose());
  return output;
}
