import { describeError, FetchError } from '../../errors.js';
import type { FetchedBuild, Fetcher } from '../../fetchers/fetcher.js';
import type { Logger } from '../../logger.js';
import type { CheckResult, SourceStatus } from './status.js';

/** Poll interval when the fetcher names none. */
export const DEFAULT_FETCH_INTERVAL_MS = 5 * 60_000;
/** Spread of each interval, so that a fleet started together does not poll in lock step. */
const JITTER = 0.1;
/** First retry after a failed fetch; doubles per failure up to the interval, or a minute when that is longer. */
const FIRST_RETRY_MS = 1000;
const LONGEST_RETRY_MS = 60_000;

export interface SchedulerOptions {
  minFetchInterval: number;
  /** Longest a fetcher may take to say whether there is a build; past it the fetch is aborted and counts as failed. */
  fetchTimeout: number;
  log: Logger;
  /** Takes a new build through the upgrade pipeline; the next fetch waits for it. */
  onBuild(build: FetchedBuild, source: string): Promise<void>;
  /** Called whenever the source's status changes. */
  onStatus?(status: SourceStatus): void;
}

/** Rejects with the abort reason, so a fetcher that ignores its signal cannot hold the schedule. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

function jittered(ms: number): number {
  return Math.round(ms * (1 + (Math.random() * 2 - 1) * JITTER));
}

/**
 * Decides when to ask a fetcher for a new build: at start-up, then every `interval` with jitter,
 * at once (but never closer than `minFetchInterval`) when the fetcher's watch fires, and after a
 * failure with a backoff that starts at a second and doubles up to the interval (or a minute, for a
 * source polled more often than that). One fetch at a
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
        const cap = Math.max(this.interval, LONGEST_RETRY_MS);
        this.schedule(jittered(Math.min(cap, FIRST_RETRY_MS * 2 ** (this.status.consecutiveFailures - 1))));
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
    // Only the answer is timed: once a build is handed over, its download may take as long as it takes.
    const attempt = new AbortController();
    const stop = () => attempt.abort(this.stopped.signal.reason);
    this.stopped.signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(
      () => attempt.abort(new FetchError(this.source, `${this.source} did not answer within fetchTimeout (${this.options.fetchTimeout} ms)`)),
      this.options.fetchTimeout,
    );
    let build: FetchedBuild | undefined;
    try {
      build = await Promise.race([this.fetcher.fetch(attempt.signal), rejectOnAbort(attempt.signal)]);
    } catch (error) {
      if (this.stopped.signal.aborted) return 'failed';
      const reason = describeError(error);
      this.record('failed', reason);
      this.options.log.warn(
        { source: this.source, reason, code: (error as { code?: unknown }).code, consecutiveFailures: this.status.consecutiveFailures },
        'fetch failed: will retry',
      );
      return 'failed';
    } finally {
      clearTimeout(timer);
      this.stopped.signal.removeEventListener('abort', stop);
    }
    if (!build) {
      this.record('nothing new', undefined);
      this.options.log.debug({ source: this.source }, 'fetch: nothing new');
      return 'nothing new';
    }
    this.record('new build', undefined);
    await this.options.onBuild(build, this.source);
    return 'new build';
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
