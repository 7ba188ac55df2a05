import type { Logger, LogLevel } from '../logger.js';
import { serializeError, type WorkerToMaster } from '../protocol.js';

/** Fields as they cross the IPC channel: errors become plain objects (JSON drops their message and stack). */
function serializable(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = value instanceof Error ? serializeError(value) : value;
  return out;
}

/** A logger that can say when everything it was given has left the process. */
export interface FlushableLogger extends Logger {
  /** Resolves once every line so far has been handed to the master (or written), or after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
}

/**
 * A worker's default logger: hands each line to the master over IPC, and the master writes it with
 * its own logger. A worker then never loads pino, whose first use costs tens of milliseconds of a
 * blocked event loop, and a drain that starts under load would pay that as a stall of every
 * connection. Once the master is gone, lines go to `fallback`, made on first use.
 */
export function relayLogger(options: { debug: boolean; fallback: () => Logger }): FlushableLogger {
  let fallback: Logger | undefined;
  let pending = 0;
  const idle = new Set<() => void>();
  const settled = () => {
    pending -= 1;
    if (pending === 0) for (const resolve of idle) resolve();
  };
  const flush = (timeoutMs = 1000) => {
    if (pending === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        idle.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      idle.add(done);
    });
  };
  // Children share the channel, so flushing any of them waits for every line.
  const withBindings = (bindings: Record<string, unknown>): FlushableLogger => {
    const write = (level: LogLevel, objOrMsg: unknown, msg?: string) => {
      if (level === 'debug' && !options.debug) return;
      const fields = typeof objOrMsg === 'object' && objOrMsg !== null ? { ...bindings, ...(objOrMsg as Record<string, unknown>) } : { ...bindings };
      const text = typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '');
      if (process.send && process.connected) {
        const message: WorkerToMaster = { overseer: 'log', level, msg: text, fields: serializable(fields) };
        pending += 1;
        process.send(message, undefined, {}, settled);
        return;
      }
      fallback ??= options.fallback();
      fallback[level](fields, text);
    };
    return {
      debug: (objOrMsg, msg) => write('debug', objOrMsg, msg),
      info: (objOrMsg, msg) => write('info', objOrMsg, msg),
      warn: (objOrMsg, msg) => write('warn', objOrMsg, msg),
      error: (objOrMsg, msg) => write('error', objOrMsg, msg),
      fatal: (objOrMsg, msg) => write('fatal', objOrMsg, msg),
      child: (more) => withBindings({ ...bindings, ...more }),
      flush,
    };
  };
  return withBindings({});
}
