import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestApp } from './helpers/app.js';
import { get, startLoad } from './helpers/load.js';
import { cleanupAll, eventually, makeTempDir, startCli, writeFile, type MasterProcess } from './helpers/processes.js';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'listen-fds', 'server.mjs');

const helpers = new Set<ChildProcess>();
const servers = new Set<net.Server>();

afterEach(async () => {
  for (const child of helpers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  helpers.clear();
  for (const server of servers) server.close();
  servers.clear();
  await cleanupAll();
});

async function serving(master: MasterProcess, workers = 1): Promise<number> {
  const port = await master.port();
  await master.waitForLog('worker ready', { count: workers });
  return port;
}

/** A port nothing listens on now (for systemd-socket-activate, which must be given one). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** GET, retried while the connection is refused: for a server that may not listen yet. */
async function getOnceListening(port: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await get({ port });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * A server in Python (no process.send, no overseer): serves HTTP on the inherited fd 3, which the
 * master bound but did not listen on, and writes the name of the signal that stopped it to `log`.
 */
function pythonServer(dir: string): { script: string; stopLog: string } {
  const script = join(dir, 'server.py');
  const stopLog = join(dir, 'stopped-by.txt');
  writeFile(
    script,
    `import http.server, os, signal, socket, sys
assert os.environ.get('LISTEN_FDS') == '1'
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self):
        body = b'python'
        self.send_response(200)
        self.send_header('x-pid', str(os.getpid()))
        self.send_header('x-listen-pid', os.environ.get('LISTEN_PID', ''))
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def stop(signum, frame):
    with open(sys.argv[1], 'a') as f:
        f.write(signal.Signals(signum).name + ' ' + str(os.getpid()) + '\\n')
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGQUIT, stop)
server = http.server.HTTPServer(('127.0.0.1', 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=3)
server.socket.listen(128)
server.serve_forever()
`,
  );
  return { script, stopLog };
}

describe('overseer run -- <command> (a server that does not import overseer)', () => {
  for (const keepAlive of [true, false]) {
    it(`restarts the LISTEN_FDS example under load with no failed request (${keepAlive ? 'keep-alive' : 'a connection per request'})`, async () => {
      const master = startCli(['run', '-a', '127.0.0.1:0', '--terminate-timeout', '10000', '--', process.execPath, EXAMPLE]);
      const port = await serving(master);
      const load = startLoad({ port }, { connections: 10, keepAlive });
      await load.flowing();
      for (let restart = 1; restart <= 3; restart++) {
        master.signal('SIGUSR2');
        await master.waitForLog('restart done', { count: restart });
        await load.flowing();
      }
      await eventually(() => master.find('generation drained').length === 3, 'three old generations drained');
      const result = await load.stop();
      expect(result.errors).toEqual({});
      expect(Object.keys(result.generations).sort()).toEqual(['1', '2', '3', '4']);
      // The old workers stopped on SIGTERM and drained: none was killed at the deadline.
      expect(master.find('drain forced')).toHaveLength(0);
      expect(master.find('worker exited', (line) => line.generation === 1)[0]?.code).toBe(0);
    });
  }

  it("sets LISTEN_PID to each worker's own pid, and LISTEN_FDS and LISTEN_FDNAMES as systemd does", async () => {
    const master = startCli(['run', '-a', '127.0.0.1:0', '--workers', '2', '--', 'node', EXAMPLE]);
    const port = await serving(master, 2);
    const workerPids = master.find('worker ready').map((line) => line.workerPid);
    const seen = new Map<string, string>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const reply = await get({ port });
      seen.set(String(reply.headers['x-pid']), String(reply.headers['x-listen-pid']));
    }
    expect(seen.size).toBe(2);
    for (const [pid, listenPid] of seen) {
      expect(listenPid).toBe(pid);
      expect(workerPids).toContain(Number(pid));
    }
    expect((await master.waitForOutput(/listening on fd 3/)).includes(`127.0.0.1_${port}`)).toBe(true);
  });

  it('counts a program that never says ready as ready after --ready-delay, and stops it with --stop-signal', async () => {
    const { script, stopLog } = pythonServer(makeTempDir());
    const master = startCli(['run', '-a', '127.0.0.1:0', '--ready-delay', '300', '--stop-signal', 'SIGQUIT', '--', 'python3', script, stopLog]);
    const port = await serving(master);
    const first = master.find('worker ready')[0]!;
    expect(first.readyDelay).toBe(300);
    // Ready by the clock is not listening: at the first start nothing listened on the socket before it.
    const reply = await getOnceListening(port);
    expect(reply.body).toBe('python');
    expect(reply.headers['x-listen-pid']).toBe(reply.headers['x-pid']);

    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    await master.waitForLog('generation drained');
    expect(readFileSync(stopLog, 'utf8')).toBe(`SIGQUIT ${first.workerPid}\n`);
    const exited = master.find('worker exited', (line) => line.workerPid === first.workerPid)[0]!;
    expect(exited.level).toBe(30);
    expect((await get({ port })).headers['x-pid']).not.toBe(String(first.workerPid));
  });

  it('gives a program that is not node a ready delay of 2000 ms unless told otherwise, and none to node', async () => {
    const { script, stopLog } = pythonServer(makeTempDir());
    const python = startCli(['run', '-a', '127.0.0.1:0', '--', 'python3', script, stopLog]);
    await serving(python);
    expect(python.find('worker ready')[0]?.readyDelay).toBe(2000);
    const node = startCli(['run', '-a', '127.0.0.1:0', '--', 'node', EXAMPLE]);
    await serving(node);
    expect(node.find('worker ready')[0]?.readyDelay).toBeUndefined();
  });

  it('upgrades from --fetch-file onto the file the command runs, and rolls back a build whose workers never get ready', async () => {
    const dir = makeTempDir();
    const source = readFileSync(EXAMPLE, 'utf8');
    const installed = join(dir, 'server.mjs');
    const build = join(dir, 'build.mjs');
    writeFile(installed, source);
    const master = startCli(['run', '-a', '127.0.0.1:0', '--ready-timeout', '3000', '--fetch-file', build, '--', 'node', installed]);
    const port = await serving(master);
    expect(master.find('master started')[0]?.binPath).toBe(installed);

    writeFile(build, source.replace("'Hello World'", "'Upgraded'"));
    await master.waitForLog('upgrade done', { timeoutMs: 20_000 });
    expect(master.find('upgrade: sanity check skipped')).toHaveLength(1);
    expect((await get({ port })).body).toMatch(/^Upgraded from/);
    expect(readFileSync(installed, 'utf8')).toContain("'Upgraded'");

    // Loads, runs, never says ready: only the restart can tell, and it does.
    writeFile(build, 'setInterval(() => {}, 1000);\n');
    const rolledBack = await master.waitForLog('upgrade rolled back', { timeoutMs: 20_000 });
    expect(String(rolledBack.reason)).toMatch(/not ready within readyTimeout/);
    expect((await get({ port })).body).toMatch(/^Upgraded from/);
    expect(readFileSync(installed, 'utf8')).toContain("'Upgraded'");
  });

  it('writes --pid-file and opens its control socket, so overseer restart -p restarts it', async () => {
    const pidFile = join(makeTempDir(), 'master.pid');
    const master = startCli(['run', '-a', '127.0.0.1:0', '--pid-file', pidFile, '--', 'node', EXAMPLE]);
    const port = await serving(master);
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(master.pid));
    const restart = startCli(['restart', '-p', pidFile]);
    expect((await restart.waitForExit()).code).toBe(0);
    expect(restart.otherOutput.join('\n')).toMatch(/restarted: generation 2/);
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });

  it('reports through overseer restart -p that a command crashing at start was abandoned, while the old workers keep serving', async () => {
    const dir = makeTempDir();
    const server = join(dir, 'server.mjs');
    writeFile(server, readFileSync(EXAMPLE, 'utf8'));
    const pidFile = join(dir, 'master.pid');
    const master = startCli(['run', '-a', '127.0.0.1:0', '--ready-timeout', '5000', '--pid-file', pidFile, '--', 'node', server]);
    const port = await serving(master);
    const load = startLoad({ port }, { connections: 8 });
    await load.flowing();

    writeFile(server, "throw new Error('this deploy crashes at start');\n");
    const restart = startCli(['restart', '-p', pidFile]);
    expect((await restart.waitForExit()).code).toBe(1);
    expect(restart.otherOutput.join('\n')).toMatch(/exited with code 1/);
    await load.flowing();
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect((await get({ port })).headers['x-generation']).toBe('1');
  });

  it('prints lines for people with --pretty (no colours off a terminal), not JSON', async () => {
    const master = startCli(['run', '--pretty', '-a', '127.0.0.1:0', '--', 'node', EXAMPLE]);
    const line = await master.waitForOutput(/worker ready/);
    expect(line).toMatch(/INFO.*worker ready/);
    expect(() => JSON.parse(line)).toThrow();
    expect(master.logs).toHaveLength(0);
  });
});

describe('overseer run <script> (a script that calls run() itself)', () => {
  it('runs the script as the master and again as each worker, and restarts it', async () => {
    const app = new TestApp({ workers: 2, reply: 'from the script' });
    const master = startCli(['run', app.path]);
    const port = await serving(master, 2);
    const reply = await get({ port });
    expect(reply.body).toBe('from the script');
    expect(master.find('master started')[0]?.binPath).toBe(app.path);
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    // The old worker accepts until its stop signal reaches it: ask once it is gone.
    await master.waitForLog('generation drained');
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });
});

describe('systemd', () => {
  it('adopts the socket systemd-socket-activate passes (LISTEN_FDS) instead of binding, and serves on it', async () => {
    const port = await freePort();
    const master = startCli(['run', '--', 'node', EXAMPLE], {}, { command: 'systemd-socket-activate', args: ['-l', `127.0.0.1:${port}`] });
    await master.waitForOutput(/^Listening on 127\.0\.0\.1:\d+ as 3\./);
    // systemd-socket-activate starts the program at the first connection: this request is it.
    const reply = await get({ port });
    expect(reply.status).toBe(200);
    const adopted = await master.waitForLog('adopted socket from systemd');
    expect(adopted).toMatchObject({ address: `127.0.0.1:${port}`, fd: 3 });
    expect(master.find('bound')).toHaveLength(0);
    expect(reply.headers['x-listen-pid']).toBe(reply.headers['x-pid']);
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    // A plain command stops accepting when its SIGTERM is handled, a moment after restart done.
    await master.waitForLog('generation drained');
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });

  it('tells NOTIFY_SOCKET READY=1, RELOADING=1, READY=1 and STOPPING=1 through systemd-notify', async () => {
    const dir = makeTempDir();
    const socketPath = join(dir, 'notify.sock');
    // Node has no unix datagram sockets: Python plays systemd's side.
    const receiver = spawn('python3', [
      '-u',
      '-c',
      'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("up")\nwhile True: print(s.recv(4096).decode().replace("\\n"," "))',
      socketPath,
    ]);
    helpers.add(receiver);
    const received: string[] = [];
    let buffered = '';
    receiver.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      received.push(...lines);
    });
    await eventually(() => received.includes('up'), 'the notify receiver bound its socket');
    const messages = () => received.filter((line) => line !== 'up' && line !== 'BARRIER=1');

    const master = startCli(['run', '-a', '127.0.0.1:0', '--', 'node', EXAMPLE], { NOTIFY_SOCKET: socketPath });
    await serving(master);
    await eventually(() => messages().length === 1, 'READY=1 after the first generation');
    master.signal('SIGUSR2');
    await master.waitForLog('restart done');
    await eventually(() => messages().length === 3, 'RELOADING=1 then READY=1 around the restart');
    master.signal('SIGTERM');
    expect((await master.waitForExit()).code).toBe(0);
    await eventually(() => messages().length === 4, 'STOPPING=1 at shutdown');
    const states = messages().map((line) => line.split(' ').filter((field) => /^(READY|RELOADING|STOPPING)=/.test(field)).join(' '));
    expect(states).toEqual(['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1']);
    for (const line of messages()) expect(line).toContain(`MAINPID=${master.pid}`);
  });
});

describe('wrong invocations: exit code != 0 and one line that names the problem and the fix', () => {
  async function failure(args: string[]): Promise<{ code: number | null; lines: string[] }> {
    const cli = startCli(args);
    const { code } = await cli.waitForExit();
    expect(cli.logs).toEqual([]);
    return { code, lines: cli.otherOutput };
  }

  const cases: Array<[string, () => Promise<string[]>, RegExp]> = [
    ['an unknown option', async () => ['run', '--no-such-option', '--', 'node', EXAMPLE], /unknown option '--no-such-option'.*overseer run --help/],
    ['a bad address', async () => ['run', '-a', '127.0.0.1:99999', '--', 'node', EXAMPLE], /invalid port "99999".*use a port from 0 to 65535/],
    [
      'a port in use',
      async () => {
        const server = net.createServer();
        servers.add(server);
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        return ['run', '-a', `127.0.0.1:${(server.address() as net.AddressInfo).port}`, '--', 'node', EXAMPLE];
      },
      /already in use.*stop it, or choose another port/,
    ],
    ['a command that does not exist', async () => ['run', '-a', '127.0.0.1:0', '--', 'overseer-no-such-command'], /command not found: overseer-no-such-command: install it, or give its path/],
    ['no command after --', async () => ['run', '-a', '127.0.0.1:0', '--'], /no command after --: write overseer run \[options\] -- <command>/],
    ['a bad --workers', async () => ['run', '-a', '127.0.0.1:0', '--workers', 'many', '--', 'node', EXAMPLE], /--workers.*'many' is invalid.*whole number/],
    ['a bad --max-memory', async () => ['run', '-a', '127.0.0.1:0', '--max-memory', '512 elephants', '--', 'node', EXAMPLE], /--max-memory.*'512 elephants' is invalid.*such as 512MB or 2GB/],
  ];
  for (const [what, args, message] of cases) {
    it(what, async () => {
      const { code, lines } = await failure(await args());
      expect(code).not.toBe(0);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^overseer run: /);
      expect(lines[0]).toMatch(message);
      expect(lines[0]).not.toMatch(/\n|    at /);
    });
  }

  it('adds the stack trace with --debug', async () => {
    const server = net.createServer();
    servers.add(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const { code, lines } = await failure(['run', '--debug', '-a', `127.0.0.1:${port}`, '--', 'node', EXAMPLE]);
    expect(code).toBe(1);
    expect(lines[0]).toMatch(/already in use/);
    expect(lines.some((line) => /^\s+at /.test(line))).toBe(true);
  });
});
