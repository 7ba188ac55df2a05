import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import aws4 from 'aws4';
import { request } from 'undici';
import { tempMarker } from './processes.js';

const require = createRequire(import.meta.url);

/** The part of s3rver (a Koa app, untyped) these tests use. */
interface S3rverApp {
  middleware: Array<(ctx: KoaContext, next: () => Promise<void>) => Promise<void>>;
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
interface KoaContext {
  req: IncomingMessage;
  res: ServerResponse;
  status: number;
  type: string;
  body: unknown;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverApp;

/** s3rver's built-in key pair; its account registry knows no other. */
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const S3_REGION = 'us-east-1';

/** One request the store answered. */
export interface S3Answer {
  method: string;
  path: string;
  /** 0 until the answer has been sent or cut short. */
  status: number;
  headers: IncomingHttpHeaders;
}

/**
 * s3rver (an S3-compatible store from npm) on 127.0.0.1, port 0, storing under a temporary
 * directory named with the test run's marker.
 *
 * s3rver checks V2 signatures but accepts any V4 signature from a known access key id, so a front
 * middleware checks V4 ones: it signs the request it received again with the known secret (with
 * the `aws4` signer) and answers `403 SignatureDoesNotMatch`, as S3 does, when the two differ.
 */
export class S3TestServer {
  readonly answers: S3Answer[] = [];
  readonly #directory = mkdtempSync(join(tmpdir(), tempMarker()));
  readonly #app: S3rverApp;
  #port = 0;

  constructor() {
    const S3rver = require('s3rver') as S3rverClass;
    this.#app = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: this.#directory });
    // Koa composes its middleware when the server starts listening: this one runs first.
    this.#app.middleware.unshift(async (ctx, next) => {
      const { method = '', url = '', headers } = ctx.req;
      // Listed on arrival, so the order is the order of requests; the status once the answer is sent (or cut).
      const answer: S3Answer = { method, path: url, status: 0, headers };
      this.answers.push(answer);
      const settle = () => {
        answer.status ||= ctx.res.statusCode;
      };
      ctx.res.once('finish', settle).once('close', settle);
      if (!signatureMatches(ctx.req)) {
        ctx.status = 403;
        ctx.type = 'application/xml';
        ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>';
        return;
      }
      await next();
    });
  }

  async start(): Promise<this> {
    this.#port = (await this.#app.run()).port;
    return this;
  }

  /** `http://127.0.0.1:<port>` */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Answers to GETs of one object, in order. */
  gets(bucket: string, key: string): S3Answer[] {
    return this.answers.filter((answer) => answer.method === 'GET' && decodeURIComponent(answer.path) === `/${bucket}/${key}`);
  }

  async createBucket(bucket: string): Promise<void> {
    await this.#send('PUT', `/${bucket}`);
  }

  /** Puts an object with a signed request, as any S3 client would; resolves to its ETag. */
  async putObject(bucket: string, key: string, body: Buffer | string, metadata: Record<string, string> = {}): Promise<string> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    for (const [name, value] of Object.entries(metadata)) headers[`x-amz-meta-${name}`] = value;
    const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    const response = await this.#send('PUT', path, Buffer.from(body), headers);
    const etag = response.headers.etag;
    if (typeof etag !== 'string') throw new Error(`PUT ${path} answered without an ETag`);
    return etag;
  }

  async #send(method: string, path: string, body?: Buffer, extraHeaders: Record<string, string> = {}) {
    const host = `127.0.0.1:${this.#port}`;
    const signed = aws4.sign({ service: 's3', region: S3_REGION, method, path, headers: { host, ...extraHeaders }, ...(body ? { body } : {}) }, S3_CREDENTIALS);
    const headers = Object.fromEntries(Object.entries(signed.headers ?? {}).map(([name, value]) => [name, String(value)]));
    const response = await request(`http://${host}${path}`, { method, headers, ...(body ? { body } : {}) });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`${method} ${path} answered ${response.statusCode}: ${text}`);
    return response;
  }

  async close(): Promise<void> {
    const server = this.#app.httpServer;
    if (server?.listening) {
      server.closeAllConnections();
      await this.#app.close();
    }
    rmSync(this.#directory, { recursive: true, force: true });
  }
}

const AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([a-z0-9-]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=[0-9a-f]{64}$/;
const KNOWN_SECRETS = new Map<string, string>([[S3_CREDENTIALS.accessKeyId, S3_CREDENTIALS.secretAccessKey]]);

/** Signs the request again with the secret the store knows; unsigned requests and unknown keys are s3rver's to judge. */
function signatureMatches(req: IncomingMessage): boolean {
  const authorization = req.headers.authorization;
  if (!authorization?.startsWith('AWS4-HMAC-SHA256 ')) return true;
  const match = AUTHORIZATION.exec(authorization);
  if (!match) return false;
  const [, accessKeyId = '', region = '', signedHeaders = ''] = match;
  const secretAccessKey = KNOWN_SECRETS.get(accessKeyId);
  if (secretAccessKey === undefined) return true;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders.split(';')) {
    const value = req.headers[name];
    if (typeof value !== 'string') return false;
    headers[name] = value;
  }
  const again = aws4.sign({ service: 's3', region, method: req.method ?? 'GET', path: req.url ?? '/', headers }, { accessKeyId, secretAccessKey });
  return again.headers?.Authorization === authorization;
}
