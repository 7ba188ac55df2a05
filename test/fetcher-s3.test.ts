import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, FetchError } from '../src/errors.js';
import type { FetchedBuild } from '../src/fetchers/fetcher.js';
import { S3Fetcher, type S3FetcherOptions } from '../src/fetchers/s3.js';
import { resolveTarget } from '../src/fetchers/s3-config.js';
import type { Logger } from '../src/logger.js';
import { S3_CREDENTIALS, S3_REGION, S3TestServer } from './helpers/s3-server.js';

const BUCKET = 'builds';
const WRONG_SECRET = 'wrong-secret-4f9a1c77e2d0b8';
const SESSION_TOKEN = 'session-token-value-91d2c5';
const AWS_VARIABLES = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION'] as const;

let store: S3TestServer;
const savedEnvironment = new Map<string, string | undefined>();
const cleanups: Array<() => void | Promise<void>> = [];

beforeEach(async () => {
  for (const name of AWS_VARIABLES) {
    savedEnvironment.set(name, process.env[name]);
    delete process.env[name];
  }
  store = await new S3TestServer().start();
  await store.createBucket(BUCKET);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await store.close();
  for (const [name, value] of savedEnvironment) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
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

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  return within(done, 15_000, 'the build stream ending');
}

async function rejection(promise: Promise<unknown>): Promise<FetchError> {
  const outcome = await within(
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    15_000,
    'the fetch settling',
  );
  if (outcome.ok) throw new Error(`the fetch resolved (${outcome.value === undefined ? 'undefined' : 'a build'}) instead of failing`);
  expect(outcome.error).toBeInstanceOf(FetchError);
  return outcome.error as FetchError;
}

function expectBuild(build: FetchedBuild | undefined): FetchedBuild {
  if (!build) throw new Error('the fetch resolved undefined where a build was expected');
  return build;
}

function recordingLogger(lines: Array<{ level: string; text: string }>): Logger {
  const at = (level: string) => (objOrMsg: unknown, msg?: string) => lines.push({ level, text: JSON.stringify([objOrMsg, msg]) });
  const logger: Logger = { fatal: at('fatal'), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => logger };
  return logger;
}

function fetcherFor(options: Partial<S3FetcherOptions> & { key: string }, log: Logger = recordingLogger([])): S3Fetcher {
  const fetcher = new S3Fetcher({ bucket: BUCKET, region: S3_REGION, endpoint: store.endpoint, credentials: { ...S3_CREDENTIALS }, ...options });
  fetcher.init({ runningId: '0'.repeat(64), binPath: '/nonexistent/app.mjs', log });
  return fetcher;
}

function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const signal = () => new AbortController().signal;

describe('S3Fetcher against s3rver', () => {
  it('downloads a changed object with its ETag as version, and skips an unchanged one with a bodiless 304', async () => {
    const key = 'releases/app.mjs';
    const v1 = bytes(200_000, 1);
    const etag1 = await store.putObject(BUCKET, key, v1);
    const fetcher = fetcherFor({ key });
    expect(fetcher.source).toBe(`s3://${BUCKET}/${key} (${store.endpoint})`);
    expect(fetcher.interval).toBe(60_000);

    const first = expectBuild(await fetcher.fetch(signal()));
    expect(first).toMatchObject({ version: etag1, size: v1.length, name: 'app.mjs' });
    expect(first.sha256).toBeUndefined();
    expect((await readAll(first.stream)).equals(v1)).toBe(true);

    expect(await fetcher.fetch(signal())).toBeUndefined();
    const [firstGet, secondGet] = store.gets(BUCKET, key);
    expect(firstGet?.status).toBe(200);
    expect(secondGet).toMatchObject({ status: 304 });
    expect(secondGet?.headers['if-none-match']).toBe(etag1);

    const v2 = bytes(150_000, 2);
    const etag2 = await store.putObject(BUCKET, key, v2);
    expect(etag2).not.toBe(etag1);
    const changed = expectBuild(await fetcher.fetch(signal()));
    expect(changed).toMatchObject({ version: etag2, size: v2.length });
    expect((await readAll(changed.stream)).equals(v2)).toBe(true);
    expect(store.gets(BUCKET, key).map((answer) => answer.status)).toEqual([200, 304, 200]);
  });

  it('remembers the ETag only once a download ended cleanly: a download dropped half way is fetched again', async () => {
    const key = 'app.mjs';
    const body = bytes(2_000_000, 3);
    await store.putObject(BUCKET, key, body);
    const fetcher = fetcherFor({ key });

    const dropped = expectBuild(await fetcher.fetch(signal()));
    const closed = new Promise((resolve) => dropped.stream.once('close', resolve));
    dropped.stream.destroy();
    await within(closed, 5000, 'the dropped stream closing');

    const again = expectBuild(await fetcher.fetch(signal()));
    expect(sha256(await readAll(again.stream))).toBe(sha256(body));
    expect(store.gets(BUCKET, key).map((answer) => answer.headers['if-none-match'])).toEqual([undefined, undefined]);
    expect(await fetcher.fetch(signal())).toBeUndefined();
  });

  it('fails with SignatureDoesNotMatch for a wrong secret, naming the object and the option to fix, never the secret', async () => {
    const key = 'app.mjs';
    await store.putObject(BUCKET, key, 'export {};\n');
    const fetcher = fetcherFor({ key, credentials: { accessKeyId: S3_CREDENTIALS.accessKeyId, secretAccessKey: WRONG_SECRET, sessionToken: SESSION_TOKEN } });

    const error = await rejection(fetcher.fetch(signal()));
    expect(error.code).toBe('ERR_OVERSEER_FETCH');
    expect(error.source).toBe(fetcher.source);
    expect(error.message).toMatch(/HTTP 403 SignatureDoesNotMatch/);
    expect(error.message).toContain(`s3://${BUCKET}/${key}`);
    expect(error.message).toContain('credentials.secretAccessKey');
    const everything = `${error.message} ${String(error.stack)} ${JSON.stringify(error)}`;
    expect(everything).not.toContain(WRONG_SECRET);
    expect(everything).not.toContain(SESSION_TOKEN);
    expect(everything).not.toMatch(/Signature=|X-Amz-/i);
    expect(store.gets(BUCKET, key).at(-1)?.status).toBe(403);
  });

  it("reports the store's InvalidAccessKeyId for an access key id it does not know", async () => {
    await store.putObject(BUCKET, 'app.mjs', 'export {};\n');
    const error = await rejection(fetcherFor({ key: 'app.mjs', credentials: { accessKeyId: 'NOSUCHKEYID', secretAccessKey: WRONG_SECRET } }).fetch(signal()));
    expect(error.message).toMatch(/HTTP 403 InvalidAccessKeyId.*credentials\.accessKeyId/);
    expect(error.message).not.toContain(WRONG_SECRET);
  });

  it('fails with NoSuchKey for a missing key and NoSuchBucket for a missing bucket, each naming what to check', async () => {
    const missingKey = await rejection(fetcherFor({ key: 'releases/missing.mjs' }).fetch(signal()));
    expect(missingKey.message).toMatch(/HTTP 404 NoSuchKey; bucket builds has no object releases\/missing\.mjs; check key/);
    expect(missingKey.message).toContain(`s3://${BUCKET}/releases/missing.mjs`);

    const missingBucket = await rejection(fetcherFor({ bucket: 'no-such-bucket', key: 'app.mjs' }).fetch(signal()));
    expect(missingBucket.message).toMatch(/HTTP 404 NoSuchBucket; there is no bucket no-such-bucket at this endpoint; check bucket and endpoint/);
  });

  it('signs with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, in AWS_REGION, when no option gives them', async () => {
    const key = 'env/app.mjs';
    const body = bytes(10_000, 4);
    await store.putObject(BUCKET, key, body);
    process.env.AWS_ACCESS_KEY_ID = S3_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3_CREDENTIALS.secretAccessKey;
    process.env.AWS_SESSION_TOKEN = SESSION_TOKEN;
    process.env.AWS_REGION = S3_REGION;
    const fetcher = new S3Fetcher({ bucket: BUCKET, key, endpoint: store.endpoint });

    const build = expectBuild(await fetcher.fetch(signal()));
    expect((await readAll(build.stream)).equals(body)).toBe(true);
    const [get] = store.gets(BUCKET, key);
    expect(get?.status).toBe(200);
    expect(get?.headers['x-amz-security-token']).toBe(SESSION_TOKEN);
    expect(get?.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${S3_CREDENTIALS.accessKeyId}/\\d{8}/${S3_REGION}/s3/aws4_request, SignedHeaders=[^,]*x-amz-security-token`));

    process.env.AWS_SECRET_ACCESS_KEY = WRONG_SECRET;
    const wrong = await rejection(new S3Fetcher({ bucket: BUCKET, key, endpoint: store.endpoint }).fetch(signal()));
    expect(wrong.message).toMatch(/SignatureDoesNotMatch.*AWS_SECRET_ACCESS_KEY/);
    expect(wrong.message).not.toContain(WRONG_SECRET);
  });

  it('passes the x-amz-meta-sha256 metadata on as sha256, and ignores (with a warning) metadata that is not 64 hex digits', async () => {
    const body = bytes(5000, 5);
    await store.putObject(BUCKET, 'signed.mjs', body, { sha256: sha256(body).toUpperCase() });
    const build = expectBuild(await fetcherFor({ key: 'signed.mjs' }).fetch(signal()));
    expect(build.sha256).toBe(sha256(body));
    await readAll(build.stream);

    await store.putObject(BUCKET, 'odd.mjs', body, { sha256: 'not-a-hash' });
    const lines: Array<{ level: string; text: string }> = [];
    const odd = expectBuild(await fetcherFor({ key: 'odd.mjs' }, recordingLogger(lines)).fetch(signal()));
    expect(odd.sha256).toBeUndefined();
    expect(lines.filter((line) => line.level === 'warn').map((line) => line.text).join('\n')).toMatch(/sha256 is not 64 hex digits/);
    await readAll(odd.stream);
  });

  it('fetches a key with spaces, a plus and parentheses, encoded as S3 signs it', async () => {
    const key = 'releases/v1.2 (beta)+x/app [1].mjs';
    const body = Buffer.from('export const odd = true;\n');
    await store.putObject(BUCKET, key, body);
    const build = expectBuild(await fetcherFor({ key }).fetch(signal()));
    expect(build.name).toBe('app [1].mjs');
    expect((await readAll(build.stream)).equals(body)).toBe(true);
  });
});

/** A node:http stand-in for answers s3rver cannot give (versioned buckets, checksums, redirects, silence). */
async function fakeStore(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('S3Fetcher against answers s3rver does not give', () => {
  it("takes x-amz-version-id as the version and S3's full-object SHA256 checksum as sha256", async () => {
    const body = Buffer.from('export const versioned = 1;\n');
    const seen: IncomingMessage[] = [];
    const endpoint = await fakeStore((req, res) => {
      seen.push(req);
      res.writeHead(200, {
        etag: '"abc"',
        'x-amz-version-id': '3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY',
        'x-amz-checksum-sha256': createHash('sha256').update(body).digest('base64'),
        'x-amz-checksum-type': 'FULL_OBJECT',
        'content-length': body.length,
      });
      res.end(body);
    });
    const build = expectBuild(await fetcherFor({ key: 'app.mjs', endpoint }).fetch(signal()));
    expect(build).toMatchObject({ version: '3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY', sha256: sha256(body) });
    expect(seen[0]?.headers['x-amz-checksum-mode']).toBe('ENABLED');
    await readAll(build.stream);
  });

  it('names the region to set when S3 answers PermanentRedirect', async () => {
    const endpoint = await fakeStore((_req, res) => {
      res.writeHead(301, { 'content-type': 'application/xml', 'x-amz-bucket-region': 'eu-west-2' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><RequestId>R1</RequestId></Error>');
    });
    const error = await rejection(fetcherFor({ key: 'app.mjs', endpoint }).fetch(signal()));
    expect(error.message).toMatch(/HTTP 301 PermanentRedirect; the bucket is in region eu-west-2, not us-east-1; set region to eu-west-2 \(request id R1\)/);
  });

  it('fails with a FetchError naming the timeout when the store never answers', async () => {
    const endpoint = await fakeStore(() => {});
    const error = await rejection(fetcherFor({ key: 'app.mjs', endpoint, idleTimeout: 300 }).fetch(signal()));
    expect(error.message).toMatch(/no response headers within 300 ms \(idleTimeout/);
    expect(error.message).toContain(`s3://${BUCKET}/app.mjs`);
  });
});

describe('S3Fetcher options', () => {
  it('needs a region: the option, else AWS_REGION, else AWS_DEFAULT_REGION', () => {
    const base = { bucket: BUCKET, key: 'app.mjs', credentials: { ...S3_CREDENTIALS } };
    expect(() => new S3Fetcher(base)).toThrow(ConfigError);
    expect(() => new S3Fetcher(base)).toThrow(/pass region .* or set AWS_REGION/);
    process.env.AWS_DEFAULT_REGION = 'eu-central-1';
    expect(new S3Fetcher(base).source).toBe(`s3://${BUCKET}/app.mjs`);
    expect(() => new S3Fetcher({ ...base, region: 'eu-west-1.evil.example' })).toThrow(/not a region name/);
  });

  it('needs credentials, whole, and never echoes them', () => {
    const base = { bucket: BUCKET, key: 'app.mjs', region: S3_REGION };
    expect(() => new S3Fetcher(base)).toThrow(/set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    process.env.AWS_ACCESS_KEY_ID = 'AKIDONLY';
    expect(() => new S3Fetcher(base)).toThrow(/found AWS_ACCESS_KEY_ID in the environment but not AWS_SECRET_ACCESS_KEY/);
    expect(() => new S3Fetcher({ ...base, credentials: { accessKeyId: 'AKID', secretAccessKey: `${WRONG_SECRET}\n` } })).toThrow(/secretAccessKey must be/);
    try {
      new S3Fetcher({ ...base, credentials: { accessKeyId: 'AKID', secretAccessKey: `${WRONG_SECRET}\n` } });
    } catch (error) {
      expect(String(error)).not.toContain(WRONG_SECRET);
    }
  });

  it('refuses plain http to a host that is not loopback, and userinfo in the endpoint', () => {
    const base = { bucket: BUCKET, key: 'app.mjs', region: S3_REGION, credentials: { ...S3_CREDENTIALS } };
    expect(() => new S3Fetcher({ ...base, endpoint: 'http://minio.example.com:9000' })).toThrow(/not loopback.*allowInsecureHTTP/);
    expect(new S3Fetcher({ ...base, endpoint: 'http://minio.example.com:9000', allowInsecureHTTP: true }).source).toBe(`s3://${BUCKET}/app.mjs (http://minio.example.com:9000)`);
    expect(() => new S3Fetcher({ ...base, endpoint: `https://user:${WRONG_SECRET}@minio.example.com` })).toThrow(/must not carry userinfo/);
    expect(() => new S3Fetcher({ ...base, bucket: 's3://builds' })).toThrow(/not a bucket name/);
  });

  it('calls a credentials function before every poll, and turns its failure into a FetchError', async () => {
    await store.putObject(BUCKET, 'app.mjs', 'export {};\n');
    let calls = 0;
    const fetcher = fetcherFor({ key: 'app.mjs', credentials: async () => ({ ...S3_CREDENTIALS, sessionToken: `token-${++calls}` }) });
    await readAll(expectBuild(await fetcher.fetch(signal())).stream);
    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(store.gets(BUCKET, 'app.mjs').map((answer) => answer.headers['x-amz-security-token'])).toEqual(['token-1', 'token-2']);

    const failing = fetcherFor({ key: 'app.mjs', credentials: () => Promise.reject(new Error('no role to assume')) });
    expect((await rejection(failing.fetch(signal()))).message).toMatch(/credentials function .* failed: no role to assume/);

    const hung = fetcherFor({ key: 'app.mjs', credentials: () => new Promise(() => {}), timeout: 300 });
    expect((await rejection(hung.fetch(signal()))).message).toMatch(/did not finish within 300 ms \(timeout\)/);
  });

  it("addresses AWS virtual-hosted by default, path-style for a dotted bucket or on request, and a custom endpoint path-style", () => {
    const target = (options: Partial<Parameters<typeof resolveTarget>[0]>) =>
      resolveTarget({ bucket: 'my-builds', key: 'releases/app (1).mjs', region: 'eu-west-1', allowInsecureHTTP: false, ...options });
    expect(target({})).toMatchObject({ origin: 'https://my-builds.s3.eu-west-1.amazonaws.com', path: '/releases/app%20%281%29.mjs', source: 's3://my-builds/releases/app (1).mjs' });
    expect(target({ bucket: 'builds.example.com' })).toMatchObject({ host: 's3.eu-west-1.amazonaws.com', path: '/builds.example.com/releases/app%20%281%29.mjs' });
    expect(target({ forcePathStyle: true })).toMatchObject({ host: 's3.eu-west-1.amazonaws.com', path: '/my-builds/releases/app%20%281%29.mjs' });
    expect(target({ region: 'cn-north-1' }).host).toBe('my-builds.s3.cn-north-1.amazonaws.com.cn');
    expect(target({ endpoint: 'https://minio.example.com:9000/s3/' })).toMatchObject({ origin: 'https://minio.example.com:9000', path: '/s3/my-builds/releases/app%20%281%29.mjs', source: 's3://my-builds/releases/app (1).mjs (https://minio.example.com:9000/s3)' });
    expect(target({ endpoint: 'https://r2.example.com', forcePathStyle: false })).toMatchObject({ host: 'my-builds.r2.example.com', path: '/releases/app%20%281%29.mjs' });
  });
});
