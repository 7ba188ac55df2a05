import type { ResolvedConfig } from '../config.js';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { asStopMessage, ENV, FIRST_LISTENER_FD, type WorkerToMaster } from '../protocol.js';
import { relayLogger, type FlushableLogger } from './relay-logger.js';
import { ServeRegistry } from './serve-registry.js';
import { createState, type WorkerSetup } from './state.js';


/** Reads what the master put in the environment of this worker. */
export function setupFromEnvironment(config: ResolvedConfig, env: NodeJS.ProcessEnv = process.env): WorkerSetup {
  const count = Number(env[ENV.listenFds] ?? 0) || 0;
  let addresses: string[] = [];
  try {
    addresses = JSON.parse(env[ENV.addresses] ?? '[]') as string[];
  } catch {
    addresses = [];
  }
  return {
    enabled: true,
    id: env[ENV.binId] ?? '',
    binPath: env[ENV.binPath] ?? process.argv[1] ?? '',
    generation: Number(env[ENV.generation] ?? 1) || 1,
    listeners: Array.from({ length: count }, (_, i) => ({ fd: FIRST_LISTENER_FD + i })),
    addresses,
    terminateTimeout: Number(env[ENV.terminateTimeout]) || config.terminateTimeout,
  };
}

function sendToMaster(message: WorkerToMaster, callback?: () => void): void {
  if (process.send && process.connected) {
    process.send(message, undefined, {}, () => callback?.());
  } else {
    callback?.();
  }
}

/**
 * Tells the master this worker's event loop still turns, every `interval` ms, starting now: a
 * blocked loop cannot fire the timer, and its silence is what the master's liveness check sees.
 * Unref'd: the heartbeat never keeps a worker alive.
 */
function startHeartbeat(env: NodeJS.ProcessEnv): void {
  const interval = Number(env[ENV.livenessInterval]);
  if (!Number.isFinite(interval) || interval <= 0 || !process.send) return;
  const beat = () => sendToMaster({ overseer: 'heartbeat', rss: process.memoryUsage.rss() });
  beat();
  setInterval(beat, interval).unref();
}

/** The worker leaves a little of the master's kill deadline for its own forced close and exit. */
function ownDeadline(terminateTimeout: number): number {
  return Math.max(0, terminateTimeout - Math.min(1000, terminateTimeout / 10));
}

/**
 * The user's logger when given. Otherwise, under a master, lines go to the master to write (see
 * `relayLogger`); in-process, straight to overseer's default logger.
 */
function workerLogger(config: ResolvedConfig, setup: WorkerSetup): Logger & Partial<Pick<FlushableLogger, 'flush'>> {
  const local = () => createLogger({ logger: config.logger, debug: config.debug }).child({ role: 'worker', generation: setup.generation, buildId: setup.id });
  if (config.logger || !setup.enabled) return local();
  // The master adds role, generation and buildId to what it writes for this worker.
  return relayLogger({ debug: config.debug, fallback: local });
}

/** Exits once the log lines so far have left the process: a line sent over IPC just before exit() can be lost. */
async function exitAfterLogs(log: Partial<Pick<FlushableLogger, 'flush'>>, code: number): Promise<never> {
  await log.flush?.();
  process.exit(code);
}

/**
 * Runs `program` as a worker: reports readiness, and on the master's stop message, SIGTERM or the
 * master's death drains every served server and exits.
 */
export async function runWorker(config: ResolvedConfig, setup: WorkerSetup): Promise<void> {
  const log = workerLogger(config, setup);
  const shutdown = new AbortController();
  const registry = new ServeRegistry(setup.listeners);
  let readySent = false;
  let stopping = false;

  const ready = () => {
    if (readySent || stopping) return;
    readySent = true;
    sendToMaster({ overseer: 'ready' });
  };

  const stop = async (reason: string, timeout: number) => {
    if (stopping) return;
    stopping = true;
    const began = Date.now();
    log.info({ reason, connections: registry.openConnections }, 'drain begun');
    shutdown.abort();
    const forced = setTimeout(() => {
      log.warn({ reason, connections: registry.openConnections, durationMs: Date.now() - began }, 'drain forced: closing connections still open at the deadline');
      registry.forceAll();
      void exitAfterLogs(log, 0);
    }, ownDeadline(timeout));
    forced.unref();
    // The servers close their listeners synchronously here (those served by hand, in the abort
    // handlers above): from now on the new generation alone accepts, which the master waits to hear.
    const drained = registry.drainAll();
    sendToMaster({ overseer: 'stopped-accepting' });
    if (registry.size === 0) {
      // The program listens by hand: the worker ends when nothing keeps its event loop alive (or at the deadline).
      process.channel?.unref();
      return;
    }
    await drained;
    clearTimeout(forced);
    log.info({ reason, durationMs: Date.now() - began }, 'drain done');
    await exitAfterLogs(log, 0);
  };

  if (setup.enabled) {
    // Ctrl-C in a terminal reaches the whole process group; the master decides how workers stop.
    process.on('SIGINT', () => log.debug('SIGINT ignored: the master stops its workers'));
    process.on(config.restartSignal, () => log.debug({ signal: config.restartSignal }, 'restart signal ignored: send it to the master'));
    process.on('message', (message) => {
      const stopMessage = asStopMessage(message);
      if (stopMessage) void stop('asked by the master', stopMessage.timeout);
    });
    process.on('disconnect', () => void stop('the master is gone', setup.terminateTimeout));
    startHeartbeat(process.env);
  } else {
    process.on('SIGINT', () => void stop('SIGINT', setup.terminateTimeout));
  }
  process.on('SIGTERM', () => void stop('SIGTERM', setup.terminateTimeout));

  const state = createState({
    ...setup,
    gracefulShutdown: shutdown.signal,
    serve: (server, index) => registry.serve(server, index),
    ready,
  });

  try {
    await config.program(state);
  } catch (error) {
    log.error({ err: error }, 'program failed to start');
    sendToMaster({ overseer: 'failed', message: `program threw: ${describeError(error)}` }, () => process.exit(1));
    return;
  }
  ready();
}
