import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

/**
 * Every temporary directory of this test run carries this marker, so that the run's leftover
 * processes can be found, and only its own: other runs on the machine have other markers.
 */
export function tempMarker(): string {
  return `overseer-test-${process.env.OVERSEER_TEST_RUN ?? process.pid}-`;
}

export const DIST_INDEX = pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'index.js')).href;

/** The real `overseer` command line (it runs dist/, built by `npm run build`). */
export const CLI_BIN = join(import.meta.dirname, '..', '..', 'bin', 'overseer.js');

/** pino as this checkout installed it, for test programs that live outside the checkout. */
export const PINO_URL = pathToFileURL(createRequire(import.meta.url).resolve('pino')).href;

export interface LogLine {
  msg: string;
  level: number;
  pid: number;
  [field: string]: unknown;
}

const started = new Set<MasterProcess>();
const tempDirs = new Set<string>();

export function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), tempMarker()));
  tempDirs.add(dir);
  return dir;
}

/** A master started by a test, in its own process group so that cleanup can kill it and its workers. */
export class MasterProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  /** Lines on stderr or stdout that are not JSON log lines. */
  readonly otherOutput: string[] = [];
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** `launcher` starts node through another program (`systemd-socket-activate -l ... node`) that execs it. */
  constructor(script: string, env: NodeJS.ProcessEnv = {}, args: string[] = [], launcher?: { command: string; args: string[] }) {
    const command = launcher?.command ?? process.execPath;
    const argv = launcher ? [...launcher.args, process.execPath, script, ...args] : [script, ...args];
    this.child = spawn(command, argv, {
      env: { ...process.env, ...env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.add(this);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then(() => this.notify());
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          this.addLine(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
        }
      });
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  private addLine(line: string): void {
    try {
      const parsed = JSON.parse(line) as LogLine;
      if (typeof parsed.msg === 'string') this.logs.push(parsed);
      else this.otherOutput.push(line);
    } catch {
      this.otherOutput.push(line);
    }
    this.notify();
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter();
  }

  /** Log lines whose message starts with `prefix`. */
  find(prefix: string, where: (line: LogLine) => boolean = () => true): LogLine[] {
    return this.logs.filter((line) => line.msg.startsWith(prefix) && where(line));
  }

  /** Waits until `find` finds something, failing with `what` when the process exits first or `timeoutMs` passes. */
  private waitFor<T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) {
          cleanup();
          resolve(found);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          cleanup();
          reject(new Error(`process exited before ${what}; output:\n${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`not within ${timeoutMs} ms: ${what}; output:\n${this.describe()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for the `count`-th log line matching; fails naming `prefix` if it does not come. */
  waitForLog(prefix: string, options: { count?: number; timeoutMs?: number; where?: (line: LogLine) => boolean } = {}): Promise<LogLine> {
    const { count = 1, timeoutMs = 15_000, where } = options;
    return this.waitFor(() => this.find(prefix, where)[count - 1], `logging "${prefix}" (#${count})`, timeoutMs);
  }

  /** Waits for a line of other output (not a JSON log line) matching `pattern`. */
  waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    return this.waitFor(() => this.otherOutput.find((line) => pattern.test(line)), `printing ${pattern}`, timeoutMs);
  }


  /** The first bound address, once the master has bound it. */
  async address(index = 0): Promise<string> {
    const line = await this.waitForLog('bound', { count: index + 1 });
    return String(line.address);
  }

  async port(index = 0): Promise<number> {
    const address = await this.address(index);
    return Number(address.slice(address.lastIndexOf(':') + 1));
  }

  async waitForExit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`master ${this.pid} did not exit within ${timeoutMs} ms; log:\n${this.describe()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  describe(): string {
    return [...this.logs.map((line) => `${line.msg} ${JSON.stringify({ ...line, msg: undefined, time: undefined, hostname: undefined, level: undefined })}`), ...this.otherOutput]
      .slice(-60)
      .join('\n');
  }

  /** Kills the master's whole process group: it and every worker it started. */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // group already gone
    }
  }
}

export function startMaster(script: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): MasterProcess {
  return new MasterProcess(script, env, args);
}

/** Starts `overseer <args>` (the real binary) in its own process group, like `startMaster`. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, launcher?: { command: string; args: string[] }): MasterProcess {
  return new MasterProcess(CLI_BIN, env, args, launcher);
}

/** For afterEach: kills every master group a test started and removes its temporary files. */
export async function cleanupAll(): Promise<void> {
  for (const master of started) {
    master.killGroup();
    await master.exited;
  }
  started.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Whether a process is running. A zombie is not: it has exited and waits to be reaped, and an
 * orphan's zombie waits for PID 1, which may take its time.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `condition` until true; fails with `what` after `timeoutMs`. For state with no event to wait on (a pid gone). */
export async function eventually(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function writeFile(path: string, content: string): void {
  writeFileSync(path, content);
}
