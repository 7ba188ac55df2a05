/** How the last look at a source ended. */
export type CheckResult = 'new build' | 'nothing new' | 'failed';

export interface SourceStatus {
  source: string;
  lastCheckAt: string | undefined;
  lastResult: CheckResult | undefined;
  /** Why the last check failed. */
  lastError: string | undefined;
  consecutiveFailures: number;
}

/** What became of a fetched build. */
export type UpgradeOutcome = 'installed' | 'skipped' | 'rejected' | 'rolled back';

export interface UpgradeRecord {
  at: string;
  outcome: UpgradeOutcome;
  buildId: string | undefined;
  version: string | undefined;
  source: string;
  /** Why it was skipped, rejected or rolled back. */
  reason: string | undefined;
}

/** The master's view of its builds, as `overseer status` shows it and the logs report it. */
export interface BuildStatus {
  running: { buildId: string; version: string | undefined };
  sources: SourceStatus[];
  lastUpgrade: UpgradeRecord | undefined;
}
