import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ResolvedConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { asSpareReadyMessage } from '../protocol.js';
import type { BoundListener } from './listeners.js';
import { spareCommand, workerEnvironment, type Entry } from './worker-launch.js';

/** How to start one spare: node with the workers' flags, the spare entry, the listener fds. */
export interface SpareLaunch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  listenerFds: readonly number[];
}

interface Spare {
  child: ChildProcess;
  ready: boolean;
}

/** Spares that die on their own more often than this in a row turn warm start off: something kills them. */
const MAX_UNEXPECTED_EXITS = 3;
/** A spare that died is replaced after this pause, not at once: whatever killed it may still be at it. */
const REFILL_DELAY_MS = 1000;

/**
 * The spare entry script, bundled beside the master's chunk (`dist/worker/spare.js`, the master
 * running from `dist/chunks/`). Undefined when it is not there, as when running overseer's sources.
 */
export function spareEntryPath(): string | undefined {
  const path = fileURLToPath(new URL('../worker/spare.js', import.meta.url));
  return existsSync(path) ? path : undefined;
}

/**
 * Warm spares: node processes that booted and loaded overseer ahead of need, holding the listener
 * fds and an IPC channel like any worker. Starting a worker from one skips node's boot and
 * overseer's own loading, which is most of what a restart costs beyond the program's start-up.
 * The pool keeps `size` of them (one per worker slot, so a whole generation starts warm); it turns
 * itself off, logging why, when spares cannot start, so workers then start cold as before.
 */
export class SparePool {
  private readonly spares = new Set<Spare>();
  private disabledBecause: string | undefined;
  private stopped = false;
  private unexpectedExits = 0;
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly size: number,
    private readonly launch: () => SpareLaunch,
    private readonly log: Logger,
  ) {}

  /** Spares that have booted and wait. */
  get readyCount(): number {
    return [...this.spares].filter((spare) => spare.ready).length;
  }

  /** Starts spares until the pool holds `size`, booting or ready. */
  fill(): void {
    if (this.stopped || this.disabledBecause !== undefined) return;
    while (this.spares.size < this.size) this.spawnSpare();
  }

  /** A spare that is ready, out of the pool: the caller turns it into a worker. Undefined when none is. */
  take(): ChildProcess | undefined {
    for (const spare of this.spares) {
      const { child } = spare;
      if (!spare.ready || !child.connected || child.exitCode !== null || child.signalCode !== null) continue;
      this.spares.delete(spare);
      child.removeAllListeners('message');
      this.unexpectedExits = 0;
      return child;
    }
    return undefined;
  }

  /** Ends every spare and starts no more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.refillTimer);
    this.killAll();
  }

  private spawnSpare(): void {
    const { command, args, env, listenerFds } = this.launch();
    const child = spawn(command, args, { env, stdio: ['ignore', 'inherit', 'inherit', ...listenerFds, 'ipc'] });
    const spare: Spare = { child, ready: false };
    this.spares.add(spare);
    child.on('message', (message) => {
      const ready = asSpareReadyMessage(message);
      if (!ready) return;
      if (!ready.supported) {
        this.disable('this node cannot run a script as its main module on request (module.runMain is missing)');
        return;
      }
      spare.ready = true;
      this.log.debug({ sparePid: child.pid }, 'warm spare ready');
    });
    child.once('error', (error) => {
      if (!this.spares.delete(spare)) return;
      this.disable(`a spare could not be started: ${error.message}`);
    });
    child.once('exit', (code, signal) => {
      // Taken spares are workers now, and stopped ones were asked to go.
      if (!this.spares.delete(spare) || this.stopped || this.disabledBecause !== undefined) return;
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (!spare.ready) {
        this.disable(`a spare ${how} before it was ready`);
        return;
      }
      this.unexpectedExits += 1;
      if (this.unexpectedExits >= MAX_UNEXPECTED_EXITS) {
        this.disable(`${this.unexpectedExits} spares in a row ${how} while waiting`);
        return;
      }
      this.log.warn({ sparePid: child.pid, code, signal }, 'warm spare exited while waiting: starting another');
      clearTimeout(this.refillTimer);
      this.refillTimer = setTimeout(() => this.fill(), REFILL_DELAY_MS);
      this.refillTimer.unref();
    });
  }

  private disable(reason: string): void {
    if (this.disabledBecause !== undefined) return;
    this.disabledBecause = reason;
    this.log.warn({ reason }, 'warm start off: workers start cold from now on (set warmStart: false to silence this)');
    this.killAll();
  }

  private killAll(): void {
    for (const { child } of this.spares) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    this.spares.clear();
  }
}

/**
 * The pool for `entry`'s workers: one spare per worker slot, started with the workers' flags,
 * environment and listener fds. Undefined, logged at debug, when the spare entry is not built.
 */
export function sparePoolFor(entry: Entry, config: ResolvedConfig, listeners: () => readonly BoundListener[], log: Logger): SparePool | undefined {
  const spareEntry = spareEntryPath();
  if (!spareEntry) {
    log.debug('warm start off: the spare entry script is not built (dist/worker/spare.js)');
    return undefined;
  }
  const ignoredSignals: NodeJS.Signals[] = ['SIGINT', config.restartSignal];
  return new SparePool(
    config.workers,
    () => ({
      ...spareCommand(entry, spareEntry, ignoredSignals),
      env: workerEnvironment(entry, config, { generation: 0, buildId: '', listeners: listeners() }),
      listenerFds: listeners().map((listener) => listener.fd),
    }),
    log,
  );
}
