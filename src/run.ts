import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { resolveConfig, type Config, type ResolvedConfig } from './config.js';
import { ConfigError, NotSupervisedError, UnsupportedPlatformError, describeError } from './errors.js';
import { createLogger } from './logger.js';
import { parseAddress } from './master/addresses.js';
import type { RestartOutcome } from './master/generation.js';
import type { Master } from './master/master.js';
import { bufferMasterSignals } from './master/signals.js';
import { ENV, isWorkerProcess, SANITY_PREFIX } from './protocol.js';
import { releaseLayoutOf } from './master/upgrade/layout.js';
import { runWorker, setupFromEnvironment } from './worker/run-worker.js';

let activeMaster: Master | undefined;

/** Platforms where a master can hand sockets to its workers as inherited file descriptors. */
function canSupervise(): boolean {
  return process.platform !== 'win32';
}

/**
 * Runs `program` under overseer. The same script is the master and every worker: in the master
 * this binds the addresses and supervises workers, in a worker it runs `program(state)`.
 * Throws `ConfigError` at once for a bad option. In the master the promise settles only when the
 * master exits; in a worker it resolves once `program` has returned.
 */
export function run(options: Config): Promise<void> {
  const config = resolveConfig(options);
  const sanityToken = process.env[ENV.sanity];
  if (sanityToken) {
    // The master is checking this build before installing it: it loads, and its options are valid.
    process.stdout.write(`\n${SANITY_PREFIX}${sanityToken}\n`, () => process.exit(0));
    return new Promise(() => {});
  }
  if (isWorkerProcess()) return runWorker(config, setupFromEnvironment(config));
  if (!canSupervise()) {
    if (config.required) {
      throw new UnsupportedPlatformError(`overseer cannot supervise workers on ${process.platform}: remove required: true to run the program in-process`);
    }
    return runInProcess(config);
  }
  return runMaster(config);
}

/**
 * The script this process was started with: the build workers are started from. Symlinks are
 * resolved (an upgrade replaces the real file, not a link to it), except a release layout's
 * `current` link, which an archive upgrade switches.
 */
function entryScript(): string {
  const script = process.argv[1];
  if (!script) {
    throw new ConfigError('run() must be called from a script file (node app.mjs): the master starts that file again as its workers');
  }
  const absolute = resolve(script);
  return releaseLayoutOf(absolute) ? absolute : realpathSync(script);
}

async function runMaster(config: ResolvedConfig): Promise<void> {
  // First thing, before any await: an unhandled SIGUSR2 kills Node.
  const signals = bufferMasterSignals(config.restartSignal);
  const baseLog = createLogger({ logger: config.logger, debug: config.debug });
  const log = baseLog.child({ role: 'master' });
  const binPath = entryScript();
  // Workers import this module too; only the master loads the master's code.
  const { Master } = await import('./master/master.js');
  return new Promise<void>((resolve) => {
    const master = new Master(
      config,
      baseLog,
      { binPath, execPath: process.execPath, execArgv: process.execArgv, args: process.argv.slice(2) },
      (code) => {
        resolve();
        process.exit(code);
      },
    );
    activeMaster = master;
    master.start(signals).catch((error: unknown) => {
      const code = (error as { code?: unknown }).code;
      log.fatal({ err: error, code }, `master cannot start: ${describeError(error)}`);
      process.exit(1);
    });
  });
}

async function runInProcess(config: ResolvedConfig): Promise<void> {
  const binPath = entryScript();
  const listeners = config.addresses.map((spec) => {
    const address = parseAddress(spec);
    return address.kind === 'unix' ? { path: address.path } : { port: address.port, ...(address.host ? { host: address.host } : {}) };
  });
  const { hashFile } = await import('./master/build-id.js');
  await runWorker(config, {
    enabled: false,
    id: await hashFile(binPath),
    binPath,
    generation: 1,
    listeners,
    addresses: config.addresses,
    terminateTimeout: config.terminateTimeout,
  });
}

/**
 * Asks for a graceful restart. In a worker it asks the master; in the master it restarts
 * directly and resolves with the outcome.
 */
export function restart(): Promise<RestartOutcome | undefined> {
  if (isWorkerProcess()) {
    if (!process.send || !process.connected) {
      return Promise.reject(new NotSupervisedError('restart(): this worker has lost its master, so there is nobody to restart it'));
    }
    process.send({ overseer: 'restart' });
    return Promise.resolve(undefined);
  }
  if (activeMaster) return activeMaster.restart('restart() called in the master');
  return Promise.reject(new NotSupervisedError('restart() needs an overseer master: call run() first, or call restart() from inside program'));
}
