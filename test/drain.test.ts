import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { IDLE_CLOSE_MS, ServerDrain } from '../src/worker/drain.js';

// Real servers and real client sockets on loopback, in this process: the drain is per-server logic.
const servers: http.Server[] = [];
const agents: http.Agent[] = [];
afterEach(() => {
  for (const agent of agents.splice(0)) agent.destroy();
  for (const server of servers.splice(0)) server.closeAllConnections();
});

async function serve(handler: http.RequestListener) {
  const server = http.createServer(handler);
  servers.push(server);
  const drain = new ServerDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  agents.push(agent);
  return { server, drain, port, agent };
}

function request(port: number, agent: http.Agent, path = '/') {
  return new Promise<{ status: number; body: string; connection: string | undefined; reused: boolean; socket: net.Socket }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, connection: res.headers.connection, reused: req.reusedSocket, socket: req.socket! }));
    });
    req.on('error', reject);
  });
}

function slowHandler(): { handler: http.RequestListener; release: () => void; arrived: Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  return {
    handler: (req, res) => {
      if (req.url === '/slow') {
        arrive();
        void released.then(() => res.end('slow done'));
      } else {
        res.end('ok');
      }
    },
    release,
    arrived,
  };
}

describe('ServerDrain', () => {
  it('lets a request in flight finish, marks its response Connection: close, then resolves', async () => {
    const slow = slowHandler();
    const { drain, port, agent } = await serve(slow.handler);
    const pending = request(port, agent, '/slow');
    await slow.arrived;
    let drained = false;
    const done = drain.drain().then(() => (drained = true));
    slow.release();
    const reply = await pending;
    expect(reply).toMatchObject({ status: 200, body: 'slow done', connection: 'close' });
    await done;
    expect(drained).toBe(true);
    expect(drain.openConnections).toBe(0);
  });

  it('answers a request on a kept-alive socket during the drain, with Connection: close', async () => {
    const { drain, port, agent } = await serve((_req, res) => res.end('ok'));
    const first = await request(port, agent);
    expect(first.connection).toBe('keep-alive');
    const done = drain.drain();
    const second = await request(port, agent);
    expect(second).toMatchObject({ status: 200, body: 'ok', connection: 'close', reused: true });
    await done;
  });

  it('closes an idle keep-alive socket only after it sat idle for IDLE_CLOSE_MS', async () => {
    const { drain, port, agent } = await serve((_req, res) => res.end('ok'));
    const { socket } = await request(port, agent);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    const began = Date.now();
    await drain.drain();
    expect((await closed) - began).toBeGreaterThanOrEqual(IDLE_CLOSE_MS - 20);
  });

  it('stops accepting at once', async () => {
    const { server, drain, port } = await serve((_req, res) => res.end('ok'));
    void drain.drain();
    expect(server.listening).toBe(false);
    await expect(new Promise((resolve, reject) => net.connect(port, '127.0.0.1', () => resolve('connected')).once('error', reject))).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('leaves an upgraded socket to the application until force()', async () => {
    const { server, drain, port } = await serve((_req, res) => res.end('ok'));
    server.on('upgrade', (_req, socket: net.Socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n'));
    const client = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
    await new Promise((resolve) => client.once('data', resolve));
    let drained = false;
    const done = drain.drain().then(() => (drained = true));
    // Twice the idle period: an HTTP socket would have been closed by now.
    await new Promise((resolve) => setTimeout(resolve, IDLE_CLOSE_MS * 2));
    expect(client.destroyed).toBe(false);
    expect(drained).toBe(false);
    const clientClosed = new Promise((resolve) => client.once('close', resolve));
    drain.force();
    await clientClosed;
    await done;
  });
});
