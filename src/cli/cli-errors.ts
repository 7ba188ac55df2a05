/**
 * How the command line fails: one line on stderr that names the problem and the fix, a non-zero
 * exit code, and the stack trace only when asked for with --debug.
 */
import { AddressError, ConfigError, describeError } from '../errors.js';

/** The command line was used wrongly: fixed by changing the invocation. */
export const EXIT_USAGE = 2;
/** The invocation was fine but something around it was not (a port in use, a file unreadable). */
export const EXIT_FAILURE = 1;

/** An invocation overseer cannot carry out; the message says what to change. */
export class UsageError extends ConfigError {}

/** Multi-line messages (commander's suggestions, nested causes) folded onto one line. */
export function oneLine(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

/** Writes the one line, `<prefix>: <problem and fix>` (and the stack with `debug`), then exits. */
export function failAndExit(error: unknown, debug: boolean, prefix = 'overseer run'): never {
  const usage = error instanceof UsageError || error instanceof AddressError || error instanceof ConfigError;
  let text = `${prefix}: ${oneLine(describeError(error))}\n`;
  if (debug && error instanceof Error && error.stack) text += `${error.stack}\n`;
  process.stderr.write(text);
  process.exit(usage ? EXIT_USAGE : EXIT_FAILURE);
}
