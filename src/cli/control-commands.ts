/**
 * `overseer status|restart|upgrade`, which talk to a running master through its control socket,
 * and `overseer keygen|sign`. Exit codes: 0 done; 1 the master answered that the operation failed
 * (a restart abandoned, an upgrade rejected); 2 no master could be reached, or bad arguments.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { describeError } from '../errors.js';
import { askControlSocket, ControlConnectionError, type ControlCommand } from '../master/control-client.js';
import type { RestartOutcome } from '../master/generation.js';
import { parsePid, processExists } from '../master/pid-file.js';
import type { MasterStatus } from '../master/status.js';
import type { BuildStatus, UpgradeRecord } from '../master/upgrade/status.js';
import { keygenCommand, signCommand } from './signing.js';
import { formatElapsed, formatStatus, shortId } from './status-table.js';

/** A command's failure as its user sees it: one line, and the exit code that classifies it. */
class CommandFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'CommandFailure';
  }
}

interface TargetOptions {
  pidFile?: string;
  control?: string;
  timeout: string;
  debug?: boolean;
}

/** The master's control socket, from `--control` or beside the pid file, after checking the pid file names a live process. */
async function findControlSocket(options: TargetOptions): Promise<{ socket: string; pid: number | undefined }> {
  if (options.pidFile === undefined && options.control === undefined) {
    throw new CommandFailure("which master? pass --pid-file <path> (the master's pidFile option) or --control <socket path>", 2);
  }
  if (options.pidFile === undefined) return { socket: resolve(options.control!), pid: undefined };
  const pidFile = resolve(options.pidFile);
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CommandFailure(`no overseer master: pid file ${pidFile} does not exist; start the master (pidFile: '${pidFile}') or pass the path it uses`, 2);
    }
    throw new CommandFailure(`cannot read pid file ${pidFile}: ${describeError(error)}; run as the master's user`, 2);
  }
  const pid = parsePid(text);
  if (pid === undefined) throw new CommandFailure(`pid file ${pidFile} holds no pid; is it an overseer master's pid file?`, 2);
  if (!processExists(pid)) {
    throw new CommandFailure(`no overseer master: pid ${pid} in ${pidFile} is not running (the master died without removing it); start the master again`, 2);
  }
  return { socket: options.control === undefined ? `${pidFile}.sock` : resolve(options.control), pid };
}

function timeoutMs(options: TargetOptions): number {
  const seconds = Number(options.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new CommandFailure(`--timeout must be a number of seconds > 0, got ${options.timeout}`, 2);
  return seconds * 1000;
}

function explainConnectionError(error: ControlConnectionError, socket: string, pid: number | undefined, timeout: number): string {
  const master = pid === undefined ? 'the master' : `master ${pid}`;
  switch (error.code) {
    case 'ENOENT':
      return `no control socket at ${socket}${pid === undefined ? '' : ` (pid ${pid} is running)`}; if the master sets controlSocket, pass that path with --control`;
    case 'ECONNREFUSED':
      return `no master listens on ${socket} (connection refused): it is gone or still starting; start it, or check --control`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${socket}: run this as the user ${master} runs as (or root)`;
    case 'ETIMEDOUT':
      return `${master} did not answer on ${socket} within ${formatElapsed(timeout)}; it may be busy: try again, or raise --timeout`;
    default:
      return `cannot talk to ${master} on ${socket}: ${error.message}`;
  }
}

/** Sends one command to the master and returns its answer; an `{ error }` answer becomes a failure. */
async function ask<T>(command: ControlCommand, options: TargetOptions): Promise<T> {
  const timeout = timeoutMs(options);
  const { socket, pid } = await findControlSocket(options);
  let answer: unknown;
  try {
    answer = await askControlSocket(socket, { cmd: command }, timeout);
  } catch (error) {
    if (error instanceof ControlConnectionError) throw new CommandFailure(explainConnectionError(error, socket, pid, timeout), 2);
    throw error;
  }
  if (typeof answer === 'object' && answer !== null && typeof (answer as { error?: unknown }).error === 'string') {
    throw new CommandFailure(`the master refused ${command}: ${(answer as { error: string }).error}`, 2);
  }
  return answer as T;
}

/** Runs a command's body, turning failures into one line on stderr and an exit code. */
function action<A extends unknown[]>(name: string, body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    const options = args.find((arg): arg is { debug?: boolean } => typeof arg === 'object' && arg !== null && !(arg instanceof Command));
    try {
      await body(...args);
    } catch (error) {
      process.exitCode = error instanceof CommandFailure ? error.exitCode : 2;
      const stack = options?.debug && error instanceof Error && !(error instanceof CommandFailure) ? `\n${error.stack}` : '';
      process.stderr.write(`overseer ${name}: ${describeError(error)}${stack}\n`);
    }
  };
}

function targetCommand(program: Command, name: string, description: string, defaultTimeout: string): Command {
  return program
    .command(name)
    .description(description)
    .option('-p, --pid-file <path>', "the master's pid file (its pidFile option); its control socket is <path>.sock")
    .option('-c, --control <socket>', "the master's control socket, when it is not <pid file>.sock")
    .option('--timeout <seconds>', 'how long to wait for the answer', defaultTimeout)
    .option('--debug', 'print stack traces of unexpected errors');
}

function describeUpgradeRecord(upgrade: UpgradeRecord): string {
  const version = upgrade.version ? ` (${upgrade.version})` : '';
  const reason = upgrade.reason ? `: ${upgrade.reason}` : '';
  return `${upgrade.outcome} build ${shortId(upgrade.buildId)}${version} from ${upgrade.source}${reason}`;
}

async function restartAction(options: TargetOptions): Promise<void> {
  const outcome = await ask<RestartOutcome>('restart', options);
  if (!outcome.ok) {
    const generation = outcome.generation === undefined ? '' : ` (generation ${outcome.generation})`;
    throw new CommandFailure(`restart abandoned${generation}: ${outcome.reason}; the old workers keep serving`, 1);
  }
  process.stdout.write(`restarted: generation ${outcome.generation} serving build ${shortId(outcome.buildId)}, ready in ${formatElapsed(outcome.durationMs)}\n`);
}

async function statusAction(options: TargetOptions & { json?: boolean }): Promise<void> {
  const status = await ask<MasterStatus>('status', options);
  const width = Math.max(60, Math.min(process.stdout.columns || 80, 120));
  process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, { width }));
}

async function upgradeAction(options: TargetOptions): Promise<void> {
  const before = await ask<MasterStatus>('status', options);
  const after = await ask<BuildStatus>('upgrade', options);
  if (after.sources.length === 0) {
    throw new CommandFailure('this master has no fetcher, so there is nothing to check: set fetcher in its run() options', 1);
  }
  const previous = before.build.lastUpgrade;
  const upgrade = after.lastUpgrade;
  if (upgrade && (previous === undefined || upgrade.at !== previous.at)) {
    const line = describeUpgradeRecord(upgrade);
    if (upgrade.outcome === 'rejected' || upgrade.outcome === 'rolled back') throw new CommandFailure(`upgrade ${line}`, 1);
    process.stdout.write(`upgrade: ${line}; running ${shortId(after.running.buildId)}\n`);
    return;
  }
  const failed = after.sources.filter((source) => source.lastResult === 'failed');
  if (failed.length > 0) {
    throw new CommandFailure(failed.map((source) => `checking ${source.source} failed: ${source.lastError ?? 'no reason given'}`).join('; '), 1);
  }
  process.stdout.write(`no new build at ${after.sources.map((source) => source.source).join(', ')}; running ${shortId(after.running.buildId)}\n`);
}

/** The password for keys, from the environment: never a command-line argument, which `ps` shows. */
function keyPassword(): string | undefined {
  const password = process.env.OVERSEER_KEY_PASSWORD;
  return password === undefined || password === '' ? undefined : password;
}

/** Adds `status`, `restart`, `upgrade`, `keygen` and `sign` to the `overseer` command. */
export function addControlCommands(program: Command): void {
  targetCommand(program, 'restart', 'restart the master\'s workers gracefully and wait for the outcome (exit 1 when abandoned)', '600')
    .action(action('restart', restartAction));
  targetCommand(program, 'status', 'show the master, its workers by generation, its sources and its last upgrade', '10')
    .option('--json', 'print the raw status as JSON')
    .action(action('status', statusAction));
  targetCommand(program, 'upgrade', 'check the master\'s sources for a new build now and print what became of it', '600')
    .action(action('upgrade', upgradeAction));
  program
    .command('keygen')
    .description('make a minisign key pair for signing builds (secret key encrypted with $OVERSEER_KEY_PASSWORD when set)')
    .option('-o, --output <prefix>', 'write <prefix>.pub and <prefix>.key', 'overseer')
    .option('-f, --force', 'replace an existing key pair')
    .option('--debug', 'print stack traces of unexpected errors')
    .action(
      action('keygen', async (options: { output: string; force?: boolean }) => {
        const password = keyPassword();
        const result = await keygenCommand({ output: options.output, force: options.force === true, ...(password === undefined ? {} : { password }) });
        process.stdout.write(
          `wrote ${result.publicKeyPath} and ${result.secretKeyPath} (key id ${result.keyId}${password === undefined ? ', secret key not encrypted' : ''})\n` +
            `publicKey for run(): ${result.publicKey}\n`,
        );
      }),
    );
  program
    .command('sign')
    .description('sign a build with a minisign secret key, writing <file>.minisig (key password from $OVERSEER_KEY_PASSWORD)')
    .argument('<file>', 'the build to sign')
    .addOption(new Option('-s, --secret-key <path>', 'the secret key (from overseer keygen or minisign -G)').makeOptionMandatory())
    .option('-t, --trusted-comment <text>', 'the signed comment stored in the signature')
    .option('--debug', 'print stack traces of unexpected errors')
    .action(
      action('sign', async (file: string, options: { secretKey: string; trustedComment?: string }) => {
        const password = keyPassword();
        const result = await signCommand(file, {
          secretKey: options.secretKey,
          ...(options.trustedComment === undefined ? {} : { trustedComment: options.trustedComment }),
          ...(password === undefined ? {} : { password }),
        });
        process.stdout.write(`wrote ${result.signaturePath} (key id ${result.keyId}, trusted comment: ${result.trustedComment})\n`);
      }),
    );
}
