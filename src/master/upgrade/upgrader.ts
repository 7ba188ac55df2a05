import { access, chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ChecksumError, describeError } from '../../errors.js';
import type { FetchedBuild } from '../../fetchers/fetcher.js';
import type { Logger } from '../../logger.js';
import type { Build, RestartOutcome } from '../generation.js';
import { detectBuildKind } from './build-kind.js';
import { download, gunzipFile, isGzip } from './download.js';
import { install, restorePrevious } from './install.js';
import { buildPaths, type BuildPaths } from './paths.js';
import { activateRelease, currentRelease, detectArchive, extractRelease, pruneReleases, type ExtractLimits } from './archive.js';
import type { ReleaseLayout } from './layout.js';
import { verifyFile, type MinisignPublicKey } from './minisign.js';
import { sanityCheck } from './sanity.js';
import type { InstalledVersions } from './versions.js';
import type { UpgradeOutcome, UpgradeRecord } from './status.js';

export interface UpgraderOptions {
  /** The installed build: the entry script the master starts workers from. */
  binPath: string;
  execPath: string;
  execArgv: readonly string[];
  args: readonly string[];
  runningId: string;
  runningVersion: string | undefined;
  /** Where installed builds' versions are remembered across restarts of the master. */
  versions: InstalledVersions;
  maxBuildSize: number;
  sanityTimeout: number;
  preUpgrade: ((tempPath: string) => unknown) | undefined;
  noRestartAfterFetch: boolean;
  /** For builds that are not overseer programs (`overseer run -- <command>`): no run() answers a sanity check, so the readiness-gated restart is the check. */
  skipSanityCheck?: boolean;
  /** Set when the master runs from a release layout: app archives are installed there. */
  layout: ReleaseLayout | undefined;
  /** Releases kept in `releases/` besides the running and previous ones. */
  keepReleases: number;
  /** What an archive may unpack to. */
  releaseLimits: ExtractLimits;
  /** When set, every build must carry a valid minisign signature made with this key. */
  publicKey: MinisignPublicKey | undefined;
  log: Logger;
  /** The master's graceful restart onto the installed build, which is `build`. */
  restart(reason: string, build: Build): Promise<RestartOutcome>;
  /** Aborted when the master shuts down: stops a download or sanity check under way. */
  signal: AbortSignal;
}

/**
 * A build that did not make it, and why. A rejected build is remembered, and the same bytes are not
 * tried again, unless `remember` is false: a signature may still arrive for bytes that lacked one.
 */
class Rejection extends Error {
  constructor(
    readonly outcome: Extract<UpgradeOutcome, 'skipped' | 'rejected'>,
    message: string,
    readonly buildId?: string,
    readonly remember = true,
  ) {
    super(message);
  }
}

/**
 * Takes a fetched build from download to serving, in order, logging each step: stream it beside
 * the installed build while hashing; check the published SHA-256; skip the running build and
 * builds rejected before; `preUpgrade`; sanity-check it; install it atomically, keeping the
 * previous build; restart onto it. A new generation that fails puts the previous build back and
 * the old workers never stop serving. Never throws: every end is an `UpgradeRecord`.
 */
export class Upgrader {
  runningId: string;
  runningVersion: string | undefined;
  lastUpgrade: UpgradeRecord | undefined;
  private readonly rejected = new Map<string, string>();
  private readonly paths: BuildPaths;

  constructor(private readonly options: UpgraderOptions) {
    this.runningId = options.runningId;
    this.runningVersion = options.runningVersion;
    this.paths = buildPaths(options.binPath);
  }

  /**
   * @param forget the fetcher's `forget`: called when the bytes did not match the published
   *   checksum or signature, so that the next fetch downloads them again (they may have been
   *   damaged in transit, or the signature published after them).
   */
  async upgrade(build: FetchedBuild, source: string, forget?: () => void): Promise<UpgradeRecord> {
    const log = this.options.log.child({ source, version: build.version });
    let buildId: string | undefined;
    try {
      const known = build.sha256?.toLowerCase();
      if (known !== undefined) this.skipIfKnown(known);
      log.info({ size: build.size, name: build.name }, 'upgrade: new build found, downloading');
      const downloaded = await download(build.stream, this.paths.download, {
        maxBytes: this.options.maxBuildSize,
        signal: this.options.signal,
        size: build.size,
        onProgress: (progress) => log.info(progress, 'upgrade: downloading'),
      });
      log.info({ sha256: downloaded.sha256, bytes: downloaded.bytes }, 'upgrade: build downloaded');
      if (known !== undefined && known !== downloaded.sha256) {
        this.forgetFetched(forget, log);
        throw new Rejection(
          'rejected',
          new ChecksumError(`checksum mismatch: the source says SHA-256 ${known}, the build downloaded has ${downloaded.sha256}`).message,
          downloaded.sha256,
        );
      }
      if (this.options.publicKey) {
        try {
          await this.verifySignature(build, downloaded.sha256);
        } catch (error) {
          this.forgetFetched(forget, log);
          throw error;
        }
      }
      if (await detectArchive(this.paths.download)) {
        buildId = downloaded.sha256;
        return await this.upgradeToArchive(buildId, build, source, log);
      }
      buildId = await this.decode(downloaded.sha256);
      this.skipIfKnown(buildId);
      if (this.options.preUpgrade) {
        try {
          await this.options.preUpgrade(this.paths.next);
        } catch (error) {
          throw new Rejection('rejected', `preUpgrade threw: ${describeError(error)}`, buildId);
        }
      }
      const kind = await detectBuildKind(this.paths.next);
      // A program is started directly: it must be executable for its sanity check and from then on.
      if (kind === 'native') await chmod(this.paths.next, 0o755);
      if (this.options.skipSanityCheck) {
        log.info({ buildId, kind }, 'upgrade: sanity check skipped (a plain command): the restart checks the build');
      } else {
        try {
          await sanityCheck(this.paths.next, { ...this.options, kind, timeoutMs: this.options.sanityTimeout, signal: this.options.signal });
        } catch (error) {
          throw new Rejection('rejected', describeError(error), buildId);
        }
        log.info({ buildId, kind }, 'upgrade: sanity check passed');
      }
      await install(this.paths);
      log.info({ buildId, previous: this.paths.previous }, 'upgrade: build installed');
      if (this.options.noRestartAfterFetch) {
        return this.finish(log, { outcome: 'installed', buildId, version: build.version, source, reason: 'noRestartAfterFetch: the next restart runs it' });
      }
      const outcome = await this.options.restart(`upgrade to build ${buildId.slice(0, 12)}${build.version ? ` (${build.version})` : ''}`, { buildId, kind });
      if (!outcome.ok) {
        await restorePrevious(this.paths);
        this.rejected.set(buildId, outcome.reason);
        return this.finish(log, { outcome: 'rolled back', buildId, version: build.version, source, reason: outcome.reason });
      }
      this.runningId = buildId;
      this.runningVersion = build.version;
      await this.options.versions.remember(buildId, build.version);
      return this.finish(log, { outcome: 'installed', buildId, version: build.version, source, reason: undefined });
    } catch (error) {
      build.stream.destroy();
      if (error instanceof Rejection) {
        if (error.outcome === 'rejected' && error.buildId && error.remember) this.rejected.set(error.buildId, error.message);
        return this.finish(log, { outcome: error.outcome, buildId: error.buildId ?? buildId, version: build.version, source, reason: error.message });
      }
      // A download cut short, a full disk: nothing is remembered, the next fetch tries again.
      return this.finish(log, { outcome: 'rejected', buildId, version: build.version, source, reason: describeError(error) });
    } finally {
      await Promise.all([rm(this.paths.download, { force: true }), rm(this.paths.next, { force: true })]);
    }
  }

  /**
   * An app archive: extracted into `releases/<id>/`, sanity-checked there, switched live with the
   * `current` link, restarted onto, and switched back when the new generation fails. Old releases
   * beyond `keepReleases` are removed; the running and the previous one never are.
   */
  private async upgradeToArchive(buildId: string, build: FetchedBuild, source: string, log: Logger): Promise<UpgradeRecord> {
    const layout = this.options.layout;
    if (!layout) {
      throw new Rejection(
        'rejected',
        'the build is an app archive, but this master does not run from a release layout: start it as node <root>/current/<entry>, with <root>/current a symlink to <root>/releases/<first release>',
        buildId,
      );
    }
    this.skipIfKnown(buildId);
    const releasesDir = join(layout.root, 'releases');
    const previous = await currentRelease(layout.root);
    let releaseDir: string;
    try {
      // A release left by an upgrade that was cut short (the master died mid-way) is extracted afresh.
      if (buildId !== previous) await rm(join(releasesDir, buildId), { recursive: true, force: true });
      releaseDir = buildId === previous ? join(releasesDir, buildId) : await extractRelease(this.paths.download, releasesDir, buildId, this.options.releaseLimits);
    } catch (error) {
      throw new Rejection('rejected', describeError(error), buildId);
    }
    log.info({ buildId, releaseDir }, 'upgrade: archive extracted');
    const entry = join(releaseDir, layout.entry);
    try {
      await access(entry);
    } catch {
      throw new Rejection('rejected', `the archive has no ${layout.entry}, the entry point this master runs: ship it in every release`, buildId);
    }
    if (this.options.preUpgrade) {
      try {
        await this.options.preUpgrade(releaseDir);
      } catch (error) {
        throw new Rejection('rejected', `preUpgrade threw: ${describeError(error)}`, buildId);
      }
    }
    const kind = await detectBuildKind(entry);
    if (this.options.skipSanityCheck) {
      log.info({ buildId, kind }, 'upgrade: sanity check skipped (a plain command): the restart checks the build');
    } else {
      try {
        await sanityCheck(entry, { ...this.options, kind, timeoutMs: this.options.sanityTimeout, signal: this.options.signal });
      } catch (error) {
        throw new Rejection('rejected', describeError(error), buildId);
      }
      log.info({ buildId, kind }, 'upgrade: sanity check passed');
    }
    await activateRelease(layout.root, buildId);
    log.info({ buildId, previous }, 'upgrade: release activated');
    if (this.options.noRestartAfterFetch) {
      return this.finish(log, { outcome: 'installed', buildId, version: build.version, source, reason: 'noRestartAfterFetch: the next restart runs it' });
    }
    const outcome = await this.options.restart(`upgrade to release ${buildId.slice(0, 12)}${build.version ? ` (${build.version})` : ''}`, { buildId, kind });
    if (!outcome.ok) {
      if (previous) await activateRelease(layout.root, previous);
      this.rejected.set(buildId, outcome.reason);
      return this.finish(log, { outcome: 'rolled back', buildId, version: build.version, source, reason: outcome.reason });
    }
    this.runningId = buildId;
    this.runningVersion = build.version;
    await this.options.versions.remember(buildId, build.version);
    const removed = await pruneReleases(layout.root, this.options.keepReleases, previous ? [buildId, previous] : [buildId]).catch((error: unknown) => {
      log.warn({ reason: describeError(error) }, 'upgrade: old releases could not be removed');
      return [];
    });
    if (removed.length > 0) log.info({ removed }, 'upgrade: old releases removed');
    return this.finish(log, { outcome: 'installed', buildId, version: build.version, source, reason: undefined });
  }

  /** Checks the bytes as published against their minisign signature, before anything runs them. */
  private async verifySignature(build: FetchedBuild, downloadedSha256: string): Promise<void> {
    const key = this.options.publicKey!;
    if (!build.signature) {
      throw new Rejection(
        'rejected',
        `the build has no signature and publicKey requires one: publish ${build.name ?? 'the build'}.minisig beside it (overseer sign <file>, or minisign -S)`,
        downloadedSha256,
        false,
      );
    }
    try {
      const { trustedComment } = await verifyFile(this.paths.download, build.signature, key);
      this.options.log.info({ keyId: key.keyId, trustedComment }, 'upgrade: signature verified');
    } catch (error) {
      throw new Rejection('rejected', `signature check failed: ${describeError(error)}`, downloadedSha256, false);
    }
  }

  /** Tells the fetcher to download again next time; a fetcher's own failure there is logged, never the upgrade's. */
  private forgetFetched(forget: (() => void) | undefined, log: Logger): void {
    if (!forget) return;
    try {
      forget();
      log.info('upgrade: the fetcher forgets this build, so that its next fetch downloads it again');
    } catch (error) {
      log.warn({ reason: describeError(error) }, 'upgrade: the fetcher\'s forget() threw');
    }
  }

  private skipIfKnown(buildId: string): void {
    if (buildId === this.runningId) throw new Rejection('skipped', 'this build is already running', buildId);
    const why = this.rejected.get(buildId);
    if (why !== undefined) throw new Rejection('skipped', `this build was rejected before: ${why}`, buildId);
  }

  /** Leaves the candidate at `paths.next`, gunzipped when it came gzipped; resolves with its id. */
  private async decode(downloadedSha256: string): Promise<string> {
    if (!(await isGzip(this.paths.download))) {
      await rename(this.paths.download, this.paths.next);
      return downloadedSha256;
    }
    return gunzipFile(this.paths.download, this.paths.next, this.options.maxBuildSize);
  }

  private finish(log: Logger, record: Omit<UpgradeRecord, 'at'>): UpgradeRecord {
    const full: UpgradeRecord = { at: new Date().toISOString(), ...record };
    const fields = { outcome: full.outcome, buildId: full.buildId, reason: full.reason };
    if (full.outcome === 'installed') log.info(fields, 'upgrade done');
    else if (full.outcome === 'skipped') {
      // Polls keep finding a skipped build until the source changes: say it once.
      const repeat = this.lastUpgrade?.outcome === 'skipped' && this.lastUpgrade.buildId === full.buildId;
      if (repeat) log.debug(fields, 'upgrade skipped');
      else log.info(fields, 'upgrade skipped');
    } else log.error(fields, full.outcome === 'rolled back' ? 'upgrade rolled back: the previous build keeps serving' : 'upgrade rejected: the running build keeps serving');
    this.lastUpgrade = full;
    return full;
  }
}
