import type { HealthOptions } from '../health-options.js';
import type { Logger } from '../logger.js';
import { residentSetSize } from './memory.js';
import type { WorkerProcess } from './worker-process.js';

export interface HealthVerdicts {
  /** `worker` sent no heartbeat for `silentMs`. */
  hung(worker: WorkerProcess, silentMs: number): void;
  /** `worker` is the largest of the workers over `maxMemory`, at `rss` bytes. */
  overMemory(worker: WorkerProcess, rss: number): void;
}

/**
 * Watches the serving workers for two faults a crash handler never sees: a blocked event loop (no
 * heartbeat for `livenessTimeout`) and memory past `maxMemory`. It only judges; the master
 * decides what to do. Its timers are unref'd: they never keep the master alive.
 */
export class WorkerHealth {
  private readonly timers: NodeJS.Timeout[] = [];
  private lastLivenessTick = Date.now();
  private sampling = false;
  private warnedNoMemoryReading = false;

  /** `watched` returns the workers to judge now: the serving generation's, not being replaced. */
  constructor(
    private readonly options: HealthOptions,
    private readonly watched: () => WorkerProcess[],
    private readonly verdicts: HealthVerdicts,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.options.livenessTimeout !== undefined) {
      this.lastLivenessTick = Date.now();
      this.timers.push(setInterval(() => this.checkLiveness(), this.options.livenessInterval).unref());
    }
    if (this.options.maxMemory !== undefined) {
      this.timers.push(setInterval(() => void this.checkMemory(), this.options.memoryCheckInterval).unref());
    }
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
  }

  private checkLiveness(): void {
    const timeout = this.options.livenessTimeout!;
    const now = Date.now();
    const late = now - this.lastLivenessTick;
    this.lastLivenessTick = now;
    // Timers run before the I/O phase: after the master itself was held up, the heartbeats that came
    // meanwhile are still unread. Judge on the next tick, once they have been.
    if (late > 2 * this.options.livenessInterval) {
      this.log.debug({ lateMs: late }, 'liveness check postponed: the master itself was held up');
      return;
    }
    for (const worker of this.watched()) {
      // A worker that never sent a heartbeat runs no overseer library (a plain command, a native
      // build, an old build): it is not judged.
      if (worker.lastHeartbeatAt === undefined) continue;
      const silentMs = now - worker.lastHeartbeatAt;
      if (silentMs >= timeout) this.verdicts.hung(worker, silentMs);
    }
  }

  private async checkMemory(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const limit = this.options.maxMemory!;
      const workers = this.watched().filter((worker) => worker.phase === 'ready' && worker.pid !== undefined);
      const samples = await Promise.all(workers.map(async (worker) => ({ worker, rss: (await residentSetSize(worker.pid!)) ?? worker.reportedRss })));
      let worst: { worker: WorkerProcess; rss: number } | undefined;
      for (const { worker, rss } of samples) {
        if (rss === undefined) {
          this.warnOnceNoReading(worker);
          continue;
        }
        worker.lastRss = rss;
        if (rss > limit && (worst === undefined || rss > worst.rss)) worst = { worker, rss };
      }
      if (worst && worst.worker.phase === 'ready') this.verdicts.overMemory(worst.worker, worst.rss);
    } finally {
      this.sampling = false;
    }
  }

  private warnOnceNoReading(worker: WorkerProcess): void {
    if (this.warnedNoMemoryReading) return;
    this.warnedNoMemoryReading = true;
    this.log.warn(
      { workerPid: worker.pid },
      'maxMemory: cannot read this worker\'s memory (no /proc here, and the worker sends no heartbeat): it is not checked; keep livenessTimeout on for workers that call run()',
    );
  }
}
