/**
 * `overseer run`: supervise a server that does not import overseer (`overseer run [options] --
 * <command...>`), or a script that calls run() itself (`overseer run app.mjs`).
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { resolveConfig } from '../config.js';
import type { Fetcher } from '../fetchers/fetcher.js';
import { parseAddress } from '../master/addresses.js';
import type { Entry } from '../master/worker-launch.js';
import { activatedSocketCount } from '../master/socket-activation.js';
import { EXIT_USAGE, failAndExit, oneLine, UsageError } from './cli-errors.js';
import {
  collect,
  DEFAULT_READY_DELAY_MS,
  defaultBin,
  findExecutable,
  isNodeProgram,
  parseMilliseconds,
  parseSignal,
  parseSize,
  parseWorkers,
} from './run-options.js';
import { chooseLogFormat, runScript, superviseCommand } from './supervise.js';

/** Options as commander hands them over. */
interface RunOptions {
  address?: string[];
  workers?: number | 'auto';
  terminateTimeout?: number;
  readyTimeout?: number;
  readyDelay?: number;
  maxMemory?: number;
  memoryCheckInterval?: number;
  restartSignal?: NodeJS.Signals;
  stopSignal?: NodeJS.Signals;
  bin?: string;
  fetchFile?: string;
  fetchUrl?: string;
  fetchGithub?: string;
  publicKey?: string;
  pidFile?: string;
  controlSocket?: string;
  pretty?: boolean;
  debug?: boolean;
}

const HELP_AFTER = `
Command mode (after --): the master binds every --address and runs <command> as each worker,
with the sockets as fds 3, 4, ... and LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID set as systemd
sets them (LISTEN_PID is the worker's own pid). Listen on { fd: 3 } when LISTEN_FDS is set.

  Readiness: a worker is ready when it calls process.send('ready'). A program that cannot
  (not node) is counted ready once it has run for --ready-delay ms, ${DEFAULT_READY_DELAY_MS} unless given; a node
  program gets no delay unless you pass one, so it must send 'ready' or the restart is abandoned
  after --ready-timeout.
  Memory: with --max-memory, the master reads each worker's RSS (/proc/<pid>/status on Linux)
  every --memory-check-interval ms; a worker past it is replaced as in a restart, one at a time.
  Hung workers: plain commands send no heartbeat, so no liveness check applies to them.
  Stopping: old workers get --stop-signal (SIGTERM) when their replacement is ready, and
  SIGKILL after --terminate-timeout.
  Upgrades: a build found by --fetch-* replaces --bin, by default the first argument of the
  command that names an existing file (node server.mjs -> server.mjs), or the command itself
  when given by path (./server).

Script mode (no --): runs a script that calls run() from overseer itself, as node would; its own
run() options apply, and only --pretty and --debug may be given here.

systemd: started with LISTEN_FDS for this process (a .socket unit, or systemd-socket-activate),
the master serves on those sockets instead of binding. With NOTIFY_SOCKET set it reports READY=1,
RELOADING=1 and STOPPING=1 through systemd-notify.

Signals to the master: SIGUSR2 (--restart-signal) restarts with no downtime; SIGTERM or SIGINT
drain the workers and exit.

Logs: coloured lines when stderr is a terminal or with --pretty, JSON lines otherwise.

Examples:
  overseer run --address :3000 --workers 2 -- node examples/listen-fds/server.mjs
  overseer run -a 127.0.0.1:8080 --ready-delay 500 -- ./my-server --config prod.toml
  overseer run app.mjs
  kill -USR2 <master pid>
`;

function optionsGiven(command: Command, except: readonly string[]): string[] {
  return command.options
    .map((option) => option.attributeName())
    .filter((name, index, all) => all.indexOf(name) === index && !except.includes(name))
    .filter((name) => command.getOptionValueSource(name) === 'cli')
    .map((name) => `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`);
}

/** Whether the operands came after a `--` (command mode) rather than as the first operand (script mode). */
function afterDoubleDash(command: Command, operands: readonly string[]): boolean {
  // commander keeps what it parsed as rawArgs (not in its typings); process.argv when it is gone.
  const raw = (command.parent as { rawArgs?: unknown } | null)?.rawArgs;
  const words = Array.isArray(raw) ? (raw as string[]) : process.argv;
  return words[words.length - operands.length - 1] === '--';
}

async function makeFetcher(options: RunOptions): Promise<Fetcher | undefined> {
  const given = [options.fetchFile && '--fetch-file', options.fetchUrl && '--fetch-url', options.fetchGithub && '--fetch-github'].filter(Boolean);
  if (given.length > 1) throw new UsageError(`${given.join(' and ')} given: overseer watches one source of builds, give only one of them`);
  if (options.fetchFile !== undefined) {
    const { FileFetcher } = await import('../fetchers/file.js');
    return new FileFetcher({ path: options.fetchFile });
  }
  if (options.fetchUrl !== undefined) {
    const { HTTPFetcher } = await import('../fetchers/http.js');
    return new HTTPFetcher({ url: options.fetchUrl });
  }
  if (options.fetchGithub !== undefined) return makeGitHubFetcher(options.fetchGithub);
  return undefined;
}

async function makeGitHubFetcher(spec: string): Promise<Fetcher> {
  const match = /^([^/\s]+)\/([^/\s]+)$/.exec(spec);
  if (!match) throw new UsageError(`--fetch-github ${JSON.stringify(spec)} is not owner/repo: write it as --fetch-github octocat/hello-world`);
  const { GitHubFetcher } = await import('../fetchers/github.js');
  // The token, when needed, comes from GITHUB_TOKEN: never from the command line, where ps shows it.
  return new GitHubFetcher({ owner: match[1]!, repo: match[2]! });
}

async function readPublicKey(keyOrPath: string): Promise<string> {
  const { loadPublicKey } = await import('../master/upgrade/minisign.js');
  await loadPublicKey(keyOrPath);
  // The key line itself, wherever it came from.
  if (/^RW[A-Za-z0-9+/]{54}$/.test(keyOrPath.trim())) return keyOrPath.trim();
  const text = await readFile(keyOrPath, 'utf8');
  return text.trim().split('\n').at(-1)!.trim();
}

/** Checks a command-mode invocation and becomes its master. */
async function runCommandMode(argv: readonly string[], options: RunOptions): Promise<void> {
  const debug = options.debug === true;
  const [name] = argv;
  if (name === undefined || name === '') {
    throw new UsageError('no command after --: write overseer run [options] -- <command> [args...], such as overseer run -a :3000 -- node server.mjs');
  }
  const found = findExecutable(name);
  if ('problem' in found) {
    throw new UsageError(
      found.problem === 'missing'
        ? `command not found: ${name}: install it, or give its path (overseer run -- /path/to/${name})`
        : `${name} is not executable: chmod +x ${name}, or run it through its interpreter (overseer run -- node ${name})`,
    );
  }
  const addresses = options.address ?? [];
  for (const address of addresses) parseAddress(address);
  if (addresses.length === 0 && activatedSocketCount() === 0) {
    throw new UsageError('no address to listen on: give --address :3000 (repeatable), or start overseer from a systemd .socket unit');
  }
  const bin = options.bin !== undefined ? { path: options.bin, fromPath: false } : defaultBin(argv, found.path);
  const fetcher = await makeFetcher(options);
  if (fetcher && bin.fromPath) {
    throw new UsageError(
      `--fetch-* needs to know which file a new build replaces, and ${name} was found on PATH: give --bin <path> (a file the command runs)`,
    );
  }
  const publicKey = options.publicKey !== undefined ? await readPublicKey(options.publicKey) : undefined;
  const config = resolveConfig({
    // Never called: the workers run the command.
    program: () => {},
    addresses,
    ...(options.workers !== undefined && { workers: options.workers }),
    ...(options.terminateTimeout !== undefined && { terminateTimeout: options.terminateTimeout }),
    ...(options.readyTimeout !== undefined && { readyTimeout: options.readyTimeout }),
    ...(options.restartSignal !== undefined && { restartSignal: options.restartSignal }),
    ...(options.maxMemory !== undefined && { maxMemory: options.maxMemory }),
    ...(options.memoryCheckInterval !== undefined && { memoryCheckInterval: options.memoryCheckInterval }),
    ...(fetcher !== undefined && { fetcher }),
    ...(publicKey !== undefined && { publicKey }),
    ...(options.pidFile !== undefined && { pidFile: options.pidFile }),
    ...(options.controlSocket !== undefined && { controlSocket: options.controlSocket }),
    debug,
  });
  const readyDelay = options.readyDelay ?? (isNodeProgram(found.path) ? undefined : DEFAULT_READY_DELAY_MS);
  const entry: Entry = {
    binPath: resolveBin(bin.path),
    execPath: process.execPath,
    execArgv: [],
    args: argv.slice(1),
    command: { argv, stopSignal: options.stopSignal ?? 'SIGTERM', readyDelay },
  };
  await superviseCommand(config, entry);
}

/** The file upgrades replace and the build id is taken from: it must exist (a script the command reads need not be executable). */
function resolveBin(path: string): string {
  try {
    // Not realpath: a path through a release layout's current link must keep the link.
    if (statSync(path).isFile()) return resolve(path);
  } catch {
    // reported below
  }
  throw new UsageError(`--bin ${path} is not an existing file: give the file the command runs, which upgrades replace`);
}

/** Adds `overseer run` to `program`. */
export function addRunCommand(program: Command): void {
  // Options after the script or command belong to it, not to overseer.
  program.enablePositionalOptions();
  program
    .command('run')
    .summary('supervise a server with zero-downtime restarts: overseer run [options] -- <command...>')
    .description('Run a server under an overseer master: zero-downtime restarts on SIGUSR2, crashed workers replaced, upgrades from a build source.')
    .usage('[options] -- <command> [args...]\n       overseer run [--pretty] [--debug] <script> [args...]')
    .argument('[command...]', 'the command to run as each worker (after --), or a script that calls run()')
    .option('-a, --address <address>', "address to listen on, repeatable: ':3000', '127.0.0.1:3000', '[::1]:3000', 'unix:/run/app.sock'", collect)
    .option('-w, --workers <n>', "workers per generation, or 'auto' for one per CPU (default: 1)", parseWorkers)
    .option('--terminate-timeout <ms>', 'how long an old worker may drain before SIGKILL (default: 30000)', parseMilliseconds)
    .option('--ready-timeout <ms>', 'how long a new worker may take to be ready before the restart is abandoned (default: 30000)', parseMilliseconds)
    .option('--ready-delay <ms>', `count a worker ready once it has run this long, for programs that never send 'ready' (default: ${DEFAULT_READY_DELAY_MS} when the command is not node, else none)`, parseMilliseconds)
    .option('--max-memory <size>', 'replace a worker whose resident memory (RSS) grows past this, one at a time, with no downtime: 512MB, 2GB (default: no limit)', parseSize)
    .option('--memory-check-interval <ms>', 'how often each worker\'s memory is sampled when --max-memory is given (default: 5000)', parseMilliseconds)
    .option('--restart-signal <signal>', 'signal to the master that restarts the workers (default: SIGUSR2)', parseSignal)
    .option('--stop-signal <signal>', 'signal that asks an old worker to drain and exit (default: SIGTERM)', parseSignal)
    .option('--bin <path>', 'the file a fetched build replaces (default: the first argument naming an existing file)')
    .option('--fetch-file <path>', 'upgrade from a build file on this machine when it changes')
    .option('--fetch-url <url>', 'upgrade from a build published at an HTTP(S) URL')
    .option('--fetch-github <owner/repo>', "upgrade from a GitHub repository's latest release (token from GITHUB_TOKEN)")
    .option('--public-key <key|path>', 'minisign public key (its RW... line, or a .pub file) every fetched build must be signed with')
    .option('--pid-file <path>', 'write the master pid here, and open its control socket at <path>.sock (for overseer restart/status/upgrade -p <path>)')
    .option('--control-socket <path>', 'the control socket, when it should not be <pid file>.sock')
    .option('--pretty', 'coloured log lines for people (default when stderr is a terminal)')
    .option('--no-pretty', 'JSON log lines even on a terminal')
    .option('--debug', 'log at debug level, and print stack traces with errors')
    .passThroughOptions()
    .showHelpAfterError(false)
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      outputError: (text, write) => write(`overseer run: ${oneLine(text.replace(/^error: /, ''))}: see overseer run --help\n`),
    })
    .exitOverride((error) => {
      process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (operands: string[], options: RunOptions, command: Command) => {
      const debug = options.debug === true;
      try {
        chooseLogFormat(options.pretty ?? process.stderr.isTTY === true, debug);
        if (afterDoubleDash(command, operands)) {
          await runCommandMode(operands, options);
          return;
        }
        const [script, ...args] = operands;
        if (script === undefined) {
          throw new UsageError('nothing to run: write overseer run [options] -- <command> [args...], or overseer run app.mjs for a script that calls run()');
        }
        const misplaced = optionsGiven(command, ['pretty', 'debug']);
        if (misplaced.length > 0) {
          throw new UsageError(
            `${misplaced.join(', ')} apply to a command after --, not to a script that calls run() (${script}): ` +
              `set them in its run() options, or write overseer run ${misplaced[0]} ... -- node ${script}`,
          );
        }
        await runScript(script, args, debug);
      } catch (error) {
        failAndExit(error, debug);
      }
    });
}
