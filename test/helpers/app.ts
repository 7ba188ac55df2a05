import { join } from 'node:path';
import { DIST_INDEX, makeTempDir, writeFile } from './processes.js';

/** How a test program behaves when it starts. */
export type Startup =
  | 'serve'
  /** Throws before listening. */
  | 'throw'
  /** Calls process.exit(3) before listening. */
  | 'exit'
  /** Listens but never becomes ready: program never returns. */
  | 'never-ready'
  /** Listens, calls state.ready(), and then never returns. */
  | 'ready-early';

export interface AppOptions {
  /** What every response body says. */
  reply?: string;
  startup?: Startup;
  addresses?: string[];
  workers?: number | 'auto';
  terminateTimeout?: number;
  readyTimeout?: number;
  /** Extra text placed in the run() options object. */
  extraOptions?: string;
  /** Code run first thing in program(state). */
  prelude?: string;
  /** Extra import lines at the top of the module. */
  imports?: string;
  /** Code placed before everything else in the module (runs in the master, workers and sanity checks). */
  top?: string;
  /** Code run first for each request, with `req`, `res`, `url` (a URL) and `state` in scope: it may answer and `return`. */
  onRequest?: string;
  /** An expression for the `fetcher` option; `FileFetcher`, `HTTPFetcher` and `S3Fetcher` are imported. */
  fetcher?: string;
}

/**
 * Source of a test server under overseer: replies `reply` (plus its generation and pid in headers),
 * waits `?delay=ms` before replying, and starts up as `startup` says.
 */
export function appSource(options: AppOptions = {}): string {
  const { reply = 'Hello World', startup = 'serve', addresses = ['127.0.0.1:0'], workers = 1, terminateTimeout = 10_000, readyTimeout = 5_000 } = options;
  const before = {
    serve: '',
    throw: "throw new Error('boom at start');",
    exit: 'process.exit(3);',
    'never-ready': '',
    'ready-early': '',
  }[startup];
  const after = {
    serve: '',
    throw: '',
    exit: '',
    'never-ready': 'await new Promise(() => {});',
    'ready-early': 'state.ready(); await new Promise(() => {});',
  }[startup];
  return `${options.top ?? ''}
import http from 'node:http';
import { run, restart, FileFetcher, HTTPFetcher, S3Fetcher, GitHubFetcher } from ${JSON.stringify(DIST_INDEX)};
${options.imports ?? ''}

const REPLY = ${JSON.stringify(reply)};

function handler(state) {
  return (req, res) => {
    const url = new URL(req.url, 'http://x');
    ${options.onRequest ?? ''}
    const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') ?? 0);
    const answer = () => {
      if (!res.headersSent) {
        res.setHeader('x-generation', String(state.generation));
        res.setHeader('x-pid', String(process.pid));
      }
      res.end(REPLY);
    };
    if (delay > 0) {
      // Headers first, so a client can tell its request is in this worker before the body comes.
      res.setHeader('x-generation', String(state.generation));
      res.flushHeaders();
      setTimeout(answer, delay);
    } else {
      answer();
    }
  };
}

run({
  addresses: ${JSON.stringify(addresses)},
  workers: ${JSON.stringify(workers)},
  terminateTimeout: ${terminateTimeout},
  readyTimeout: ${readyTimeout},
  ${options.extraOptions ?? ''}
  ${options.fetcher ? `fetcher: ${options.fetcher}, minFetchInterval: 50,` : ''}
  program: async (state) => {
    ${options.prelude ?? ''}
    ${before}
    for (let i = 0; i < state.listeners.length; i++) {
      await state.serve(http.createServer(handler(state)), i);
    }
    ${after}
  },
});
`;
}

/** A temporary directory holding `app.mjs`; `update()` rewrites it in place, as a deploy would. */
export class TestApp {
  readonly dir = makeTempDir();
  readonly path = join(this.dir, 'app.mjs');

  constructor(options: AppOptions = {}) {
    this.update(options);
  }

  update(options: AppOptions): void {
    writeFile(this.path, appSource(options));
  }
}
