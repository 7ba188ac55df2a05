/**
 * Delay before replacing a crashed worker: none for a first crash (a lone crash should cost as
 * little as possible), then growing by 1.5x up to a cap, so a crash loop cannot spin the CPU.
 * A worker that ran for `stableAfterMs` before it crashed starts the count afresh.
 */
export class CrashBackoff {
  private consecutive = 0;

  constructor(
    private readonly baseMs = 100,
    private readonly capMs = 30_000,
    private readonly stableAfterMs = 10_000,
  ) {}

  /** Records a crash of a worker that ran for `uptimeMs`; returns how long to wait before replacing it. */
  next(uptimeMs: number): number {
    if (uptimeMs >= this.stableAfterMs) this.consecutive = 0;
    this.consecutive += 1;
    if (this.consecutive === 1) return 0;
    return Math.min(this.capMs, Math.round(this.baseMs * 1.5 ** (this.consecutive - 1)));
  }

  get crashes(): number {
    return this.consecutive;
  }
}
