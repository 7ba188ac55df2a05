import type { Logger } from '../../src/logger.js';

/** One call to a {@link memoryLogger}. */
export interface LoggedLine {
  level: string;
  /** The message: the string argument, whether it came first or after the fields. */
  msg: string;
  /** The structured fields; empty when the call gave only a message. */
  fields: Record<string, unknown>;
  /** The whole call as JSON, for searching a line for anything (a secret must be nowhere in it). */
  text: string;
}

/** A pino-shaped Logger that keeps every line in memory, in `lines` (the array given, or a new one). */
export function memoryLogger(lines: LoggedLine[] = []): Logger & { lines: LoggedLine[] } {
  const at =
    (level: string) =>
    (fieldsOrMsg: unknown, msg?: string): void => {
      const text = JSON.stringify([fieldsOrMsg, msg]);
      if (typeof fieldsOrMsg === 'string') lines.push({ level, msg: fieldsOrMsg, fields: {}, text });
      else lines.push({ level, msg: msg ?? '', fields: (fieldsOrMsg ?? {}) as Record<string, unknown>, text });
    };
  const logger = { lines, fatal: at('fatal'), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => logger };
  return logger;
}
