import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AddressError, formatAddress, parseAddress } from '../src/index.js';
import { TestApp } from './helpers/app.js';
import { get } from './helpers/load.js';
import { cleanupAll, startMaster } from './helpers/processes.js';

afterEach(cleanupAll);

describe('parseAddress', () => {
  it.each([
    [':3000', { kind: 'tcp', host: null, port: 3000, family: null }],
    ['3000', { kind: 'tcp', host: null, port: 3000, family: null }],
    ['127.0.0.1:0', { kind: 'tcp', host: '127.0.0.1', port: 0, family: 4 }],
    ['[::1]:8080', { kind: 'tcp', host: '::1', port: 8080, family: 6 }],
    ['localhost:80', { kind: 'tcp', host: 'localhost', port: 80, family: 0 }],
    ['unix:/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
  ])('parses %s', (spec, expected) => {
    expect(parseAddress(spec)).toMatchObject(expected);
  });

  it.each([
    ['', /invalid address/],
    ['127.0.0.1', /has no port: write it as '127.0.0.1:3000'/],
    [':70000', /invalid port "70000".*0 to 65535/],
    [':http', /invalid port "http"/],
    ['::1:3000', /needs brackets: write it as '\[::1\]:3000'/],
    ['[::1]3000', /invalid IPv6 address/],
    ['[nope]:3000', /invalid IPv6 address/],
    ['unix:', /has no path/],
  ])('rejects %j with a message that says how to write it', (spec, message) => {
    expect(() => parseAddress(spec)).toThrow(AddressError);
    expect(() => parseAddress(spec)).toThrow(message);
  });

  it('reports a bound address as written, with the chosen port', () => {
    expect(formatAddress(parseAddress(':0'), 4321)).toBe(':4321');
    expect(formatAddress(parseAddress('[::1]:0'), 4321)).toBe('[::1]:4321');
    expect(formatAddress(parseAddress('127.0.0.1:0'), 4321)).toBe('127.0.0.1:4321');
  });
});

const STATE_DUMP = `console.log(JSON.stringify({
  msg: 'test: state',
  state: { ...state, listener: state.listener, startedAt: state.startedAt.toISOString(), gracefulShutdown: state.gracefulShutdown.aborted },
  env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('LISTEN_') || k.startsWith('OVERSEER_'))),
}));`;

describe('every address form, served by one master', () => {
  it('binds all interfaces, IPv4, IPv6 and a unix socket, hands them over from fd 3 in order, and reports chosen ports', async () => {
    const app = new TestApp();
    const socketPath = join(app.dir, 'app.sock');
    const addresses = [':0', '127.0.0.1:0', '[::1]:0', `unix:${socketPath}`];
    app.update({ addresses, prelude: STATE_DUMP });
    const master = startMaster(app.path);
    const bound = await Promise.all(addresses.map((_, i) => master.address(i)));
    expect(bound[0]).toMatch(/^:\d+$/);
    expect(bound[1]).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(bound[2]).toMatch(/^\[::1\]:\d+$/);
    expect(bound[3]).toBe(`unix:${socketPath}`);
    await master.waitForLog('worker ready');

    const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));
    const replies = await Promise.all([
      get({ host: '127.0.0.1', port: port(bound[0]!) }),
      get({ host: '::1', port: port(bound[0]!) }),
      get({ host: '127.0.0.1', port: port(bound[1]!) }),
      get({ host: '::1', port: port(bound[2]!) }),
      get({ socketPath }),
    ]);
    expect(replies.map((reply) => reply.body)).toEqual(Array(5).fill('Hello World'));

    const dump = await master.waitForLog('test: state');
    const state = dump.state as Record<string, unknown>;
    const env = dump.env as Record<string, string>;
    expect(state).toMatchObject({
      enabled: true,
      generation: 1,
      listener: { fd: 3 },
      listeners: [{ fd: 3 }, { fd: 4 }, { fd: 5 }, { fd: 6 }],
      address: bound[0],
      addresses: bound,
      binPath: app.path,
      gracefulShutdown: false,
    });
    expect(state.id).toMatch(/^[0-9a-f]{64}$/);
    expect(state.id).toBe(master.find('master started')[0]?.buildId);
    expect(env).toMatchObject({
      OVERSEER_WORKER: '1',
      OVERSEER_GENERATION: '1',
      OVERSEER_BIN_PATH: app.path,
      OVERSEER_BIN_ID: state.id,
      LISTEN_FDS: '4',
      LISTEN_FDNAMES: bound.map((address) => address.replaceAll(':', '_')).join(':'),
    });
    expect(JSON.parse(env.OVERSEER_ADDRESSES!)).toEqual(bound);
  });

  it('lets a program listen by hand with server.listen(state.listener)', async () => {
    const app = new TestApp();
    const source = `import http from 'node:http';
import { run } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
run({
  address: '127.0.0.1:0',
  program: (state) => {
    const server = http.createServer((req, res) => res.end('by hand'));
    server.listen(state.listener);
    state.gracefulShutdown.addEventListener('abort', () => server.close());
  },
});
`;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(app.path, source);
    const master = startMaster(app.path);
    const port = await master.port();
    await master.waitForLog('worker ready');
    expect((await get({ port })).body).toBe('by hand');
    master.signal('SIGTERM');
    expect(await master.waitForExit()).toEqual({ code: 0, signal: null });
  });

  it('refuses a port another process listens on, naming the port and the fix, and exits 1', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const app = new TestApp({ addresses: [`127.0.0.1:${taken}`] });
      const master = startMaster(app.path);
      const fatal = await master.waitForLog('master cannot start');
      expect(fatal.code).toBe('ERR_OVERSEER_BIND');
      expect(fatal.msg).toContain(`address 127.0.0.1:${taken} is already in use`);
      expect(fatal.msg).toContain('choose another port');
      expect((await master.waitForExit()).code).toBe(1);
      expect(master.find('worker started')).toHaveLength(0);
    } finally {
      blocker.close();
    }
  });

  it('takes over a unix socket file left behind by a master that was SIGKILLed', async () => {
    const app = new TestApp();
    const socketPath = join(app.dir, 'app.sock');
    app.update({ addresses: [`unix:${socketPath}`] });
    const first = startMaster(app.path);
    await first.waitForLog('worker ready');
    first.killGroup();
    await first.exited;
    const second = startMaster(app.path);
    await second.waitForLog('worker ready');
    expect((await get({ socketPath })).body).toBe('Hello World');
  });
});
