import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { awaitGenerationReady, type Generation } from './generation.js';
import type { ResolvedConfig } from '../config.js';
import type { HealthVerdicts } from './worker-health.js';
import type { WorkerProcess } from './worker-process.js';

/** Why a worker that still runs is replaced. */
export type ReplacementCause = 'hung' | 'memory';

export interface ReplacementContext {
  generation: Generation;
  /** Starts a worker of `generation` in `slot` (reading the installed build first). */
  spawn(slot: number, restarts: number): Promise<WorkerProcess>;
  /** Whether `generation` still serves and the master is not shutting down. */
  stillServing(): boolean;
  readyTimeout: number;
  terminateTimeout: number;
  cancel: AbortSignal;
  log: Logger;
}

/**
 * Replaces one worker without losing capacity: a new worker starts in its slot, and only once it is
 * ready does the old one go. A hung worker is killed (SIGKILL: its loop is blocked, it cannot
 * drain, and what was in flight in it is lost); a worker over maxMemory drains as in a restart.
 * When the replacement fails, the worker over maxMemory keeps serving (it is tried again at a later
 * sample), and the hung one is killed anyway, to be replaced as a crashed worker, with backoff.
 * Resolves once the old worker has been told to go, or the replacement has failed.
 */
export async function replaceWorker(old: WorkerProcess, cause: ReplacementCause, context: ReplacementContext): Promise<void> {
  const { generation, log } = context;
  const fields = { workerPid: old.pid, generation: generation.number, slot: old.slot, cause };
  old.beingReplaced = true;
  let replacement: WorkerProcess;
  try {
    replacement = await context.spawn(old.slot, old.restarts);
  } catch (error) {
    log.error({ ...fields, reason: describeError(error) }, 'worker replacement failed: cannot start a new worker');
    failed(old, cause);
    return;
  }
  replacement.pendingReplacement = true;
  old.slotCovered = true;
  const result = await awaitGenerationReady(generation, context.readyTimeout, context.cancel, [replacement]);
  replacement.pendingReplacement = false;
  old.slotCovered = false;
  if (!context.stillServing()) return; // a restart or the shutdown took over: they stop both
  if (!result.ok) {
    if (replacement.phase !== 'exited') {
      replacement.stopRequested = true;
      replacement.kill();
    }
    log.error(
      { ...fields, replacementPid: replacement.pid, reason: result.reason },
      cause === 'hung' ? 'worker replacement failed: killing the hung worker anyway' : 'worker replacement failed: the worker over maxMemory keeps serving',
    );
    if (old.phase === 'exited') {
      // It died while its replacement started, and the replacement failed too: refill the slot as
      // after a crash (a build that cannot start then backs off there).
      context.spawn(old.slot, old.restarts + 1).catch((error: unknown) => log.error({ ...fields, reason: describeError(error) }, 'cannot refill the slot'));
      return;
    }
    failed(old, cause);
    return;
  }
  if (old.phase === 'exited') return;
  if (cause === 'hung') {
    log.warn({ ...fields, replacementPid: replacement.pid }, 'hung worker killed: its replacement is ready');
    old.stopRequested = true;
    old.kill();
  } else {
    log.info({ ...fields, replacementPid: replacement.pid }, 'worker replaced: the old one drains');
    void old.stop(context.terminateTimeout);
  }
}

function failed(old: WorkerProcess, cause: ReplacementCause): void {
  // Not a stop the master asked for: its exit is a crash, replaced with the crash backoff.
  if (cause === 'hung') old.kill();
  else old.beingReplaced = false;
}

export interface ReplacerDeps {
  config: Pick<ResolvedConfig, 'readyTimeout' | 'terminateTimeout' | 'livenessTimeout' | 'maxMemory'>;
  log: Logger;
  /** Aborted when the master shuts down. */
  cancel: AbortSignal;
  /** The generation serving now; undefined once the master shuts down. */
  serving(): Generation | undefined;
  /** Whether a restart is under way (it replaces every worker anyway). */
  restarting(): boolean;
  /** Starts a worker of `generation` in `slot`, from the installed build. */
  spawn(generation: Generation, slot: number, restarts: number): Promise<WorkerProcess>;
}

/**
 * The master's answer to the health checks' verdicts: a hung worker is replaced at once (it serves
 * nothing, so every hung worker is), a worker over maxMemory one at a time, never during a restart.
 */
export class WorkerReplacer implements HealthVerdicts {
  /** The one replacement of a worker over maxMemory under way: never more than one at a time, so capacity stays. */
  private memoryReplacement: Promise<void> | undefined;

  constructor(private readonly deps: ReplacerDeps) {}

  hung(worker: WorkerProcess, silentMs: number): void {
    this.deps.log.error(
      { workerPid: worker.pid, generation: worker.generation, slot: worker.slot, silentMs, livenessTimeout: this.deps.config.livenessTimeout },
      `worker hung: no heartbeat for ${silentMs} ms`,
    );
    void this.replace(worker, 'hung');
  }

  overMemory(worker: WorkerProcess, rss: number): void {
    if (this.memoryReplacement || this.deps.restarting() || !this.deps.serving()) return;
    this.deps.log.warn(
      { workerPid: worker.pid, generation: worker.generation, slot: worker.slot, rss, maxMemory: this.deps.config.maxMemory },
      'worker over maxMemory: replacing it',
    );
    this.memoryReplacement = this.replace(worker, 'memory').finally(() => {
      this.memoryReplacement = undefined;
    });
  }

  private replace(worker: WorkerProcess, cause: ReplacementCause): Promise<void> {
    const generation = this.deps.serving();
    if (!generation?.workers.has(worker)) return Promise.resolve();
    return replaceWorker(worker, cause, {
      generation,
      spawn: (slot, restarts) => this.deps.spawn(generation, slot, restarts),
      stillServing: () => this.deps.serving() === generation,
      readyTimeout: this.deps.config.readyTimeout,
      terminateTimeout: this.deps.config.terminateTimeout,
      cancel: this.deps.cancel,
      log: this.deps.log,
    });
  }
}
