import type { Readable } from 'node:stream';
import { expect } from 'vitest';
import { FetchError } from '../../src/errors.js';
import type { FetchedBuild } from '../../src/fetchers/fetcher.js';

/** `promise`, or a rejection saying `what` did not happen when it has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every byte of a build stream; rejects with the stream's error, or when it has not ended within `ms`. */
export function readAll(stream: Readable, ms = 15_000): Promise<Buffer> {
  const done = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
  return within(done, ms, 'the build stream ending');
}

/** The FetchError a fetch fails with; fails the test when it resolves or fails otherwise. */
export async function rejection(promise: Promise<unknown>, ms = 15_000): Promise<FetchError> {
  const outcome = await within(
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    ms,
    'the fetch settling',
  );
  if (outcome.ok) throw new Error(`the fetch resolved (${outcome.value === undefined ? 'undefined' : 'a build'}) instead of failing`);
  expect(outcome.error).toBeInstanceOf(FetchError);
  return outcome.error as FetchError;
}

/** The build a fetch resolved to; fails the test when it resolved undefined. */
export function expectBuild(build: FetchedBuild | undefined): FetchedBuild {
  if (!build) throw new Error('the fetch resolved undefined where a build was expected');
  return build;
}

/** `size` bytes that look random but are the same for the same `seed` (a build that does not compress). */
export function seededBytes(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}
