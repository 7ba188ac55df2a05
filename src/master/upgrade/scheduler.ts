import { describeError } from '../../errors.js';
import type { FetchedBuild, Fetcher } from '../../fetchers/fetcher.js';
import type { Logger } from '../../logger.js';
import type { CheckResult, SourceStatus } from './status.js';

/** Poll interval when the fetcher names none. */
export const DEFAULT_FETCH_INTERVAL_MS = 5 * 60_000;
/** Spread of each interval, so that a fleet started together does not poll in lock step. */
const JITTER = 0.1;
/** First retry after a failed fetch; doubles per failure up to the fetcher's interval. */
const FIRST_RETRY_MS = 1000;

export interface SchedulerOptions {
  minFetchInterval: number;
  log: Logger;
  /** Takes a new build through the upgrade pipeline; the next fetch waits for it. */
  onBuild(build: FetchedBuild, source: string): Promise<void>;
  /** Called whenever the source's status changes. */
  onStatus?(status: SourceStatus): void;
}

function jittered(ms: number): number {
  return Math.round(ms * (1 + (Math.random() * 2 - 1) * JITTER));
}

/**
 * Decides when to ask a fetcher for a new build: at start-up, then every `interval` with jitter,
 * at once (but never closer than `minFetchInterval`) when the fetcher's watch fires, and after a
 * failure with a backoff that starts at a second and doubles up to the interval. One fetch at a
 * time; a failure is logged at warn with its reason and never stops the master.
 */
export class FetchScheduler {
  readonly source: string;
  readonly status: SourceStatus;
  private readonly interval: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<CheckResult> | undefined;
  private again = false;
  private lastStartedAt = 0;
  private readonly stopped = new AbortController();
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly fetcher: Fetcher,
    private readonly options: SchedulerOptions,
  ) {
    this.source = fetcher.source ?? fetcher.constructor?.name ?? 'fetcher';
    this.interval = fetcher.interval ?? DEFAULT_FETCH_INTERVAL_MS;
    this.status = { source: this.source, lastCheckAt: undefined, lastResult: undefined, lastError: undefined, consecutiveFailures: 0 };
  }

  start(): void {
    this.unwatch = this.fetcher.watch?.(() => this.soon());
    this.schedule(0);
  }

  stop(): void {
    this.stopped.abort();
    clearTimeout(this.timer);
    this.unwatch?.();
  }

  /** Checks the source now (or right after the check under way) and resolves with the result. */
  async checkNow(): Promise<CheckResult> {
    if (this.running) {
      await this.running.catch(() => undefined);
    }
    return this.check();
  }

  /** A fetch as soon as `minFetchInterval` allows. */
  private soon(): void {
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped.signal.aborted) return;
    clearTimeout(this.timer);
    const earliest = this.lastStartedAt + this.options.minFetchInterval - Date.now();
    this.timer = setTimeout(() => void this.check(), Math.max(delayMs, earliest, 0));
    this.timer.unref();
  }

  private check(): Promise<CheckResult> {
    const run = this.fetchOnce().finally(() => {
      this.running = undefined;
      if (this.stopped.signal.aborted) return;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      } else if (this.status.consecutiveFailures > 0) {
        this.schedule(jittered(Math.min(this.interval, FIRST_RETRY_MS * 2 ** (this.status.consecutiveFailures - 1))));
      } else {
        this.schedule(jittered(this.interval));
      }
    });
    this.running = run;
    return run;
  }

  private async fetchOnce(): Promise<CheckResult> {
    clearTimeout(this.timer);
    this.lastStartedAt = Date.now();
    let result: CheckResult;
    try {
      const build = await this.fetcher.fetch(this.stopped.signal);
      result = build ? 'new build' : 'nothing new';
      this.record(result, undefined);
      if (build) await this.options.onBuild(build, this.source);
      else this.options.log.debug({ source: this.source }, 'fetch: nothing new');
    } catch (error) {
      if (this.stopped.signal.aborted) return 'failed';
      result = 'failed';
      const reason = describeError(error);
      this.record(result, reason);
      this.options.log.warn(
        { source: this.source, reason, code: (error as { code?: unknown }).code, consecutiveFailures: this.status.consecutiveFailures },
        'fetch failed: will retry',
      );
    }
    return result;
  }

  private record(result: CheckResult, error: string | undefined): void {
    const changed = this.status.lastResult !== result || this.status.lastError !== error;
    this.status.lastCheckAt = new Date().toISOString();
    this.status.lastResult = result;
    this.status.lastError = error;
    this.status.consecutiveFailures = result === 'failed' ? this.status.consecutiveFailures + 1 : 0;
    if (changed) this.options.onStatus?.({ ...this.status });
  }
}
