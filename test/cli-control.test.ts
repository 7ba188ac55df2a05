import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatStatus, humanizeDuration } from '../src/cli/status-table.js';
import { resolveConfig } from '../src/config.js';
import { askControlSocket } from '../src/master/control-client.js';
import type { MasterStatus } from '../src/master/status.js';
import { appSource, TestApp, type AppOptions } from './helpers/app.js';
import { get } from './helpers/load.js';
import { cleanupAll, eventually, isAlive, makeTempDir, startMaster, tempMarker, type MasterProcess } from './helpers/processes.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'overseer.js');

const helpers = new Set<ChildProcess>();
const tmuxServers = new Set<string>();
const servers = new Set<Server>();

afterEach(async () => {
  for (const name of tmuxServers) spawnSync('tmux', ['-L', name, 'kill-server']);
  tmuxServers.clear();
  for (const child of helpers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  helpers.clear();
  for (const server of servers) server.close();
  servers.clear();
  await cleanupAll();
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `overseer` binary (dist/, as `npm run build` made it). */
function overseer(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env, ...env };
    delete childEnv.OVERSEER_KEY_PASSWORD;
    const child = spawn(process.execPath, [BIN, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    helpers.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`overseer ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/** A test app whose master writes `master.pid` (and `master.pid.sock`) in its own directory. */
function appWithPidFile(options: AppOptions = {}) {
  const app = new TestApp();
  const pidFile = join(app.dir, 'master.pid');
  const withPidFile = (more: AppOptions): AppOptions => ({ ...options, ...more, extraOptions: `pidFile: ${JSON.stringify(pidFile)}, ${more.extraOptions ?? ''}` });
  app.update(withPidFile({}));
  return { app, pidFile, socket: `${pidFile}.sock`, update: (more: AppOptions) => app.update(withPidFile(more)) };
}

async function serving(path: string, workers = 1): Promise<{ master: MasterProcess; port: number; address: string }> {
  const master = startMaster(path);
  const address = await master.address();
  const port = await master.port();
  await master.waitForLog('worker ready', { count: workers });
  await master.waitForLog('control socket listening');
  return { master, port, address };
}

/** A pid that no process has any more: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('overseer restart', () => {
  it('reports the new generation and exits 0 once it serves', async () => {
    const { app, pidFile } = appWithPidFile();
    const { port } = await serving(app.path);
    const result = await overseer(['restart', '--pid-file', pidFile]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(lines(result.stdout)).toHaveLength(1);
    expect(result.stdout).toMatch(/^restarted: generation 2 serving build [0-9a-f]{12}, ready in \d/);
    expect((await get({ port })).headers['x-generation']).toBe('2');
  });

  it('exits 1 with the reason when the new build crashes at start, and the old workers keep serving', async () => {
    const { app, pidFile, update } = appWithPidFile();
    const { port } = await serving(app.path);
    update({ startup: 'throw', reply: 'broken' });
    const result = await overseer(['restart', '--pid-file', pidFile]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/^overseer restart: restart abandoned \(generation 2\): .*program threw: boom at start.*old workers keep serving/);
    const reply = await get({ port });
    expect(reply.headers['x-generation']).toBe('1');
    expect(reply.body).toBe('Hello World');
  });
});

describe('overseer status', () => {
  it('prints the master, its workers and addresses in 80 columns, and the raw status with --json', async () => {
    const { app, pidFile } = appWithPidFile({ workers: 2 });
    const { master, address } = await serving(app.path, 2);
    const workerPids = master.find('worker ready').map((line) => Number(line.workerPid));
    expect(workerPids).toHaveLength(2);

    const table = await overseer(['status', '--pid-file', pidFile]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`overseer master ${master.pid}, up `);
    expect(table.stdout).toContain(address);
    for (const pid of workerPids) expect(table.stdout).toMatch(new RegExp(`\\b${pid}\\b.*\\bready\\b`));
    expect(table.stdout).toMatch(/^1 +current +[0-9a-f]{12} /m);
    for (const line of lines(table.stdout)) expect(line.length, line).toBeLessThanOrEqual(80);

    const json = await overseer(['status', '--json', '--pid-file', pidFile]);
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout) as MasterStatus;
    expect(status.pid).toBe(master.pid);
    expect(status.addresses).toEqual([address]);
    expect(status.binPath).toBe(app.path);
    expect(status.generations).toHaveLength(1);
    expect(status.generations[0]).toMatchObject({ number: 1, state: 'current' });
    expect(status.generations[0]!.workers.map((worker) => worker.pid).sort()).toEqual([...workerPids].sort());
    expect(status.generations[0]!.workers.every((worker) => worker.phase === 'ready')).toBe(true);
    expect(status.build.running.buildId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('fits 80 columns in a real terminal (tmux)', async (context) => {
    if (spawnSync('tmux', ['-V']).status !== 0) {
      context.skip('tmux is not installed: apt-get install tmux to run the terminal check');
    }
    const { app, pidFile } = appWithPidFile({ workers: 2 });
    const { master } = await serving(app.path, 2);
    const name = `${tempMarker()}tmux-${process.pid}`;
    tmuxServers.add(name);
    const command = `${process.execPath} ${BIN} status --pid-file ${pidFile}; echo __DONE__; exec cat`;
    execFileSync('tmux', ['-L', name, '-f', '/dev/null', 'new-session', '-d', '-x', '80', '-y', '40', command], { env: { ...process.env, TERM: 'xterm-256color' } });
    let screen = '';
    await eventually(() => {
      screen = execFileSync('tmux', ['-L', name, 'capture-pane', '-p'], { encoding: 'utf8' });
      return screen.includes('__DONE__');
    }, 'overseer status to finish inside tmux');
    console.log(`overseer status at 80 columns:\n${screen}`);
    const shown = screen.slice(0, screen.indexOf('__DONE__'));
    expect(shown).toContain(`overseer master ${master.pid}`);
    expect(shown).toMatch(/^GEN +STATE +BUILD +PID +SLOT +PHASE +UPTIME +RESTARTS$/m);
    for (const line of shown.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    // Each worker on a line of its own: the terminal did not wrap the table.
    expect(shown.match(/ ready /g)).toHaveLength(2);
  });

  it('formats a status with long values within the width, ids cut to 12 hex and uptimes made human', () => {
    const id = 'ab'.repeat(32);
    const status: MasterStatus = {
      pid: 4_194_303,
      startedAt: new Date(0).toISOString(),
      uptimeMs: 192_000,
      addresses: ['unix:/' + 'very-long-directory-name/'.repeat(6) + 'app.sock', '[::1]:65535'],
      binPath: '/srv/' + 'releases/'.repeat(12) + 'app.mjs',
      generations: [
        { number: 12, buildId: id, state: 'current', workers: [{ pid: 4_194_302, generation: 12, slot: 0, phase: 'ready', uptimeMs: 90_061_000, restarts: 3 }] },
        { number: 11, buildId: id, state: 'draining', workers: [{ pid: 4_194_301, generation: 11, slot: 0, phase: 'draining', uptimeMs: 5_000, restarts: 0 }] },
      ],
      lastRestart: { ok: false, generation: 13, reason: 'worker 123 program threw: ' + 'a very long reason '.repeat(20), at: new Date(0).toISOString() },
      spares: 1,
      build: {
        running: { buildId: id, version: 'v1.2.3' },
        sources: [{ source: 'https://example.com/' + 'x'.repeat(100), lastCheckAt: new Date(0).toISOString(), lastResult: 'failed', lastError: 'boom '.repeat(40), consecutiveFailures: 4 }],
        lastUpgrade: { at: new Date(0).toISOString(), outcome: 'rolled back', buildId: id, version: 'v1.2.4', source: 'file:/x', reason: 'not ready' },
      },
    };
    const text = formatStatus(status, { now: 3_600_000, width: 80 });
    for (const line of lines(text)) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(text).toContain('overseer master 4194303, up 3m12s');
    expect(text).toContain('abababababab');
    expect(text).not.toContain('ababababababa');
    expect(text).toMatch(/^12 +current +abababababab +4194302 +0 +ready +1d01h +3$/m);
    expect(text).toMatch(/^11 +draining/m);
    expect(text).toMatch(/^warm spares +1 booted, waiting for the next restart$/m);
    expect(text).toContain('draining      generation 11 (1 worker)');
    expect(text).toContain('ABANDONED generation 13, 1h00m ago');
    expect(text).toContain('version v1.2.3');
    expect(text).toContain('rolled back build abababababab (v1.2.4), 1h00m ago: not ready');
    expect([0, 59_999, 60_000, 3_600_000, 86_400_000].map(humanizeDuration)).toEqual(['0s', '59s', '1m00s', '1h00m', '1d00h']);
  });
});

describe('overseer upgrade', () => {
  it('checks a FileFetcher source now: nothing new first, then the build published since, installed and serving', async () => {
    const app = new TestApp();
    const pidFile = join(app.dir, 'master.pid');
    const buildPath = join(app.dir, 'next-build.mjs');
    const options = (more: AppOptions): AppOptions => ({
      ...more,
      extraOptions: `pidFile: ${JSON.stringify(pidFile)},`,
      // Polls hourly and does not watch: only `overseer upgrade` can find the build in time.
      fetcher: `Object.assign(new FileFetcher({ path: ${JSON.stringify(buildPath)}, interval: 3600000, settle: 100 }), { watch: undefined })`,
    });
    app.update(options({}));
    const { master, port } = await serving(app.path);
    await master.waitForLog('watching for new builds');

    const nothing = await overseer(['upgrade', '--pid-file', pidFile]);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/^no new build at file:.*next-build\.mjs; running [0-9a-f]{12}\n$/);

    writeFileSync(`${buildPath}.tmp`, appSource(options({ reply: 'Hello v2' })));
    renameSync(`${buildPath}.tmp`, buildPath);
    const upgraded = await overseer(['upgrade', '--pid-file', pidFile]);
    expect(upgraded.stderr).toBe('');
    expect(upgraded.code).toBe(0);
    const installed = master.find('upgrade done')[0];
    expect(installed?.buildId).toMatch(/^[0-9a-f]{64}$/);
    const shortId = String(installed!.buildId).slice(0, 12);
    expect(upgraded.stdout).toBe(`upgrade: installed build ${shortId} (${String(installed!.version)}) from file:${buildPath}; running ${shortId}\n`);
    expect((await get({ port })).body).toBe('Hello v2');
  });
});

describe('pid file', () => {
  it('refuses to start a second master on a pid file a live master holds, before binding, naming its pid', async () => {
    const { app, pidFile } = appWithPidFile();
    const { master: first } = await serving(app.path);
    const second = startMaster(app.path);
    const { code } = await second.waitForExit();
    expect(code).not.toBe(0);
    const fatal = second.logs.filter((line) => line.level >= 50);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.msg).toMatch(new RegExp(`pid file ${pidFile} is held by a running overseer master, pid ${first.pid} .*stop that master first \\(kill ${first.pid}\\)`));
    expect(second.find('bound')).toHaveLength(0);
    expect(second.find('worker')).toHaveLength(0);
    expect(readFileSync(pidFile, 'utf8')).toBe(`${first.pid}\n`);
    expect(isAlive(first.pid)).toBe(true);
  });

  it('replaces a stale pid file: a pid that is gone, and a pid now used by a process that is no master', async () => {
    const { app, pidFile } = appWithPidFile();
    const gone = deadPid();
    writeFileSync(pidFile, `${gone}\n`);
    const { master } = await serving(app.path);
    expect(master.find('replacing a stale pid file')[0]).toMatchObject({ stalePid: gone, level: 40, reason: `process ${gone} is gone` });
    expect(readFileSync(pidFile, 'utf8')).toBe(`${master.pid}\n`);
    master.signal('SIGTERM');
    await master.waitForExit();

    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    helpers.add(sleeper);
    writeFileSync(pidFile, `${sleeper.pid}\n`);
    const { master: next } = await serving(app.path);
    expect(next.find('replacing a stale pid file')[0]).toMatchObject({ stalePid: sleeper.pid, reason: expect.stringMatching(/is not an overseer master/) });
    expect(readFileSync(pidFile, 'utf8')).toBe(`${next.pid}\n`);
  });

  it('removes the pid file and control socket on a SIGTERM exit; the socket is 0600 while the master runs', async () => {
    const { app, pidFile, socket } = appWithPidFile();
    const { master } = await serving(app.path);
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(readFileSync(pidFile, 'utf8')).toBe(`${master.pid}\n`);
    master.signal('SIGTERM');
    expect((await master.waitForExit()).code).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });

  it('removes them on the second-SIGINT fast exit too', async () => {
    const { app, pidFile, socket } = appWithPidFile();
    const { master, port } = await serving(app.path);
    let inWorker!: () => void;
    const arrived = new Promise<void>((resolve) => (inWorker = resolve));
    const pinned = get({ port }, '/?delay=30000', undefined, 40_000, () => inWorker()).catch((error: Error) => error);
    await arrived;
    master.signal('SIGINT');
    await master.waitForLog('shutdown begun');
    master.signal('SIGINT');
    expect((await master.waitForExit()).code).toBe(130);
    await pinned;
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(socket)).toBe(false);
  });

  it('removes the pid file when the master cannot start (address in use)', async () => {
    const taken = createServer();
    servers.add(taken);
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const { app, pidFile } = appWithPidFile({ addresses: [`127.0.0.1:${port}`] });
    const master = startMaster(app.path);
    await master.waitForLog('pid file written');
    expect((await master.waitForExit()).code).toBe(1);
    expect(master.find('master cannot start')).toHaveLength(1);
    expect(existsSync(pidFile)).toBe(false);
  });
});

describe('no master to talk to', () => {
  it('says so in one line naming the problem and the fix, exit 2', async () => {
    const dir = makeTempDir();
    const missing = join(dir, 'missing.pid');
    const noFile = await overseer(['status', '--pid-file', missing]);
    expect(noFile.code).toBe(2);
    expect(noFile.stdout).toBe('');
    expect(lines(noFile.stderr)).toEqual([`overseer status: no overseer master: pid file ${missing} does not exist; start the master (pidFile: '${missing}') or pass the path it uses`]);

    const stale = join(dir, 'stale.pid');
    const gone = deadPid();
    writeFileSync(stale, `${gone}\n`);
    const dead = await overseer(['restart', '--pid-file', stale]);
    expect(dead.code).toBe(2);
    expect(lines(dead.stderr)).toHaveLength(1);
    expect(dead.stderr).toContain(`pid ${gone} in ${stale} is not running`);
    expect(dead.stderr).toContain('start the master again');

    // A socket file whose server was killed: connecting is refused.
    const socket = join(dir, 'dead.sock');
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    helpers.add(holder);
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    expect(existsSync(socket)).toBe(true);
    const refused = await overseer(['upgrade', '--control', socket]);
    expect(refused.code).toBe(2);
    expect(lines(refused.stderr)).toEqual([`overseer upgrade: no master listens on ${socket} (connection refused): it is gone or still starting; start it, or check --control`]);
    expect(refused.stderr).not.toMatch(/\n\s+at /);

    const neither = await overseer(['status']);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/^overseer status: which master\? pass --pid-file <path>/);
  });
});

describe('overseer keygen and sign', () => {
  it('make a key pair and a signature that minisign -V accepts', async (context) => {
    if (spawnSync('minisign', ['-v']).error) context.skip('minisign is not installed');
    const dir = makeTempDir();
    const prefix = join(dir, 'keys', 'release');
    const keygen = await overseer(['keygen', '--output', prefix]);
    expect(keygen.stderr).toBe('');
    expect(keygen.code).toBe(0);
    expect(keygen.stdout).toContain(`wrote ${prefix}.pub and ${prefix}.key`);
    const publicKeyLine = readFileSync(`${prefix}.pub`, 'utf8').trim().split('\n').at(-1)!;
    expect(keygen.stdout).toContain(`publicKey for run(): ${publicKeyLine}`);
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);

    const again = await overseer(['keygen', '-o', prefix]);
    expect(again.code).not.toBe(0);
    expect(lines(again.stderr)).toHaveLength(1);
    expect(again.stderr).toMatch(/Refusing to overwrite .*--force/);

    const build = join(dir, 'app.mjs');
    writeFileSync(build, 'console.log("build 7")\n');
    const sign = await overseer(['sign', build, '-s', `${prefix}.key`, '-t', 'release 7']);
    expect(sign.stderr).toBe('');
    expect(sign.code).toBe(0);
    expect(sign.stdout).toContain(`wrote ${build}.minisig`);
    const verified = spawnSync('minisign', ['-V', '-m', build, '-p', `${prefix}.pub`], { encoding: 'utf8' });
    expect(verified.status, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('Trusted comment: release 7');

    const forced = await overseer(['keygen', '-o', prefix, '--force']);
    expect(forced.code).toBe(0);
    const mismatch = spawnSync('minisign', ['-V', '-m', build, '-p', `${prefix}.pub`], { encoding: 'utf8' });
    expect(mismatch.status).not.toBe(0);
  });
});


describe('control socket protocol and options', () => {
  it('answers each request line in order; unknown commands and bad JSON get an error answer', async () => {
    const { app, socket } = appWithPidFile();
    const { master } = await serving(app.path);
    const answers = await new Promise<string[]>((resolve, reject) => {
      const client = createConnection({ path: socket });
      let received = '';
      client.setEncoding('utf8');
      client.on('connect', () => client.write('{"cmd":"nope"}\nnot json\n{"cmd":"status"}\n'));
      client.on('data', (chunk: string) => {
        received += chunk;
        const got = lines(received);
        if (got.length === 3 && received.endsWith('\n')) {
          client.end();
          resolve(got);
        }
      });
      client.on('error', reject);
    });
    expect(JSON.parse(answers[0]!)).toEqual({ error: 'unknown command "nope": the commands are status, restart and upgrade' });
    expect(JSON.parse(answers[1]!).error).toMatch(/not JSON/);
    expect(JSON.parse(answers[2]!).pid).toBe(master.pid);
    expect(await askControlSocket(socket, { cmd: 'status' }, 5_000)).toMatchObject({ pid: master.pid });
  });

  it('checks pidFile and controlSocket, and defaults the socket beside the pid file', () => {
    const program = () => {};
    expect(resolveConfig({ program })).toMatchObject({ pidFile: undefined, controlSocket: undefined });
    expect(resolveConfig({ program, pidFile: '/run/app/master.pid' })).toMatchObject({ pidFile: '/run/app/master.pid', controlSocket: '/run/app/master.pid.sock' });
    expect(resolveConfig({ program, controlSocket: 'ctl.sock' }).controlSocket).toBe(join(process.cwd(), 'ctl.sock'));
    expect(() => resolveConfig({ program, pidFile: '' })).toThrow(/pidFile must be a file path/);
    expect(() => resolveConfig({ program, pidFile: 3 as unknown as string })).toThrow(/pidFile must be a file path/);
    expect(() => resolveConfig({ program, pidFile: '/run/x.pid', controlSocket: '/run/x.pid' })).toThrow(/must be different paths/);
    expect(() => resolveConfig({ program, pidFile: `/run/${'d'.repeat(120)}/x.pid` })).toThrow(/past the 107 bytes a unix socket path may have/);
  });
});
