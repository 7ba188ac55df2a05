// Single requests on fresh connections, for questions autocannon cannot answer: which build
// replied, when a new build first replied, and when a service stopped answering.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** GET `path` on a new connection; resolves with { status, build, body } or { error }. */
export function probe(port, path = '/', timeoutMs = 2000) {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('error', (error) => resolve({ error: error.code ?? error.message }));
      response.on('end', () => resolve({ status: response.statusCode, build: response.headers['x-build'], body }));
    });
    request.setTimeout(timeoutMs, () => request.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    request.on('error', (error) => resolve({ error: error.code ?? error.message }));
  });
}

/** Polls `GET /` every `everyMs` until build `build` replies; resolves with Date.now() then. */
export async function firstReplyFrom(port, build, { everyMs = 2, timeoutMs = 60_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const reply = await probe(port);
    if (reply.build === build) return Date.now();
    await sleep(everyMs);
  }
  throw new Error(`build ${build} did not reply within ${timeoutMs} ms`);
}

/**
 * `concurrency` loops each sending `GET /` on a new connection every `everyMs`, recording every
 * outcome with its time, until stop() is called.
 */
export function startPoller(port, { concurrency = 4, everyMs = 20 } = {}) {
  const outcomes = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const at = Date.now();
      const reply = await probe(port);
      outcomes.push({ at, ok: reply.status === 200, kind: reply.error ?? (reply.status === 200 ? undefined : `HTTP ${reply.status}`), build: reply.build });
      await sleep(Math.max(0, everyMs - (Date.now() - at)));
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    outcomes,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return summarizeOutcomes(outcomes);
    },
  };
}

export function summarizeOutcomes(outcomes) {
  const failed = outcomes.filter((o) => !o.ok);
  const kinds = {};
  for (const o of failed) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
  return {
    total: outcomes.length,
    failed: failed.length,
    kinds,
    firstFailureAt: failed[0]?.at,
    lastOkAt: outcomes.filter((o) => o.ok).at(-1)?.at,
  };
}
