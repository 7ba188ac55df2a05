/**
 * The two things `overseer run` becomes once its invocation is checked: the master of a plain
 * command, or the host of a script that calls run() itself.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ResolvedConfig } from '../config.js';
import { describeError } from '../errors.js';
import { createLogger, LOG_ENV } from '../logger.js';
import type { Entry } from '../master/worker-launch.js';
import { bufferMasterSignals } from '../master/signals.js';
import { failAndExit, UsageError } from './cli-errors.js';

/** How people see the logs: pretty lines, or JSON for machines. */
export function chooseLogFormat(pretty: boolean, debug: boolean): void {
  // Read by overseer's default logger, in this process and in a script's run().
  if (pretty) process.env[LOG_ENV.pretty] = '1';
  else delete process.env[LOG_ENV.pretty];
  if (debug) process.env[LOG_ENV.debug] = '1';
}

/**
 * Becomes the master of `entry.command`: binds (or adopts systemd's sockets), starts the workers,
 * and lives until shut down. A failure to start is one line on stderr and exit 1.
 */
export async function superviseCommand(config: ResolvedConfig, entry: Entry): Promise<void> {
  // Before anything slow: an unhandled SIGUSR2 kills Node.
  const signals = bufferMasterSignals(config.restartSignal);
  const log = createLogger({ logger: undefined, debug: config.debug });
  const { Master } = await import('../master/master.js');
  const master = new Master(config, log, entry, (code) => process.exit(code));
  try {
    await master.start(signals);
  } catch (error) {
    failAndExit(error, config.debug);
  }
}

/**
 * Runs a script that calls run() itself, as `node script args` would: `process.argv[1]` is the
 * script (the master starts it again as each worker), the rest are its arguments.
 */
export async function runScript(script: string, args: readonly string[], debug: boolean): Promise<void> {
  const path = resolve(script);
  if (!existsSync(path)) {
    throw new UsageError(
      `${script} does not exist: give the path of a script that calls run(), or run any server with overseer run [options] -- <command> [args...]`,
    );
  }
  if (!statSync(path).isFile()) {
    throw new UsageError(`${script} is not a file: give the path of a script that calls run() (such as app.mjs)`);
  }
  process.argv = [process.argv[0] ?? process.execPath, path, ...args];
  try {
    await import(pathToFileURL(path).href);
  } catch (error) {
    const wrapped = new Error(
      `cannot load ${script}: ${describeError(error)}: fix the script (node ${script} shows the same error), or pass --debug for the stack`,
      { cause: error },
    );
    if (debug && error instanceof Error) wrapped.stack = error.stack;
    failAndExit(wrapped, debug);
  }
}
