import { createRequire } from 'node:module';
import type * as PinoModule from 'pino';

type LogFn = (objOrMsg: unknown, msg?: string, ...args: unknown[]) => void;

/** The part of pino's API overseer uses; any pino logger fits. */
export interface Logger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const require = createRequire(import.meta.url);

/**
 * Environment switches `overseer run` sets for a script that calls run() itself: `=1` makes the
 * default logger write coloured lines for people instead of JSON, or log at debug level.
 */
export const LOG_ENV = { pretty: 'OVERSEER_LOG_PRETTY', debug: 'OVERSEER_LOG_DEBUG' } as const;

/** Lines for people: one per event, time first, no pid or host; colours only on a terminal. */
function prettyStream(): NodeJS.WritableStream {
  const pretty = require('pino-pretty') as (options: Record<string, unknown>) => NodeJS.WritableStream;
  return pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true,
    translateTime: 'HH:MM:ss.l',
    ignore: 'pid,hostname,name',
    singleLine: true,
  });
}

function defaultLogger(debug: boolean): Logger {
  // Loaded on demand: pino is a third of what a worker spends booting, and a worker logs little.
  const { pino } = require('pino') as typeof PinoModule;
  const options = { name: 'overseer', level: debug || process.env[LOG_ENV.debug] === '1' ? 'debug' : 'info' };
  if (process.env[LOG_ENV.pretty] === '1') return pino(options, prettyStream());
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

/** A logger that makes the real one on its first line. */
function lazyLogger(make: () => Logger): Logger {
  let real: Logger | undefined;
  const get = () => (real ??= make());
  return {
    fatal: (...args) => get().fatal(...args),
    error: (...args) => get().error(...args),
    warn: (...args) => get().warn(...args),
    info: (...args) => get().info(...args),
    debug: (...args) => get().debug(...args),
    child: (bindings) => lazyLogger(() => get().child(bindings)),
  };
}

/** Levels overseer logs at, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The user's logger when given; otherwise pino writing synchronously to stderr, so that a line
 * logged just before `process.exit()` is not lost and stdout stays the program's.
 */
export function createLogger(options: { logger?: Logger | undefined; debug: boolean }): Logger {
  if (options.logger) return options.logger;
  return lazyLogger(() => defaultLogger(options.debug));
}
