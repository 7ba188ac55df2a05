import { LOG_LEVELS, type LogLevel } from './logger.js';

/**
 * What the master and its workers say to each other: environment variables set on spawn and
 * IPC messages. Kept in one module so both sides agree by construction.
 */

export const ENV = {
  worker: 'OVERSEER_WORKER',
  binId: 'OVERSEER_BIN_ID',
  binPath: 'OVERSEER_BIN_PATH',
  generation: 'OVERSEER_GENERATION',
  addresses: 'OVERSEER_ADDRESSES',
  terminateTimeout: 'OVERSEER_TERMINATE_TIMEOUT',
  /** Milliseconds between heartbeats; set only when the master checks liveness. */
  livenessInterval: 'OVERSEER_LIVENESS_INTERVAL',
  /** Set by the master when it checks a candidate build: `run()` prints it back and exits. */
  sanity: 'OVERSEER_SANITY_CHECK',
  binVersion: 'OVERSEER_BIN_VERSION',
  listenFds: 'LISTEN_FDS',
  listenFdNames: 'LISTEN_FDNAMES',
  listenPid: 'LISTEN_PID',
} as const;

/** What `run()` prints in sanity-check mode, followed by the token the master chose. */
export const SANITY_PREFIX = 'overseer-sanity-check:';

/** systemd socket activation and overseer both hand listeners over from fd 3 up. */
export const FIRST_LISTENER_FD = 3;

/** What a child that does not use the library sends when it serves (the PM2 convention). */
export const PLAIN_READY_MESSAGE = 'ready';

export type WorkerToMaster =
  | { overseer: 'ready' }
  /** Draining: the worker's servers have closed their listeners and accept nothing more. */
  | { overseer: 'stopped-accepting' }
  | { overseer: 'restart' }
  | { overseer: 'failed'; message: string }
  | HeartbeatMessage
  | WorkerLogMessage;

/** A log line a worker hands to the master to write (see `relayLogger`). */
export interface WorkerLogMessage {
  overseer: 'log';
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
}

/** A worker's sign of life; `rss` (bytes) is where /proc cannot tell the master a worker's memory. */
export interface HeartbeatMessage {
  overseer: 'heartbeat';
  rss: number;
}

export interface StopMessage {
  overseer: 'stop';
  /** Milliseconds the worker has before the master kills it. */
  timeout: number;
}

/** A warm spare tells the master it has booted and waits for a build to run (see `SparePool`). */
export interface SpareReadyMessage {
  overseer: 'spare-ready';
  /** False where this node cannot run a main module on request: the master then stops using spares. */
  supported: boolean;
}

/** The master turns a warm spare into a worker: the environment a worker spawned now would get, and its argv after node's own. */
export interface StartMessage {
  overseer: 'start';
  env: Record<string, string>;
  /** The entry script's path, then its arguments. */
  argv: string[];
}

export type MasterToWorker = StopMessage | StartMessage;

function isOverseerMessage(message: unknown): message is { overseer: unknown } {
  return typeof message === 'object' && message !== null && 'overseer' in message;
}

export function isReadyMessage(message: unknown): boolean {
  return message === PLAIN_READY_MESSAGE || (isOverseerMessage(message) && message.overseer === 'ready');
}

export function isStoppedAcceptingMessage(message: unknown): boolean {
  return isOverseerMessage(message) && message.overseer === 'stopped-accepting';
}

export function isRestartMessage(message: unknown): boolean {
  return isOverseerMessage(message) && message.overseer === 'restart';
}

export function asHeartbeatMessage(message: unknown): HeartbeatMessage | undefined {
  if (!isOverseerMessage(message) || message.overseer !== 'heartbeat') return undefined;
  const rss = Number((message as { rss?: unknown }).rss);
  return { overseer: 'heartbeat', rss: Number.isFinite(rss) && rss >= 0 ? rss : 0 };
}

export function asFailedMessage(message: unknown): { message: string } | undefined {
  if (isOverseerMessage(message) && message.overseer === 'failed') {
    const text = (message as { message?: unknown }).message;
    return { message: typeof text === 'string' ? text : 'unknown error' };
  }
  return undefined;
}

/** An Error as it crosses the IPC channel, which would otherwise keep none of its own properties. */
interface SerializedError {
  overseerError: true;
  name: string;
  message: string;
  stack: string | undefined;
  code: unknown;
}

export function serializeError(error: Error): SerializedError {
  return { overseerError: true, name: error.name, message: error.message, stack: error.stack, code: (error as NodeJS.ErrnoException).code };
}

function reviveError(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || (value as Partial<SerializedError>).overseerError !== true) return value;
  const { name, message, stack, code } = value as SerializedError;
  const error = new Error(message);
  error.name = name;
  error.stack = stack;
  if (code !== undefined) (error as NodeJS.ErrnoException).code = String(code);
  return error;
}

/** A worker's log line, with its errors made Errors again so the master's logger serializes them as such. */
export function asLogMessage(message: unknown): WorkerLogMessage | undefined {
  if (!isOverseerMessage(message) || message.overseer !== 'log') return undefined;
  const { level, msg, fields } = message as Partial<WorkerLogMessage>;
  if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) return undefined;
  const revived: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(typeof fields === 'object' && fields !== null ? fields : {})) revived[key] = reviveError(value);
  return { overseer: 'log', level, msg: typeof msg === 'string' ? msg : '', fields: revived };
}

export function asStopMessage(message: unknown): StopMessage | undefined {
  if (isOverseerMessage(message) && message.overseer === 'stop') {
    const timeout = Number((message as { timeout?: unknown }).timeout);
    return { overseer: 'stop', timeout: Number.isFinite(timeout) && timeout > 0 ? timeout : 30_000 };
  }
  return undefined;
}

export function asSpareReadyMessage(message: unknown): SpareReadyMessage | undefined {
  if (!isOverseerMessage(message) || message.overseer !== 'spare-ready') return undefined;
  return { overseer: 'spare-ready', supported: (message as { supported?: unknown }).supported === true };
}

export function asStartMessage(message: unknown): StartMessage | undefined {
  if (!isOverseerMessage(message) || message.overseer !== 'start') return undefined;
  const { env, argv } = message as { env?: unknown; argv?: unknown };
  if (typeof env !== 'object' || env === null || !Array.isArray(argv) || argv.length === 0) return undefined;
  if (!argv.every((arg): arg is string => typeof arg === 'string')) return undefined;
  const strings: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (typeof value === 'string') strings[key] = value;
  return { overseer: 'start', env: strings, argv };
}

export function isWorkerProcess(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[ENV.worker] === '1';
}
