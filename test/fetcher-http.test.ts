import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { tempMarker } from './helpers/processes.js';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, FetchError } from '../src/errors.js';
import { HTTPFetcher, type HTTPFetcherOptions } from '../src/fetchers/http.js';
import type { Logger } from '../src/logger.js';
import { expectBuild, rejection, within, seededBytes as randomBytesOf } from './helpers/fetch-results.js';
import { startServer, type TestServer } from './helpers/http-server.js';
import { memoryLogger, type LoggedLine } from './helpers/memory-logger.js';
import { minisignKeys } from './helpers/minisign-keys.js';

const SECRET = 'Bearer s3cr3t-token-value';
const QUERY_SECRET = 'sig=query-secret-value';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Hashes a stream as it flows (nothing kept but the count) and resolves its SHA-256 and length. */
function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const done = new Promise<{ sha256: string; bytes: number }>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    stream.once('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
    stream.once('error', reject);
  });
  return within(done, 15_000, 'the build stream ending or failing');
}

/** The error the stream fails with; fails the test when it ends quietly. */
async function streamError(stream: Readable): Promise<unknown> {
  try {
    const result = await hashStream(stream);
    throw new Error(`the stream ended quietly after ${result.bytes} bytes instead of failing`);
  } catch (error) {
    return error;
  }
}

function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), tempMarker()));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Serves `current.body` at any path with an ETag, answering If-None-Match with a bodiless 304. */
function etagHandler(current: { body: Buffer }) {
  return (req: IncomingMessage, res: ServerResponse, server: TestServer) => {
    const etag = `"${sha256(current.body).slice(0, 16)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { etag, 'content-length': current.body.length, 'content-type': 'application/octet-stream' });
    server.write(res, current.body);
    res.end();
  };
}

/** An HTTPFetcher looking for no signature (the servers here answer any path with the build), unless `options` names one. */
function fetcherFor(options: HTTPFetcherOptions, log?: Logger): HTTPFetcher {
  return signingFetcherFor({ signatureUrl: false, ...options }, log);
}

/** An HTTPFetcher with the options as given: by default it looks for `<url>.minisig`. */
function signingFetcherFor(options: HTTPFetcherOptions, log?: Logger): HTTPFetcher {
  const fetcher = new HTTPFetcher(options);
  fetcher.init({ runningId: '0'.repeat(64), binPath: '/nonexistent/app.mjs', log: log ?? memoryLogger() });
  return fetcher;
}

const signal = () => new AbortController().signal;

describe('HTTPFetcher against its own node:http server', () => {
  it('downloads the build, then gets a bodiless 304 through the ETag, then downloads a changed build', async () => {
    const current = { body: randomBytesOf(300_000, 1) };
    const server = await startServer(cleanups, etagHandler(current));
    const fetcher = fetcherFor({ url: `${server.origin}/releases/app.mjs` });

    const first = expectBuild(await fetcher.fetch(signal()));
    expect(first.name).toBe('app.mjs');
    expect(first.size).toBe(current.body.length);
    expect(first.version).toMatch(/^"[0-9a-f]{16}"$/);
    expect(await hashStream(first.stream)).toEqual({ sha256: sha256(current.body), bytes: current.body.length });
    const bytesAfterFirst = server.bodyBytes;

    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.requests[1]?.headers['if-none-match']).toBe(first.version);
    expect(server.bodyBytes).toBe(bytesAfterFirst);

    current.body = randomBytesOf(200_000, 2);
    const changed = expectBuild(await fetcher.fetch(signal()));
    expect(changed.version).not.toBe(first.version);
    expect((await hashStream(changed.stream)).sha256).toBe(sha256(current.body));
    expect(server.requests).toHaveLength(3);
  });

  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const)('decodes Content-Encoding: %s and leaves size unknown', async (coding, compress) => {
    const body = Buffer.from('export const answer = 42;\n'.repeat(5000));
    const server = await startServer(cleanups, (req, res, self) => {
      const accepted = String(req.headers['accept-encoding'] ?? '');
      if (!accepted.includes(coding)) {
        res.writeHead(406).end();
        return;
      }
      const encoded = compress(body);
      res.writeHead(200, { 'content-encoding': coding, 'content-length': encoded.length, etag: '"v1"' });
      self.write(res, encoded);
      res.end();
    });
    const build = expectBuild(await fetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    expect(build.size).toBeUndefined();
    expect(await hashStream(build.stream)).toEqual({ sha256: sha256(body), bytes: body.length });
    expect(server.bodyBytes).toBeLessThan(body.length);
  });

  it('throws a FetchError for a Content-Encoding it cannot decode, naming it', async () => {
    const server = await startServer(cleanups, (_req, res) => res.writeHead(200, { 'content-encoding': 'zstd', 'content-length': 3 }).end('abc'));
    const error = await rejection(fetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/Content-Encoding this fetcher cannot decode \(zstd\)/);
  });

  it('fails the stream when the body is shorter than Content-Length, and downloads again next time', async () => {
    const body = randomBytesOf(100_000, 3);
    const server = await startServer(cleanups, (req, res, self) => {
      if (req.headers['if-none-match'] === '"whole"') return void res.writeHead(304, { etag: '"whole"' }).end();
      res.writeHead(200, { etag: '"whole"', 'content-length': body.length });
      if (self.requests.length === 1) {
        const partial = body.subarray(0, 40_000);
        self.bodyBytes += partial.length;
        res.write(partial, () => res.destroy()); // the partial body leaves, then the connection is cut
        return;
      }
      self.write(res, body);
      res.end();
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs` });

    const cut = expectBuild(await fetcher.fetch(signal()));
    const error = await streamError(cut.stream);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toContain(`${server.origin}/app.mjs`);

    const again = expectBuild(await fetcher.fetch(signal()));
    expect(server.requests[1]?.headers['if-none-match']).toBeUndefined();
    expect((await hashStream(again.stream)).sha256).toBe(sha256(body));
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.requests[2]?.headers['if-none-match']).toBe('"whole"');
  });

  it('does not remember a build whose stream the consumer dropped before its end', async () => {
    const current = { body: randomBytesOf(2_000_000, 4) };
    const server = await startServer(cleanups, etagHandler(current));
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs` });
    const dropped = expectBuild(await fetcher.fetch(signal()));
    await within(new Promise((resolve) => dropped.stream.once('data', resolve)), 10_000, 'a first chunk');
    dropped.stream.destroy();
    const again = expectBuild(await fetcher.fetch(signal()));
    expect(server.requests[1]?.headers['if-none-match']).toBeUndefined();
    expect((await hashStream(again.stream)).sha256).toBe(sha256(current.body));
  });

  it('streams: memory stays flat while a build far bigger than it flows through', async () => {
    const size = 256 * 1024 * 1024;
    const chunk = randomBytesOf(64 * 1024, 8);
    const server = await startServer(cleanups, (_req, res) => {
      res.writeHead(200, { 'content-length': size });
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const build = expectBuild(await fetcherFor({ url: `${server.origin}/big.bin` }).fetch(signal()));
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = baseline;
    let chunks = 0;
    build.stream.on('data', () => {
      if (++chunks % 64 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    });
    const { bytes } = await hashStream(build.stream);
    expect(bytes).toBe(size);
    expect(peak - baseline).toBeLessThan(size / 4);
  });

  it('throws a FetchError naming the status and the source for a 500', async () => {
    const server = await startServer(cleanups, (_req, res) => res.writeHead(500).end('boom'));
    const error = await rejection(fetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).code).toBe('ERR_OVERSEER_FETCH');
    expect((error as FetchError).message).toMatch(/500/);
    expect((error as FetchError).message).toContain(`${server.origin}/app.mjs`);
    expect((error as FetchError).source).toBe(`${server.origin}/app.mjs`);
  });

  it('throws a FetchError when the server never sends headers, bounded by timeout', async () => {
    const server = await startServer(cleanups, () => {
      // never answers
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs`, timeout: 300 });
    const error = await rejection(fetcher.fetch(signal()), 10_000);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/within 300 ms \(timeout/);
    expect(server.requests).toHaveLength(1);
  });

  it('fails the stream when the body stalls midway for idleTimeout', async () => {
    const body = randomBytesOf(50_000, 5);
    const server = await startServer(cleanups, (_req, res, self) => {
      res.writeHead(200, { 'content-length': body.length, etag: '"stall"' });
      self.write(res, body.subarray(0, 10_000)); // and nothing more, connection left open
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs`, idleTimeout: 300 });
    const build = expectBuild(await fetcher.fetch(signal()));
    const error = await streamError(build.stream);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/idleTimeout/);
  });

  it('fails the stream when a trickling body outlasts timeout, though it is never idle', async () => {
    const server = await startServer(cleanups, (_req, res, self) => {
      res.writeHead(200, { 'content-length': 1_000_000 });
      const trickle = setInterval(() => self.write(res, Buffer.alloc(10)), 20);
      res.once('close', () => clearInterval(trickle));
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs`, timeout: 600, idleTimeout: 5_000 });
    const build = expectBuild(await fetcher.fetch(signal()));
    const error = await streamError(build.stream);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/within 600 ms \(timeout\)/);
  });

  it('honours the AbortSignal before headers and during the body', async () => {
    const server = await startServer(cleanups, (req, res, self) => {
      if (req.url === '/hang') return;
      res.writeHead(200, { 'content-length': 100_000 });
      self.write(res, Buffer.alloc(1000));
    });
    const beforeHeaders = new AbortController();
    const pending = fetcherFor({ url: `${server.origin}/hang` }).fetch(beforeHeaders.signal);
    await server.waitForRequests(1);
    beforeHeaders.abort();
    expect(await rejection(pending, 10_000)).toBeInstanceOf(FetchError);

    const duringBody = new AbortController();
    const build = expectBuild(await fetcherFor({ url: `${server.origin}/slow` }).fetch(duringBody.signal));
    await within(new Promise((resolve) => build.stream.once('data', resolve)), 10_000, 'a first chunk');
    duringBody.abort();
    const error = await streamError(build.stream);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/aborted/);
  });

  it('throws a FetchError naming ECONNREFUSED when nothing listens', async () => {
    const port = await freePort();
    const error = await rejection(fetcherFor({ url: `http://127.0.0.1:${port}/app.mjs` }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/ECONNREFUSED/);
  });

  it('asks with the running ETag from init, so the first poll after a restart costs a 304', async () => {
    const current = { body: Buffer.from('running build') };
    const server = await startServer(cleanups, etagHandler(current));
    const etag = `"${sha256(current.body).slice(0, 16)}"`;
    const fetcher = new HTTPFetcher({ url: `${server.origin}/app.mjs` });
    fetcher.init({ runningId: sha256(current.body), runningVersion: etag, binPath: '/x/app.mjs', log: memoryLogger() });
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.bodyBytes).toBe(0);
  });
});

describe('HTTPFetcher redirects', () => {
  it('follows redirects, names the build after the final path, and sends headers within the origin', async () => {
    const body = Buffer.from('final build');
    const server = await startServer(cleanups, (req, res, self) => {
      if (req.url === '/latest') return void res.writeHead(302, { location: '/v2/app-v2.mjs?x=1' }).end();
      self.write(res.writeHead(200, { 'content-length': body.length }), body);
      res.end();
    });
    const fetcher = fetcherFor({ url: `${server.origin}/latest`, headers: { authorization: SECRET } });
    const build = expectBuild(await fetcher.fetch(signal()));
    expect(build.name).toBe('app-v2.mjs');
    expect((await hashStream(build.stream)).sha256).toBe(sha256(body));
    expect(server.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/latest', SECRET],
      ['/v2/app-v2.mjs?x=1', SECRET],
    ]);
  });

  it('drops the custom headers on a redirect to another origin', async () => {
    const body = Buffer.from('mirror build');
    const mirror = await startServer(cleanups, (_req, res, self) => {
      self.write(res.writeHead(200, { 'content-length': body.length }), body);
      res.end();
    });
    const origin = await startServer(cleanups, (_req, res) => res.writeHead(307, { location: `${mirror.origin}/app.mjs` }).end());
    const fetcher = fetcherFor({ url: `${origin.origin}/app.mjs`, headers: { authorization: SECRET, 'x-api-key': 'key-1' } });
    const build = expectBuild(await fetcher.fetch(signal()));
    expect((await hashStream(build.stream)).sha256).toBe(sha256(body));
    expect(origin.requests[0]?.headers.authorization).toBe(SECRET);
    expect(origin.requests[0]?.headers['x-api-key']).toBe('key-1');
    expect(mirror.requests).toHaveLength(1);
    expect(mirror.requests[0]?.headers.authorization).toBeUndefined();
    expect(mirror.requests[0]?.headers['x-api-key']).toBeUndefined();
  });

  it('stops after maxRedirects with a FetchError naming the limit', async () => {
    const server = await startServer(cleanups, (req, res) => {
      const hop = Number(req.url?.split('/')[2] ?? 0);
      res.writeHead(301, { location: `/hop/${hop + 1}` }).end();
    });
    const error = await rejection(fetcherFor({ url: `${server.origin}/hop/0`, maxRedirects: 2 }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/more than maxRedirects \(2\)/);
    expect(server.requests).toHaveLength(3);
  });

  it('refuses a redirect to plain http of a host that is not loopback', async () => {
    const server = await startServer(cleanups, (_req, res) => res.writeHead(302, { location: `http://downloads.example.com/app.mjs?${QUERY_SECRET}` }).end());
    const error = await rejection(fetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/downloads\.example\.com.*allowInsecureHTTP: true/);
    expect((error as FetchError).message).not.toContain(QUERY_SECRET);
  });
});

describe('HTTPFetcher configuration and secrets', () => {
  it('rejects plain http to a host that is not loopback unless allowInsecureHTTP', () => {
    expect(() => new HTTPFetcher({ url: 'http://releases.example.com/app.mjs' })).toThrow(ConfigError);
    expect(() => new HTTPFetcher({ url: 'http://releases.example.com/app.mjs' })).toThrow(/use https, or set allowInsecureHTTP: true/);
    expect(new HTTPFetcher({ url: 'http://releases.example.com/app.mjs', allowInsecureHTTP: true }).source).toBe('http://releases.example.com/app.mjs');
    for (const url of ['http://127.0.0.1:8080/a', 'http://127.8.9.10/a', 'http://localhost/a', 'http://[::1]:9/a', 'https://releases.example.com/a']) {
      expect(() => new HTTPFetcher({ url })).not.toThrow();
    }
    expect(() => new HTTPFetcher({ url: 'http://128.0.0.1/a' })).toThrow(/allowInsecureHTTP/);
  });

  const bad: Array<[string, HTTPFetcherOptions, RegExp]> = [
    ['a relative URL', { url: 'releases/app.mjs' }, /not an absolute URL/],
    ['an ftp URL', { url: 'ftp://example.com/app.mjs' }, /scheme ftp: is not supported; use an https:\/\/ URL/],
    ['interval 0', { url: 'https://x.example/a', interval: 0 }, /interval must be a number of milliseconds above 0/],
    ['timeout NaN', { url: 'https://x.example/a', timeout: Number.NaN }, /timeout must be/],
    ['idleTimeout -1', { url: 'https://x.example/a', idleTimeout: -1 }, /idleTimeout must be/],
    ['connectTimeout Infinity', { url: 'https://x.example/a', connectTimeout: Number.POSITIVE_INFINITY }, /connectTimeout must be/],
    ['maxRedirects 1.5', { url: 'https://x.example/a', maxRedirects: 1.5 }, /maxRedirects must be a whole number/],
    ['a header with a line break', { url: 'https://x.example/a', headers: { authorization: 'a\r\nb' } }, /value of authorization must be a string without line breaks/],
    ['a managed header', { url: 'https://x.example/a', headers: { 'If-None-Match': '"x"' } }, /If-None-Match is managed by the fetcher/],
  ];
  it.each(bad)('rejects %s with a ConfigError', (_name, options, message) => {
    expect(() => new HTTPFetcher(options)).toThrow(ConfigError);
    expect(() => new HTTPFetcher(options)).toThrow(message);
  });

  it('keeps userinfo and the query string out of source, sends userinfo as Basic auth', async () => {
    const server = await startServer(cleanups, (_req, res) => res.writeHead(404).end());
    const fetcher = fetcherFor({ url: `http://deploy:pa%40ss@127.0.0.1:${server.port}/app.mjs?${QUERY_SECRET}#frag` });
    expect(fetcher.source).toBe(`http://127.0.0.1:${server.port}/app.mjs`);
    const error = await rejection(fetcher.fetch(signal()));
    expect((error as FetchError).message).toMatch(/HTTP 404; check the URL/);
    expect(server.requests[0]?.url).toBe(`/app.mjs?${QUERY_SECRET}`);
    expect(server.requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from('deploy:pa@ss').toString('base64')}`);
    for (const text of [fetcher.source, (error as FetchError).message]) {
      expect(text).not.toContain('pa%40ss');
      expect(text).not.toContain(QUERY_SECRET);
    }
  });

  it('never puts header values in source, error messages or logs', async () => {
    const lines: LoggedLine[] = [];
    const server = await startServer(cleanups, (req, res) => {
      if (req.url?.startsWith('/hang')) return;
      if (req.url?.startsWith('/loop')) return void res.writeHead(302, { location: '/loop' }).end();
      res.writeHead(req.url?.startsWith('/denied') ? 403 : 500).end();
    });
    const closedPort = await freePort();
    const urls = [`${server.origin}/denied?${QUERY_SECRET}`, `${server.origin}/broken`, `${server.origin}/hang`, `${server.origin}/loop`, `http://127.0.0.1:${closedPort}/app.mjs`];
    const messages: string[] = [];
    for (const url of urls) {
      const fetcher = fetcherFor({ url, headers: { authorization: SECRET, 'x-token': SECRET }, timeout: 300 }, memoryLogger(lines));
      messages.push(fetcher.source);
      const error = await rejection(fetcher.fetch(signal()));
      expect(error).toBeInstanceOf(FetchError);
      messages.push((error as FetchError).message);
    }
    expect(messages.some((message) => /HTTP 403; check the credentials/.test(message))).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((line) => line.level === 'debug')).toBe(true);
    for (const text of [...messages, ...lines.map((line) => line.text)]) {
      expect(text).not.toContain('s3cr3t');
      expect(text).not.toContain(QUERY_SECRET);
    }
  });
});

/** A port nothing listens on: bound to port 0 by a net server, then closed. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface PythonServer {
  origin: string;
  /** Status codes of the requests it logged, in order (`"GET /app.mjs HTTP/1.1" 304 -`). */
  statuses: number[];
  /** Resolves once it has logged `count` requests. */
  logged(count: number): Promise<void>;
}

/** `python3 -m http.server`, a server nobody here wrote, on a free port of 127.0.0.1. */
async function startPythonServer(directory: string): Promise<PythonServer> {
  const port = await freePort();
  const child: ChildProcess = spawn('python3', ['-u', '-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', directory], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  const statuses: number[] = [];
  const waiters = new Set<() => void>();
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    for (const match of chunk.matchAll(/"GET [^"]*" (\d{3}) /g)) statuses.push(Number(match[1]));
    for (const waiter of waiters) waiter();
  });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  try {
    await within(acceptsConnections(port, exited), 15_000, `python3 -m http.server accepting on port ${port}`);
  } catch (error) {
    throw new Error(`${(error as Error).message}; its output:\n${output}`);
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    statuses,
    logged: (count) =>
      within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (statuses.length < count) return;
            waiters.delete(check);
            resolve();
          };
          waiters.add(check);
          check();
        }),
        10_000,
        `python logging ${count} requests (logged: ${statuses.join(', ')})`,
      ),
  };
}

/** Resolves once a connection to `port` succeeds; retries after each refusal while the process lives. */
async function acceptsConnections(port: number, exited: Promise<void>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error('python3 exited before accepting connections');
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('HTTPFetcher against python3 -m http.server', () => {
  it('downloads, gets a 304 through Last-Modified / If-Modified-Since, and downloads a changed file', async () => {
    const dir = makeTempDir();
    const file = join(dir, 'app.mjs');
    const original = randomBytesOf(250_000, 6);
    writeFileSync(file, original);
    utimesSync(file, new Date('2024-01-01T00:00:00Z'), new Date('2024-01-01T00:00:00Z'));
    const python = await startPythonServer(dir);
    const fetcher = fetcherFor({ url: `${python.origin}/app.mjs` });

    const first = expectBuild(await fetcher.fetch(signal()));
    expect(first.version).toBe('Mon, 01 Jan 2024 00:00:00 GMT');
    expect(first.size).toBe(original.length);
    expect(first.name).toBe('app.mjs');
    expect(await hashStream(first.stream)).toEqual({ sha256: sha256(original), bytes: original.length });

    expect(await fetcher.fetch(signal())).toBeUndefined();
    await python.logged(2);
    expect(python.statuses).toEqual([200, 304]);

    const changed = randomBytesOf(120_000, 7);
    writeFileSync(file, changed);
    utimesSync(file, new Date('2024-02-01T00:00:00Z'), new Date('2024-02-01T00:00:00Z'));
    const second = expectBuild(await fetcher.fetch(signal()));
    expect(second.version).toBe('Thu, 01 Feb 2024 00:00:00 GMT');
    expect((await hashStream(second.stream)).sha256).toBe(sha256(changed));
    await python.logged(3);
    expect(python.statuses).toEqual([200, 304, 200]);
  });

  it('passes a .gz file served without Content-Encoding through as the gzip bytes it is', async () => {
    const dir = makeTempDir();
    const gzipped = gzipSync(Buffer.from('export default 1;\n'.repeat(1000)));
    writeFileSync(join(dir, 'app.mjs.gz'), gzipped);
    const python = await startPythonServer(dir);
    const build = expectBuild(await fetcherFor({ url: `${python.origin}/app.mjs.gz` }).fetch(signal()));
    expect(build.name).toBe('app.mjs.gz');
    expect(build.size).toBe(gzipped.length);
    expect((await hashStream(build.stream)).sha256).toBe(sha256(gzipped));
  });

  it('throws a FetchError naming 404 for a missing file', async () => {
    const python = await startPythonServer(makeTempDir());
    const error = await rejection(fetcherFor({ url: `${python.origin}/missing.mjs` }).fetch(signal()));
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/HTTP 404/);
  });
});

describe('HTTPFetcher checksumUrl', () => {
  it('sets sha256 from the checksum file on new builds only, and sends the headers to it within the origin', async () => {
    const body = Buffer.from('export const checked = true;\n');
    const sums = { text: `# release 7\n${sha256(body)}  app.mjs\n${'0'.repeat(64)}  other.mjs\n` };
    const server = await startServer(cleanups, (req, res, self) => {
      if (req.url === '/SHA256SUMS') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(sums.text);
      if (req.headers['if-none-match'] === '"c1"') return void res.writeHead(304, { etag: '"c1"' }).end();
      self.write(res.writeHead(200, { 'content-length': body.length, etag: '"c1"' }), body);
      res.end();
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs`, checksumUrl: `${server.origin}/SHA256SUMS`, headers: { authorization: SECRET } });
    const build = expectBuild(await fetcher.fetch(signal()));
    expect(build.sha256).toBe(sha256(body));
    expect((await hashStream(build.stream)).sha256).toBe(sha256(body));
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/app.mjs', SECRET],
      ['/SHA256SUMS', SECRET],
      ['/app.mjs', SECRET],
    ]);
    expect(server.requests[1]?.headers['if-none-match']).toBeUndefined();

    sums.text = `${sha256(body)}  another-build.mjs\n`;
    const unlisted = await rejection(fetcherFor({ url: `${server.origin}/app.mjs`, checksumUrl: `${server.origin}/SHA256SUMS` }).fetch(signal()));
    expect(unlisted).toBeInstanceOf(FetchError);
    expect((unlisted as FetchError).message).toMatch(/checksum file .*\/SHA256SUMS does not list app\.mjs/);

    sums.text = 'not a checksum\n';
    const malformed = await rejection(fetcherFor({ url: `${server.origin}/app.mjs`, checksumUrl: `${server.origin}/SHA256SUMS` }).fetch(signal()));
    expect((malformed as FetchError).message).toMatch(/SHA256SUMS line 1 is not a checksum line/);
  });

  it('takes a bare hash from another origin without sending it the headers, and fails on its 404', async () => {
    const body = Buffer.from('mirrored sum');
    const sums = await startServer(cleanups, (req, res) => {
      if (req.url === '/app.mjs.sha256') return void res.writeHead(200).end(`${sha256(body)}\n`);
      res.writeHead(404).end();
    });
    const server = await startServer(cleanups, (_req, res, self) => {
      self.write(res.writeHead(200, { 'content-length': body.length }), body);
      res.end();
    });
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs`, checksumUrl: `${sums.origin}/app.mjs.sha256`, headers: { authorization: SECRET } });
    const build = expectBuild(await fetcher.fetch(signal()));
    expect(build.sha256).toBe(sha256(body));
    await hashStream(build.stream);
    expect(server.requests[0]?.headers.authorization).toBe(SECRET);
    expect(sums.requests[0]?.headers.authorization).toBeUndefined();

    const missing = await rejection(fetcherFor({ url: `${server.origin}/app.mjs`, checksumUrl: `${sums.origin}/gone.sha256` }).fetch(signal()));
    expect((missing as FetchError).message).toMatch(/^checksumUrl: fetch of .*\/gone\.sha256 answered HTTP 404/);
  });
});

describe('HTTPFetcher signatures and forget', () => {
  /** Serves the build at /app.mjs with an ETag, and `signature.text` (404 when undefined) at /app.mjs.minisig. */
  async function signedServer(body: Buffer, signature: { text: string | undefined }) {
    const build = etagHandler({ body });
    return startServer(cleanups, (req, res, server) => {
      if (req.url === '/app.mjs.minisig') {
        if (signature.text === undefined) return void res.writeHead(404).end('not found');
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(signature.text);
      }
      build(req, res, server);
    });
  }

  it('fetches <url>.minisig with a new build, sending it the headers, and makes no signature request on a 304 poll', async () => {
    const dir = makeTempDir();
    const body = randomBytesOf(40_000, 11);
    const buildFile = join(dir, 'app.mjs');
    writeFileSync(buildFile, body);
    const signature = { text: minisignKeys(dir, 'release').signatureOf(buildFile) as string | undefined };
    const server = await signedServer(body, signature);
    const fetcher = signingFetcherFor({ url: `${server.origin}/app.mjs`, headers: { authorization: SECRET } });

    const build = expectBuild(await fetcher.fetch(signal()));
    expect(build.signature).toBe(signature.text);
    expect(await hashStream(build.stream)).toEqual({ sha256: sha256(body), bytes: body.length });
    expect(server.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
      ['/app.mjs', SECRET],
      ['/app.mjs.minisig', SECRET],
    ]);

    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.requests.map((request) => request.url)).toEqual(['/app.mjs', '/app.mjs.minisig', '/app.mjs']);
  });

  it('takes a 404 for the signature as no signature published: signature undefined', async () => {
    const body = Buffer.from('export default "unsigned";\n');
    const server = await signedServer(body, { text: undefined });
    const build = expectBuild(await signingFetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    expect(build.signature).toBeUndefined();
    expect(await hashStream(build.stream)).toEqual({ sha256: sha256(body), bytes: body.length });
    expect(server.requests.map((request) => request.url)).toEqual(['/app.mjs', '/app.mjs.minisig']);
  });

  it('takes signatureUrl from another origin without the headers, asks for none with false, and fails on a 500 naming the option', async () => {
    const body = Buffer.from('export default "mirrored";\n');
    const signatures = await startServer(cleanups, (req, res) => {
      if (req.url === '/sigs/app.minisig') return void res.writeHead(200).end('untrusted comment: x\nRWQ\n');
      res.writeHead(500).end();
    });
    const server = await signedServer(body, { text: 'never asked for' });
    const mirrored = expectBuild(await signingFetcherFor({ url: `${server.origin}/app.mjs`, signatureUrl: `${signatures.origin}/sigs/app.minisig`, headers: { authorization: SECRET } }).fetch(signal()));
    expect(mirrored.signature).toBe('untrusted comment: x\nRWQ\n');
    await hashStream(mirrored.stream);
    expect(signatures.requests[0]?.headers.authorization).toBeUndefined();
    expect(server.requests.map((request) => request.url)).toEqual(['/app.mjs']);

    const none = expectBuild(await signingFetcherFor({ url: `${server.origin}/app.mjs`, signatureUrl: false }).fetch(signal()));
    expect(none.signature).toBeUndefined();
    await hashStream(none.stream);
    expect(server.requests.map((request) => request.url)).toEqual(['/app.mjs', '/app.mjs']);

    const failing = await rejection(signingFetcherFor({ url: `${server.origin}/app.mjs`, signatureUrl: `${signatures.origin}/broken.minisig` }).fetch(signal()));
    expect(failing.message).toMatch(/^signatureUrl: fetch of .*\/broken\.minisig answered HTTP 500.*signatureUrl: false/);
  });

  it('turns a build body cut short while the signature was being fetched into a FetchError naming the server', async () => {
    const body = randomBytesOf(100_000, 13);
    const server = await startServer(cleanups, (req, res) => {
      if (req.url === '/app.mjs.minisig') return void setTimeout(() => res.writeHead(404).end(), 300);
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 1000), () => res.socket?.destroy());
    });
    const build = expectBuild(await signingFetcherFor({ url: `${server.origin}/app.mjs` }).fetch(signal()));
    const error = await streamError(build.stream);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(/download from http:\/\/127\.0\.0\.1:\d+\/app\.mjs was cut short/);
  });

  it('forget() drops the validators: the next fetch asks without them and downloads the build again', async () => {
    const current = { body: randomBytesOf(20_000, 12) };
    const server = await startServer(cleanups, etagHandler(current));
    const fetcher = fetcherFor({ url: `${server.origin}/app.mjs` });
    await hashStream(expectBuild(await fetcher.fetch(signal())).stream);
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(server.requests[1]?.headers['if-none-match']).toBeDefined();

    fetcher.forget();
    const again = expectBuild(await fetcher.fetch(signal()));
    expect(server.requests[2]?.headers['if-none-match']).toBeUndefined();
    expect(await hashStream(again.stream)).toEqual({ sha256: sha256(current.body), bytes: current.body.length });
  });
});
