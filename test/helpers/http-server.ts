import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { within } from './fetch-results.js';

/** A node:http server a test runs, and what it saw. */
export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  port: number;
  /** Every request's path and headers, in order of arrival. */
  requests: Array<{ url: string; headers: IncomingHttpHeaders }>;
  /** Body bytes the handlers wrote with `write`, over all responses. */
  bodyBytes: number;
  /** Writes body bytes, counting them. */
  write(res: ServerResponse, chunk: Buffer): void;
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number): Promise<void>;
}

export type TestHandler = (req: IncomingMessage, res: ServerResponse, server: TestServer) => void;

/**
 * A node:http server on 127.0.0.1, port 0, answering with `handler`; its closing (with every
 * connection) is pushed on `cleanups`, for the test's afterEach.
 */
export async function startServer(cleanups: Array<() => unknown>, handler: TestHandler): Promise<TestServer> {
  const arrivals = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    state.requests.push({ url: req.url ?? '', headers: req.headers });
    for (const arrival of arrivals) arrival();
    handler(req, res, state);
  });
  cleanups.push(async () => {
    server.closeAllConnections();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const state: TestServer = {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests: [],
    bodyBytes: 0,
    write(res, chunk) {
      state.bodyBytes += chunk.length;
      res.write(chunk);
    },
    waitForRequests(count) {
      const arrived = new Promise<void>((resolve) => {
        const check = () => {
          if (state.requests.length < count) return;
          arrivals.delete(check);
          resolve();
        };
        arrivals.add(check);
        check();
      });
      return within(arrived, 10_000, `${count} requests reaching the test server`);
    },
  };
  return state;
}
