import { pino } from 'pino';

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

/**
 * The user's logger when given; otherwise pino writing synchronously to stderr, so that
 * a line logged just before `process.exit()` is not lost and stdout stays the program's.
 */
export function createLogger(options: { logger?: Logger | undefined; debug: boolean; role: 'master' | 'worker' }): Logger {
  const base = options.logger ?? pino({ name: 'overseer', level: options.debug ? 'debug' : 'info' }, pino.destination({ fd: 2, sync: true }));
  return base.child({ role: options.role });
}
