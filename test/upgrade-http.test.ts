import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, utimesSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { startWatching, upgradeEnded } from './helpers/upgrades.js';
import { cleanupAll, makeTempDir } from './helpers/processes.js';

type Mode = 'serve' | 'truncate' | 'trickle' | 'fail' | 'hang';

/** A build server: serves one build with an ETag, counts what it sends, and misbehaves on demand. */
class BuildServer {
  build = Buffer.alloc(0);
  mode: Mode = 'serve';
  requests = 0;
  notModified = 0;
  bodyBytes = 0;
  private readonly server = http.createServer((req, res) => this.answer(req, res));
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests += 1;
    if (this.mode === 'hang') return; // never answers
    if (this.mode === 'fail') return void res.writeHead(500).end('internal error');
    // The build only: like any server, 404 for what it does not publish (the fetcher asks for app.mjs.minisig).
    if (req.url !== '/app.mjs') return void res.writeHead(404).end('not found');
    const etag = `"${createHash('sha256').update(this.build).digest('hex').slice(0, 16)}"`;
    if (req.headers['if-none-match'] === etag) {
      this.notModified += 1;
      return void res.writeHead(304, { etag }).end();
    }
    res.writeHead(200, { etag, 'content-length': this.build.length, 'content-type': 'text/javascript' });
    if (this.mode === 'trickle') {
      // Ten pieces, 300 ms apart: a download that lasts about three seconds.
      const pieces = 10;
      const size = Math.ceil(this.build.length / pieces);
      let sent = 0;
      const next = () => {
        const piece = this.build.subarray(sent * size, (sent + 1) * size);
        sent += 1;
        this.bodyBytes += piece.length;
        if (sent >= pieces) return void res.end(piece);
        res.write(piece);
        setTimeout(next, 300);
      };
      next();
      return;
    }
    if (this.mode === 'truncate') {
      const half = this.build.subarray(0, this.build.length >> 1);
      this.bodyBytes += half.length;
      res.write(half, () => res.socket?.destroy());
      return;
    }
    this.bodyBytes += this.build.length;
    res.end(this.build);
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const servers: BuildServer[] = [];
const pythons: ChildProcess[] = [];
afterEach(async () => {
  for (const child of pythons.splice(0)) child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await cleanupAll();
});

function fetchedApp(url: string, options: AppOptions = {}, timeouts = 'timeout: 2000, idleTimeout: 500') {
  const app = new TestApp();
  const fetcher = `new HTTPFetcher({ url: ${JSON.stringify(url)}, interval: 150, ${timeouts} })`;
  const source = (more: AppOptions) => appSource({ readyTimeout: 3000, ...options, ...more, fetcher });
  app.update({ readyTimeout: 3000, ...options, fetcher });
  return { app, source };
}



/**
 * A build server serving the app's own build, and a master polling it, once the first poll has
 * found that build running and skipped it.
 */
async function servingFromBuildServer(timeouts?: string) {
  const server = new BuildServer();
  servers.push(server);
  const url = `http://127.0.0.1:${await server.listen()}/app.mjs`;
  const { app, source } = fetchedApp(url, {}, timeouts);
  server.build = Buffer.from(readFileSync(app.path));
  const { master, port } = await startWatching(app);
  expect((await upgradeEnded(master)).msg).toBe('upgrade skipped');
  return { server, app, source, master, port };
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('self-upgrade over HTTP', () => {
  it('installs a build from its own HTTP server under load with no failed request, then polls without transferring a body', async () => {
    // The first poll downloads the running build and skips it.
    const { server, source, master, port } = await servingFromBuildServer();
    const load = startLoad({ port }, { connections: 10, keepAlive: false });
    await load.flowing();

    server.build = Buffer.from(source({ reply: 'Hello over HTTP' }));
    const done = await upgradeEnded(master, 2);
    expect(done).toMatchObject({ msg: 'upgrade done', outcome: 'installed', buildId: createHash('sha256').update(server.build).digest('hex') });
    await load.flowing();
    expect((await load.stop()).errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello over HTTP');

    const bytesAfterUpgrade = server.bodyBytes;
    const notModifiedBefore = server.notModified;
    const deadline = Date.now() + 10_000;
    while (server.notModified < notModifiedBefore + 3) {
      if (Date.now() > deadline) throw new Error(`no three conditional polls answered 304 within 10 s (${server.notModified - notModifiedBefore} were)`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(server.bodyBytes).toBe(bytesAfterUpgrade);
    expect(master.find('upgrade ', (line) => /^upgrade (done|skipped|rejected|rolled back)/.test(line.msg))).toHaveLength(2);
  });

  it('installs a build served by python3 -m http.server, a server no one here wrote', async () => {
    const dir = makeTempDir();
    const port = await freePort();
    const python = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    pythons.push(python);
    const url = `http://127.0.0.1:${port}/app.mjs`;
    const { app, source } = fetchedApp(url);
    const buildPath = join(dir, 'app.mjs');
    writeFileSync(buildPath, readFileSync(app.path));
    utimesSync(buildPath, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const { master, port: appPort } = await startWatching(app);
    expect((await upgradeEnded(master)).msg).toBe('upgrade skipped');

    writeFileSync(buildPath, source({ reply: 'Hello from python' }));
    const done = await upgradeEnded(master, 2);
    expect(done.msg).toBe('upgrade done');
    expect(done.version).toMatch(/GMT$/); // python sends Last-Modified, and no ETag
    expect((await get({ port: appPort })).body).toBe('Hello from python');
  });

  it('rejects a truncated download without touching the installed build, and downloads it again', async () => {
    // The first poll downloads the running build and skips it.
    const { server, app, source, master, port } = await servingFromBuildServer();
    const installedBefore = readFileSync(app.path, 'utf8');
    const load = startLoad({ port }, { connections: 8 });
    await load.flowing();

    server.mode = 'truncate';
    server.build = Buffer.from(source({ reply: 'Hello after a cut' }));
    const cut = await upgradeEnded(master, 2);
    expect(cut.msg).toBe('upgrade rejected: the running build keeps serving');
    expect(String(cut.reason)).toMatch(/127\.0\.0\.1/);
    expect(readFileSync(app.path, 'utf8')).toBe(installedBefore);

    server.mode = 'serve';
    const done = await master.waitForLog('upgrade done', { timeoutMs: 20_000 });
    expect(done.buildId).toBe(createHash('sha256').update(server.build).digest('hex'));
    await load.flowing();
    expect((await load.stop()).errors).toEqual({});
    expect((await get({ port })).body).toBe('Hello after a cut');
  });

  it('reports the progress of a long download: bytes, size and percent', async () => {
    // The first poll downloads the running build and skips it.
    const { server, source, master, port } = await servingFromBuildServer('timeout: 20000, idleTimeout: 2000');

    server.mode = 'trickle';
    server.build = Buffer.from(source({ reply: 'Hello after a slow download' }));
    expect((await upgradeEnded(master, 2)).msg).toBe('upgrade done');
    const progress = master.find('upgrade: downloading');
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) {
      expect(line.size).toBe(server.build.length);
      expect(Number(line.bytes)).toBeLessThanOrEqual(server.build.length);
      expect(Number(line.percent)).toBe(Math.floor((Number(line.bytes) / server.build.length) * 100));
      expect(Number(line.bytesPerSecond)).toBeGreaterThan(0);
    }
    expect((await get({ port })).body).toBe('Hello after a slow download');
  });

  for (const mode of ['fail', 'hang'] as const) {
    it(`keeps serving while the source ${mode === 'fail' ? 'answers 500' : 'hangs'}, says why at warn, and installs once it recovers`, async () => {
      const { server, source, master, port } = await servingFromBuildServer();
      const load = startLoad({ port }, { connections: 8 });
      await load.flowing();

      server.mode = mode;
      const failed = await master.waitForLog('fetch failed: will retry');
      expect(failed.level).toBe(40);
      expect(String(failed.reason)).toMatch(mode === 'fail' ? /500/ : /timeout|did not/i);
      await load.flowing();

      server.mode = 'serve';
      server.build = Buffer.from(source({ reply: 'Hello after the outage' }));
      expect((await master.waitForLog('upgrade done', { timeoutMs: 20_000 })).outcome).toBe('installed');
      await load.flowing();
      expect((await load.stop()).errors).toEqual({});
      expect((await get({ port })).body).toBe('Hello after the outage');
    });
  }
});
