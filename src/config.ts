import type { Server } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { ConfigError } from './errors.js';
import type { Fetcher } from './fetchers/fetcher.js';
import type { Logger } from './logger.js';
import { resolveHealthOptions, type HealthOptions } from './health-options.js';
export { parseByteSize } from './health-options.js';
import { milliseconds, positive } from './option-values.js';

/**
 * A listener as a worker receives it: pass it to `server.listen()`. Under a master it is the
 * inherited file descriptor; in-process (`state.enabled === false`) it is the address itself.
 */
export type ListenerHandle = { fd: number } | { port: number; host?: string } | { path: string };

/** What `program` receives. */
export interface State {
  /** False when the program runs in-process without a master (see `required`). */
  readonly enabled: boolean;
  /** Hex SHA-256 of the running build. */
  readonly id: string;
  /** When this worker started. */
  readonly startedAt: Date;
  /** The first listener; throws if no address is configured. */
  readonly listener: ListenerHandle;
  /** One listener per configured address, in address order. */
  readonly listeners: readonly ListenerHandle[];
  /** The first address as bound, with the port the OS chose when `0` was asked for. */
  readonly address: string;
  /** Every address as bound, in order. */
  readonly addresses: readonly string[];
  /** Aborted when the master asks this worker to stop. */
  readonly gracefulShutdown: AbortSignal;
  /** Path of the running build (the entry script). */
  readonly binPath: string;
  /** Generation number: 1 for the first, +1 on each restart. */
  readonly generation: number;
  /**
   * Listens on `listeners[index]` and registers the server to be drained when this worker is
   * asked to stop. Resolves once the server is listening.
   */
  serve(server: Server, index?: number): Promise<void>;
  /** Tells the master this worker is ready before `program` returns. */
  ready(): void;
}

/** The user's server: runs in every worker. Ready when it resolves or calls `state.ready()`. */
export type Program = (state: State) => unknown;

/** Options of `run()`. Only `program` is required. */
export interface Config {
  program: Program;
  /** One address: `':3000'`, `'127.0.0.1:3000'`, `'[::1]:3000'`, `'unix:/path'`; port 0 picks one. */
  address?: string | number;
  /** Several addresses; listeners are handed over in this order. */
  addresses?: ReadonlyArray<string | number>;
  /** Where new builds come from. */
  fetcher?: Fetcher;
  /** Signal that triggers a graceful restart. Default `'SIGUSR2'`. */
  restartSignal?: NodeJS.Signals;
  /** Milliseconds an old worker may drain before it is killed. Default 30000. */
  terminateTimeout?: number;
  /** Milliseconds a new worker may take to become ready before the restart is abandoned. Default 30000. */
  readyTimeout?: number;
  /** Smallest gap between two fetches, in milliseconds, whatever intervals, watches or retries ask. Default 250. */
  minFetchInterval?: number;
  /** Runs on a fetched build before it is installed; throwing cancels the upgrade. */
  preUpgrade?: (tempPath: string) => unknown;
  /** Workers per generation: a number, or `'auto'` for one per CPU. Default 1. */
  workers?: number | 'auto';
  /**
   * Keep one warm spare per worker: a node process that has booted and loaded overseer, waiting to
   * run the build at the next restart or crash replacement, so that a worker starts in about the
   * time the program's own start-up takes. Each spare is an idle node process: about 12 MB of
   * memory of its own (PSS; its RSS of ~40 MB is mostly node's code, shared with the workers). Applies to script builds started with `run()`; plain
   * commands and native builds always start cold. Default true.
   */
  warmStart?: boolean;
  /** Fail instead of running in-process where the platform cannot supervise. Default false. */
  required?: boolean;
  /** Treat the restart signal as a graceful shutdown instead. */
  noRestart?: boolean;
  /** Install fetched builds but do not restart onto them. */
  noRestartAfterFetch?: boolean;
  /** A pino-compatible logger. Default: pino to stderr. */
  logger?: Logger;
  /** Log at debug level. */
  debug?: boolean;
  /** A minisign public key every fetched build must be signed with. */
  publicKey?: string;
  /** Old generations allowed to drain at once; past it the oldest is killed. Default 3. */
  maxDrainingGenerations?: number;
  /** Largest build a fetcher may hand over, in bytes. Default 512 MiB. */
  maxBuildSize?: number;
  /** Milliseconds a fetched build may take to load and reach `run()` in its sanity check. Default 15000. */
  sanityTimeout?: number;
  /** Milliseconds a fetcher may take to say whether there is a new build (not the download). Default 60000. */
  fetchTimeout?: number;
  /** App archives: releases kept in `releases/` besides the running and the previous one. Default 3. */
  keepReleases?: number;
  /** App archives: most bytes an archive may unpack to. Default 2 GiB. */
  maxReleaseSize?: number;
  /** App archives: most entries an archive may hold. Default 200000. */
  maxReleaseFiles?: number;
  /**
   * Where the master writes its pid (resolved against the working directory). Written atomically
   * once the master has checked that no other live master holds it, before any address is bound;
   * removed when the master exits. A file left by a master that is gone is replaced with a warning.
   * `overseer status|restart|upgrade --pid-file <path>` find the master through it. Default: none.
   */
  pidFile?: string;
  /**
   * Path of the master's control socket, which `overseer status|restart|upgrade` talk to. Created
   * owner-only (0600) after binding, removed on exit. Default: `<pidFile>.sock` when `pidFile` is
   * set, otherwise no control socket. Put it in a directory only the master's user can write to
   * (such as `$XDG_RUNTIME_DIR` or `/run/<app>/`): whoever can write there can replace the socket.
   * At most 107 bytes long (the kernel's limit on a unix socket path).
   */
  controlSocket?: string;
  /**
   * Milliseconds between two heartbeats a worker sends the master over IPC, from a timer that
   * cannot fire while the worker's event loop is blocked. Default 1000.
   */
  livenessInterval?: number;
  /**
   * Milliseconds without a heartbeat after which a worker counts as hung: a replacement starts in
   * its slot and, once it is ready, the hung worker is killed (SIGKILL: it cannot drain, so what was
   * in flight in it is lost). `false` turns the check off. Only workers that run `run()` send
   * heartbeats: plain commands (`overseer run -- <command>`) are never counted hung. Default 10000.
   */
  livenessTimeout?: number | false;
  /**
   * Resident memory (RSS) a worker may use, in bytes or as a string such as `'512MB'` (units are
   * powers of 1024: `KB`, `MB`, `GB`, also written `KiB`, `MiB`, `GiB`). A worker over it is
   * replaced gracefully, one worker at a time: a new worker starts in its slot, and once it is ready
   * the old one drains as in a restart. Default: no limit.
   */
  maxMemory?: number | string;
  /** Milliseconds between two samples of every worker's memory, when `maxMemory` is set. Default 5000. */
  memoryCheckInterval?: number;
}

/** `Config` with every default applied and every value checked. */
export interface ResolvedConfig extends HealthOptions {
  program: Program;
  addresses: string[];
  fetcher: Fetcher | undefined;
  restartSignal: NodeJS.Signals;
  terminateTimeout: number;
  readyTimeout: number;
  minFetchInterval: number;
  preUpgrade: ((tempPath: string) => unknown) | undefined;
  workers: number;
  warmStart: boolean;
  required: boolean;
  noRestart: boolean;
  noRestartAfterFetch: boolean;
  logger: Logger | undefined;
  debug: boolean;
  publicKey: string | undefined;
  maxDrainingGenerations: number;
  maxBuildSize: number;
  sanityTimeout: number;
  fetchTimeout: number;
  keepReleases: number;
  maxReleaseSize: number;
  maxReleaseFiles: number;
  /** Absolute path, or undefined for none. */
  pidFile: string | undefined;
  /** Absolute path, or undefined for no control socket. */
  controlSocket: string | undefined;
}

const SIGNALS_NOT_FOR_RESTART = new Set(['SIGKILL', 'SIGSTOP', 'SIGTERM', 'SIGINT', 'SIGUSR1']);

function resolveWorkers(value: Config['workers']): number {
  if (value === undefined) return 1;
  if (value === 'auto') return Math.max(1, availableParallelism());
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`workers must be a whole number >= 1 or 'auto', got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveWarmStart(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw new ConfigError(`warmStart must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function resolveAddresses(config: Config): string[] {
  if (config.address !== undefined && config.addresses !== undefined) {
    throw new ConfigError('give either address or addresses, not both: put every address in addresses');
  }
  const list = config.addresses ?? (config.address === undefined ? [] : [config.address]);
  if (!Array.isArray(list)) {
    throw new ConfigError(`addresses must be an array of strings such as [':3000'], got ${JSON.stringify(list)}`);
  }
  return list.map((entry) => (typeof entry === 'number' ? `:${entry}` : String(entry)));
}

/** The kernel's limit on a unix socket path (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

function optionalPath(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.includes('\0')) {
    throw new ConfigError(`${name} must be a file path such as '/run/app/overseer.pid', got ${JSON.stringify(value)}`);
  }
  return resolvePath(value);
}

function resolveOperationFiles(config: Config): { pidFile: string | undefined; controlSocket: string | undefined } {
  const pidFile = optionalPath('pidFile', config.pidFile);
  const controlSocket = optionalPath('controlSocket', config.controlSocket) ?? (pidFile === undefined ? undefined : `${pidFile}.sock`);
  if (controlSocket !== undefined && Buffer.byteLength(controlSocket) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `controlSocket ${controlSocket} is ${Buffer.byteLength(controlSocket)} bytes long, past the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have: ` +
        'choose a shorter path (set controlSocket, or a shorter pidFile, which it defaults from)',
    );
  }
  if (pidFile !== undefined && pidFile === controlSocket) {
    throw new ConfigError('pidFile and controlSocket must be different paths: leave controlSocket out to use <pidFile>.sock');
  }
  return { pidFile, controlSocket };
}

/** Checks a user's config and fills in defaults. Throws `ConfigError` naming the bad option. */
export function resolveConfig(config: Config): ResolvedConfig {
  if (config === null || typeof config !== 'object') {
    throw new ConfigError('run() takes an options object: run({ program, address })');
  }
  if (typeof config.program !== 'function') {
    throw new ConfigError('program is required: run({ program: async (state) => { ... } })');
  }
  const restartSignal = config.restartSignal ?? 'SIGUSR2';
  if (typeof restartSignal !== 'string' || !restartSignal.startsWith('SIG') || SIGNALS_NOT_FOR_RESTART.has(restartSignal)) {
    throw new ConfigError(
      `restartSignal ${JSON.stringify(restartSignal)} cannot be used: choose a signal such as 'SIGUSR2' or 'SIGHUP' ` +
        '(SIGTERM and SIGINT stop the master, SIGUSR1 belongs to the Node.js debugger)',
    );
  }
  const maxDrainingGenerations = config.maxDrainingGenerations ?? 3;
  if (!Number.isInteger(maxDrainingGenerations) || maxDrainingGenerations < 1) {
    throw new ConfigError(`maxDrainingGenerations must be a whole number >= 1, got ${JSON.stringify(maxDrainingGenerations)}`);
  }
  if (config.fetcher !== undefined && (typeof config.fetcher !== 'object' || config.fetcher === null || typeof config.fetcher.fetch !== 'function')) {
    throw new ConfigError('fetcher must be an object with a fetch(signal) method, such as new FileFetcher({ path }) or new HTTPFetcher({ url })');
  }
  if (config.preUpgrade !== undefined && typeof config.preUpgrade !== 'function') {
    throw new ConfigError('preUpgrade must be a function (tempPath) => void | Promise<void>');
  }
  if (config.logger !== undefined && (typeof config.logger !== 'object' || typeof config.logger.info !== 'function')) {
    throw new ConfigError('logger must be a pino-compatible logger (an object with info, warn, error, debug and child)');
  }
  return {
    program: config.program,
    addresses: resolveAddresses(config),
    fetcher: config.fetcher,
    restartSignal,
    terminateTimeout: milliseconds('terminateTimeout', config.terminateTimeout, 30_000),
    readyTimeout: milliseconds('readyTimeout', config.readyTimeout, 30_000),
    minFetchInterval: milliseconds('minFetchInterval', config.minFetchInterval, 250, 0),
    preUpgrade: config.preUpgrade,
    workers: resolveWorkers(config.workers),
    warmStart: resolveWarmStart(config.warmStart),
    required: config.required ?? false,
    noRestart: config.noRestart ?? false,
    noRestartAfterFetch: config.noRestartAfterFetch ?? false,
    logger: config.logger,
    debug: config.debug ?? false,
    publicKey: config.publicKey,
    maxDrainingGenerations,
    maxBuildSize: positive('maxBuildSize', config.maxBuildSize, 512 * 1024 * 1024, 1, 'bytes'),
    sanityTimeout: milliseconds('sanityTimeout', config.sanityTimeout, 15_000),
    fetchTimeout: milliseconds('fetchTimeout', config.fetchTimeout, 60_000),
    keepReleases: positive('keepReleases', config.keepReleases, 3, 0, 'releases'),
    maxReleaseSize: positive('maxReleaseSize', config.maxReleaseSize, 2 * 1024 ** 3, 1, 'bytes'),
    maxReleaseFiles: positive('maxReleaseFiles', config.maxReleaseFiles, 200_000, 1, 'entries'),
    ...resolveOperationFiles(config),
    ...resolveHealthOptions(config),
  };
}
