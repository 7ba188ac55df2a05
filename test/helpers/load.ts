import http from 'node:http';

export interface Target {
  host?: string;
  port?: number;
  socketPath?: string;
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One GET with its own connection unless `agent` is given; `onHeaders` runs when the headers arrive. */
export function get(
  target: Target,
  path = '/',
  agent?: http.Agent,
  timeoutMs = 15_000,
  onHeaders?: (headers: http.IncomingHttpHeaders) => void,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: target.host ?? '127.0.0.1', port: target.port, socketPath: target.socketPath, path, agent: agent ?? false, timeout: timeoutMs },
      (response) => {
        onHeaders?.(response.headers);
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body, headers: response.headers }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
  });
}

export interface LoadResult {
  ok: number;
  /** Failed requests by error code (ECONNREFUSED, ECONNRESET, ...) or `HTTP <status>`. */
  errors: Record<string, number>;
  failed: number;
  /** Responses per generation header value. */
  generations: Record<string, number>;
}

/** One request's outcome: its status and the generation header, or thrown on failure. */
export type RequestOnce = () => Promise<{ status: number; generation: string }>;

/** What a load loop may retry without counting a failure: a request the server never processed (HTTP/2 REFUSED_STREAM). */
export class NeverProcessed extends Error {}

/**
 * Keeps `connections` loops calling `requestOnce` back to back until stopped. No retries: every
 * failure counts, except `NeverProcessed`, which is counted in `retried`.
 */
export function startRequestLoad(connections: number, requestOnce: RequestOnce, onStop: () => void = () => {}) {
  const result: LoadResult & { retried: number } = { ok: 0, errors: {}, failed: 0, generations: {}, retried: 0 };
  let running = true;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        const { status, generation } = await requestOnce();
        if (status === 200) {
          result.ok += 1;
          result.generations[generation] = (result.generations[generation] ?? 0) + 1;
        } else {
          result.failed += 1;
          result.errors[`HTTP ${status}`] = (result.errors[`HTTP ${status}`] ?? 0) + 1;
        }
      } catch (error) {
        if (error instanceof NeverProcessed) {
          result.retried += 1;
          continue;
        }
        const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        result.failed += 1;
        result.errors[code] = (result.errors[code] ?? 0) + 1;
      }
    }
  });
  return {
    result,
    /** Waits until at least `count` more requests have succeeded: evidence the load is flowing. */
    async flowing(count = 20, timeoutMs = 10_000): Promise<void> {
      const target = result.ok + count;
      const deadline = Date.now() + timeoutMs;
      while (result.ok < target) {
        if (Date.now() > deadline) throw new Error(`load is not flowing: ${result.ok} ok, errors ${JSON.stringify(result.errors)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      onStop();
      return result;
    },
  };
}

/**
 * Keeps `connections` clients sending requests back to back until stopped: with keep-alive
 * (a pooled agent, as most clients do) or with a new connection per request. No retries: every
 * failure counts.
 */
export function startLoad(target: Target, options: { connections?: number; keepAlive?: boolean; path?: string } = {}) {
  const { connections = 10, keepAlive = true, path = '/' } = options;
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: connections }) : undefined;
  const requestOnce: RequestOnce = async () => {
    const reply = await get(target, path, agent);
    return { status: reply.status, generation: String(reply.headers['x-generation']) };
  };
  return startRequestLoad(connections, requestOnce, () => agent?.destroy());
}
