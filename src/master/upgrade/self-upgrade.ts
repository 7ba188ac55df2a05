import { join } from 'node:path';
import type { ResolvedConfig } from '../../config.js';
import type { Fetcher } from '../../fetchers/fetcher.js';
import type { Logger } from '../../logger.js';
import type { Build, RestartOutcome } from '../generation.js';
import type { ReleaseLayout } from './layout.js';
import { loadPublicKey } from './minisign.js';
import { FetchScheduler } from './scheduler.js';
import type { BuildStatus } from './status.js';
import { Upgrader } from './upgrader.js';
import { InstalledVersions } from './versions.js';

export interface SelfUpgradeOptions {
  config: ResolvedConfig;
  fetcher: Fetcher;
  /** How the master starts builds; `binPath` is the file upgrades replace. */
  entry: { binPath: string; execPath: string; execArgv: readonly string[]; args: readonly string[] };
  /** A plain command cannot answer `run()`'s sanity check: the restart's readiness gate checks it, and rolls back. */
  skipSanityCheck: boolean;
  layout: ReleaseLayout | undefined;
  runningId: string;
  log: Logger;
  restart(reason: string, build: Build): Promise<RestartOutcome>;
  /** Aborted when the master shuts down. */
  signal: AbortSignal;
}

/**
 * A master's self-upgrade: its fetcher polled by a `FetchScheduler`, each new build taken through
 * the `Upgrader`, and what they know gathered for `overseer status`.
 */
export class SelfUpgrade {
  private constructor(
    private readonly upgrader: Upgrader,
    private readonly scheduler: FetchScheduler,
  ) {}

  /** Loads the public key (a bad one fails here, before anything is fetched), inits the fetcher and starts polling. */
  static async start(options: SelfUpgradeOptions): Promise<SelfUpgrade> {
    const { config, fetcher, entry, layout, log } = options;
    const publicKey = config.publicKey === undefined ? undefined : await loadPublicKey(config.publicKey);
    const versions = new InstalledVersions(layout ? join(layout.root, 'current') : entry.binPath);
    const runningVersion = await versions.versionOf(options.runningId);
    const upgrader = new Upgrader({
      ...entry,
      versions,
      runningId: options.runningId,
      runningVersion,
      publicKey,
      layout,
      keepReleases: config.keepReleases,
      releaseLimits: { maxBytes: config.maxReleaseSize, maxEntries: config.maxReleaseFiles },
      maxBuildSize: config.maxBuildSize,
      sanityTimeout: config.sanityTimeout,
      preUpgrade: config.preUpgrade,
      noRestartAfterFetch: config.noRestartAfterFetch,
      skipSanityCheck: options.skipSanityCheck,
      log,
      restart: options.restart,
      signal: options.signal,
    });
    const scheduler = new FetchScheduler(fetcher, {
      minFetchInterval: config.minFetchInterval,
      fetchTimeout: config.fetchTimeout,
      log,
      onBuild: async (build, source) => void (await upgrader.upgrade(build, source, () => fetcher.forget?.())),
      onStatus: (status) =>
        log.info({ source: status.source, result: status.lastResult, reason: status.lastError, consecutiveFailures: status.consecutiveFailures }, 'source status'),
    });
    await fetcher.init?.({ runningId: options.runningId, runningVersion, binPath: entry.binPath, log: log.child({ source: scheduler.source }) });
    const selfUpgrade = new SelfUpgrade(upgrader, scheduler);
    if (options.signal.aborted) return selfUpgrade;
    log.info({ source: scheduler.source, runningVersion, minFetchInterval: config.minFetchInterval }, 'watching for new builds');
    scheduler.start();
    return selfUpgrade;
  }

  /** The running build, each source's last check and the last upgrade. */
  status(): BuildStatus {
    return {
      running: { buildId: this.upgrader.runningId, version: this.upgrader.runningVersion },
      sources: [{ ...this.scheduler.status }],
      lastUpgrade: this.upgrader.lastUpgrade,
    };
  }

  /** Checks the source now; resolves once the check, and any upgrade it led to, has ended. */
  async checkNow(): Promise<BuildStatus> {
    await this.scheduler.checkNow();
    return this.status();
  }

  stop(): void {
    this.scheduler.stop();
  }
}
