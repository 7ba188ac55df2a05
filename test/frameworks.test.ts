import http2 from 'node:http2';
import type net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ServerDrain } from '../src/worker/drain.js';
import { NumberingClient, selfSignedCertificate, startHttp2Load, startHttpsLoad } from './helpers/framework-clients.js';
import { get, startLoad, type LoadResult } from './helpers/load.js';
import { cleanupAll, eventually, makeTempDir, startMaster, type MasterProcess } from './helpers/processes.js';

const EXAMPLES = join(import.meta.dirname, '..', 'examples', 'frameworks');
const RESTARTS = 3;
/** Every example runs two workers. */
const WORKERS = 2;

const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await cleanupAll();
});

/**
 * Starts `examples/frameworks/<name>.mjs` under its own master on a port the OS picks. The
 * temporary directory goes on the command line too (workers get the same arguments), so the
 * suite's leftover check can find these processes.
 */
async function startExample(name: string, env: (dir: string) => NodeJS.ProcessEnv = () => ({})) {
  const dir = makeTempDir();
  const master = startMaster(join(EXAMPLES, `${name}.mjs`), { ADDRESS: '127.0.0.1:0', ...env(dir) }, [dir]);
  const port = await master.port();
  await master.waitForLog('worker ready', { count: WORKERS });
  return { master, port };
}

interface Load {
  flowing(count?: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

/** SIGUSR2 `RESTARTS` times, each once the load flows on the new generation; then every old worker drained. */
async function restartUnderLoad(master: MasterProcess, loads: Array<Pick<Load, 'flowing'>>): Promise<void> {
  for (const load of loads) await load.flowing();
  for (let i = 1; i <= RESTARTS; i++) {
    master.signal('SIGUSR2');
    await master.waitForLog('restart done', { count: i });
    for (const load of loads) await load.flowing();
  }
  await eventually(() => master.find('generation drained').length === RESTARTS, `${RESTARTS} old generations drained`, 20_000);
}

/** Every old worker finished its drain by itself: none was cut at the deadline. */
function expectGracefulDrains(master: MasterProcess): void {
  expect(master.find('drain done')).toHaveLength(RESTARTS * WORKERS);
  expect(master.find('drain forced')).toHaveLength(0);
  expect(master.find('restart abandoned')).toHaveLength(0);
}

function expectNoFailures(result: LoadResult): void {
  expect(result.errors).toEqual({});
  expect(result.failed).toBe(0);
  // Served by the first generation and the last one (and, most likely, those between).
  expect(result.generations['1']).toBeGreaterThan(0);
  expect(result.generations[String(RESTARTS + 1)]).toBeGreaterThan(0);
}

const plainHttp: Array<[name: string, greeting: RegExp]> = [
  ['express', /^Hello from Express, generation 1\n$/],
  ['fastify', /^Hello from Fastify, generation 1\n$/],
  ['koa', /^Hello from Koa, generation 1\n$/],
  ['hono', /^Hello from Hono, generation 1\n$/],
];

describe('framework examples restarted under load', () => {
  for (const [name, greeting] of plainHttp) {
    it(`${name}: ${RESTARTS} restarts with keep-alive and new-connection clients, no failed request`, async () => {
      const { master, port } = await startExample(name);
      expect((await get({ port })).body).toMatch(greeting);
      const loads = [startLoad({ port }, { connections: 8, keepAlive: true }), startLoad({ port }, { connections: 4, keepAlive: false })];
      cleanups.push(() => void Promise.all(loads.map((load) => load.stop())));
      await restartUnderLoad(master, loads);
      for (const load of loads) expectNoFailures(await load.stop());
      expectGracefulDrains(master);
    });
  }

  const tlsEnv = (dir: string) => {
    const { key, cert } = selfSignedCertificate(dir);
    return { TLS_KEY: key, TLS_CERT: cert };
  };

  it(`node:https: ${RESTARTS} restarts with keep-alive and new-connection TLS clients, no failed request`, async () => {
    const { master, port } = await startExample('https', tlsEnv);
    const loads = [startHttpsLoad(port, { connections: 8, keepAlive: true }), startHttpsLoad(port, { connections: 4, keepAlive: false })];
    cleanups.push(() => void Promise.all(loads.map((load) => load.stop())));
    await restartUnderLoad(master, loads);
    for (const load of loads) expectNoFailures(await load.stop());
    expectGracefulDrains(master);
  });

  it(`node:http2: ${RESTARTS} restarts with h2 clients multiplexing streams and HTTP/1.1 clients on the same port, no failed request`, async () => {
    const { master, port } = await startExample('http2', tlsEnv);
    const h2 = startHttp2Load(port, { sessions: 3, streamsPerSession: 4 });
    const h1 = startHttpsLoad(port, { connections: 4, keepAlive: true });
    cleanups.push(() => void Promise.all([h2.stop(), h1.stop()]));
    await restartUnderLoad(master, [h2, h1]);
    const h2Result = await h2.stop();
    expectNoFailures(h2Result);
    expectNoFailures(await h1.stop());
    // Sessions were told GOAWAY: without it the old workers would hold them until the deadline.
    expectGracefulDrains(master);
  });

  it(`ws: every client is told 1012 on each of ${RESTARTS} restarts, reconnects to the new generation, and loses no message`, async () => {
    const { master, port } = await startExample('websocket');
    const clients = Array.from({ length: 6 }, () => new NumberingClient(`ws://127.0.0.1:${port}/`));
    cleanups.push(() => clients.forEach((client) => client.close()));
    for (const client of clients) client.start();
    const http = startLoad({ port }, { connections: 4, keepAlive: true });
    cleanups.push(() => void http.stop());

    const allGreetedBy = (generation: number) => clients.every((client) => client.greetings.at(-1) === generation);
    await eventually(() => allGreetedBy(1), 'every client connected to generation 1');
    await restartUnderLoad(master, [
      http,
      // The WebSocket clients count as flowing once each has had echoes from the new generation.
      {
        flowing: async () => {
          const generation = master.find('restart done').length + 1;
          const echoedBefore = clients.map((client) => client.echoed.size);
          await eventually(
            () => allGreetedBy(generation) && clients.every((client, i) => client.echoed.size > echoedBefore[i]! + 10),
            `every WebSocket client reconnected to generation ${generation} and echoed there`,
          );
        },
      },
    ]);
    for (const client of clients) client.stopSending();
    await eventually(() => clients.every((client) => client.unanswered === 0), 'every message sent was echoed');

    // The restarts did catch messages in flight, which came back only because they were sent again.
    expect(clients.reduce((sum, client) => sum + client.resent, 0)).toBeGreaterThan(0);
    for (const client of clients) {
      expect(client.sent).toBeGreaterThan(50);
      // Every number from 1 to the last sent came back: none lost across the restarts.
      expect(client.echoed.size).toBe(client.sent);
      expect(client.closeCodes).toEqual(Array.from({ length: RESTARTS }, () => 1012));
      expect(client.greetings).toEqual(Array.from({ length: RESTARTS + 1 }, (_, i) => i + 1));
      expect(client.errors).toEqual([]);
    }
    expectNoFailures(await http.stop());
    expectGracefulDrains(master);
  });
});

describe('ServerDrain with node:http2', () => {
  it('tells each session GOAWAY, lets its streams in flight finish, and resolves once the sessions closed', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let arrive!: () => void;
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    const server = http2.createServer((req, res) => {
      if (req.url === '/slow') {
        arrive();
        void released.then(() => res.end('slow done'));
      } else {
        res.end('ok');
      }
    });
    const drain = new ServerDrain(server);
    let serverSocket: net.Socket | undefined;
    server.on('connection', (socket: net.Socket) => (serverSocket = socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    cleanups.push(() => {
      client.destroy();
      drain.force();
    });
    const request = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const stream = client.request({ ':path': path });
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve(body));
        stream.on('error', reject);
        stream.end();
      });
    expect(await request('/')).toBe('ok');
    const slow = request('/slow');
    await arrived;
    const goaway = new Promise<number>((resolve) => client.once('goaway', (code: number) => resolve(code)));
    let drained = false;
    const done = drain.drain().then(() => (drained = true));
    expect(drain.fateOf(serverSocket!)).toBe('close-after-streams');

    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // The session is going away: no new stream on it, and the drain waits for the one in flight.
    expect(() => client.request({ ':path': '/' })).toThrow(expect.objectContaining({ code: 'ERR_HTTP2_GOAWAY_SESSION' }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    release();
    expect(await slow).toBe('slow done');
    await done;
    await eventually(() => drain.openConnections === 0, 'the drain forgot the closed connection');
    expect(server.listening).toBe(false);
  });
});
