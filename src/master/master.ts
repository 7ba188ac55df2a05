import type { ResolvedConfig } from '../config.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { CrashBackoff } from './backoff.js';
import { hashFile } from './build-id.js';
import { awaitGenerationReady, awaitStoppedAccepting, Generation, type Build, type RestartOutcome } from './generation.js';
import { bindAll, unlinkUnixSockets, type BoundListener } from './listeners.js';
import { assertMasterInternals } from './node-internals.js';
import { SystemdNotifier } from './sd-notify.js';
import { adoptActivatedSockets } from './socket-activation.js';
import { installMasterSignals, type SignalBuffer } from './signals.js';
import { detectBuildKind } from './upgrade/build-kind.js';
import type { BuildStatus } from './upgrade/status.js';
import type { GenerationStatus, MasterStatus } from './status.js';
import { currentRelease } from './upgrade/archive.js';
import { releaseLayoutOf, type ReleaseLayout } from './upgrade/layout.js';
import { SelfUpgrade } from './upgrade/self-upgrade.js';
import { WorkerProcess } from './worker-process.js';
import { warmStartArgv, workerCommand, workerEnvironment, type Entry } from './worker-launch.js';
import { sparePoolFor, type SparePool } from './spares.js';
import { WorkerHealth } from './worker-health.js';
import { WorkerReplacer } from './replacement.js';
import { startControlServer, type ControlServer } from './control.js';
import { claimPidFile, type PidFile } from './pid-file.js';

export type { Entry } from './worker-launch.js';

/** How long a restart waits for the old workers to say they stopped accepting before it reports done anyway. */
const STOPPED_ACCEPTING_WAIT_MS = 1000;

/**
 * The long-lived process: owns the listening sockets, runs generations of workers on them,
 * replaces crashed workers, and hands over from one generation to the next without a gap.
 */
export class Master {
  private listeners: BoundListener[] = [];
  private current: Generation | undefined;
  private starting: Generation | undefined;
  private readonly draining: Generation[] = [];
  private nextGeneration = 1;
  private restartRun: Promise<RestartOutcome> | undefined;
  private restartQueued: Promise<RestartOutcome> | undefined;
  private readonly shutdownController = new AbortController();
  private readonly backoff = new CrashBackoff();
  private readonly replacementTimers = new Set<NodeJS.Timeout>();
  private removeSignalHandlers: (() => void) | undefined;
  private selfUpgrade: SelfUpgrade | undefined;
  private readonly startedAt = Date.now();
  /** Set when the master was started through a release layout's `current` link (app archives). */
  private readonly layout: ReleaseLayout | undefined;
  private lastRestart: (RestartOutcome & { at: string; reason: string }) | undefined;
  private readonly log: Logger;
  /** Writes the lines workers hand over. */
  private readonly workerLog: Logger;
  /** systemd's Type=notify: told READY, RELOADING, STOPPING. */
  private readonly systemd: SystemdNotifier | undefined;
  private readyReported = false;
  private health: WorkerHealth | undefined;
  /** Warm spares for script builds (see `SparePool`); undefined when warm start is off or cannot apply. */
  private spares: SparePool | undefined;

  /** `log` is the base logger: the master's lines get `role: 'master'`, its workers' `role: 'worker'`. */
  constructor(
    private readonly config: ResolvedConfig,
    log: Logger,
    private readonly entry: Entry,
    private readonly exit: (code: number) => void,
  ) {
    this.log = log.child({ role: 'master' });
    this.layout = releaseLayoutOf(entry.binPath);
    this.workerLog = log.child({ role: 'worker' });
    this.systemd = SystemdNotifier.fromEnvironment(this.log);
  }

  /** Bound addresses, with the ports the OS chose. */
  get addresses(): string[] {
    return this.listeners.map((listener) => listener.address);
  }

  private get shuttingDown(): boolean {
    return this.shutdownController.signal.aborted;
  }

  /**
   * Installs signal handlers (taking over from `buffered`, which held signals until now), binds
   * every address, starts the first generation.
   */
  async start(buffered?: SignalBuffer): Promise<void> {
    this.removeSignalHandlers = installMasterSignals(
      this.config.restartSignal,
      {
        restart: (signal) => {
          if (this.config.noRestart) void this.shutdown(signal);
          else void this.restart(`signal ${signal}`);
        },
        shutdown: (signal) => void this.shutdown(signal),
        forward: (signal) => this.forward(signal),
      },
      buffered,
    );
    process.once('exit', () => unlinkUnixSockets(this.listeners));
    assertMasterInternals();
    await this.claimPidFile();
    const activated = adoptActivatedSockets(this.log, this.config.addresses);
    if (activated) for (const listener of activated) this.log.info({ address: listener.address, fd: listener.fd, fdName: listener.name }, 'adopted socket from systemd');
    this.listeners = activated ?? (await bindAll(this.config.addresses));
    if (!activated) for (const listener of this.listeners) this.log.info({ address: listener.address, fd: listener.fd }, 'bound');
    await this.openControlSocket();
    this.spares = this.createSparePool();
    const build = await this.readBuild();
    this.log.info(
      { addresses: this.addresses, workers: this.config.workers, buildId: build.buildId, kind: build.kind, binPath: this.entry.binPath },
      'master started',
    );
    if (this.shuttingDown) return;
    const generation = new Generation(this.nextGeneration++, build);
    this.current = generation;
    for (let slot = 0; slot < this.config.workers; slot++) this.spawnWorker(generation, build, slot);
    this.watchHealth();
    if (this.config.fetcher) await this.startFetching(build.buildId);
  }

  /** Starts the liveness and memory checks of the serving generation's workers. */
  private watchHealth(): void {
    const replacer = new WorkerReplacer({
      config: this.config,
      log: this.log,
      cancel: this.shutdownController.signal,
      serving: () => (this.shuttingDown ? undefined : this.current),
      restarting: () => this.restartRun !== undefined,
      spawn: async (generation, slot, restarts) => {
        const build = await this.readBuild();
        if (generation !== this.current || this.shuttingDown) throw new Error('a restart or shutdown began meanwhile');
        return this.spawnWorker(generation, build, slot, restarts);
      },
    });
    const watched = () => [...(this.current?.workers ?? [])].filter((worker) => !worker.beingReplaced && !worker.pendingReplacement && worker.phase === 'ready');
    this.health = new WorkerHealth(this.config, watched, replacer, this.log);
    this.health.start();
  }

  /** The installed build: its id, and whether it is a script for node or a program of its own. */
  private async readBuild(): Promise<Build> {
    // In a release layout the release is the build: its id is its directory's name (the archive's SHA-256).
    const release = this.layout ? await currentRelease(this.layout.root) : undefined;
    const [buildId, kind] = await Promise.all([release ?? hashFile(this.entry.binPath), detectBuildKind(this.entry.binPath)]);
    return { buildId, kind };
  }

  private async startFetching(runningId: string): Promise<void> {
    this.selfUpgrade = await SelfUpgrade.start({
      config: this.config,
      fetcher: this.config.fetcher!,
      entry: this.entry,
      skipSanityCheck: this.entry.command !== undefined,
      layout: this.layout,
      runningId,
      log: this.log,
      restart: (reason, build) => this.restart(reason, build),
      signal: this.shutdownController.signal,
    });
  }

  /** Everything `overseer status` shows: the master, its generations and workers, its builds. */
  status(): MasterStatus {
    const now = Date.now();
    const describe = (generation: Generation, state: GenerationStatus['state']): GenerationStatus => ({
      number: generation.number,
      buildId: generation.buildId,
      state,
      workers: [...generation.workers].map((worker) => ({
        pid: worker.pid,
        generation: generation.number,
        slot: worker.slot,
        phase: worker.phase,
        uptimeMs: now - worker.startedAt,
        restarts: worker.restarts,
      })),
    });
    const generations: GenerationStatus[] = [];
    if (this.current) generations.push(describe(this.current, 'current'));
    if (this.starting) generations.push(describe(this.starting, 'starting'));
    for (const generation of this.draining) generations.push(describe(generation, 'draining'));
    return {
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: now - this.startedAt,
      addresses: this.addresses,
      binPath: this.entry.binPath,
      generations,
      lastRestart: this.lastRestart,
      spares: this.spares?.readyCount ?? 0,
      build: this.buildStatus(),
    };
  }

  /** The running build, each source's last check and the last upgrade. */
  buildStatus(): BuildStatus {
    return this.selfUpgrade?.status() ?? { running: { buildId: this.current?.buildId ?? '', version: undefined }, sources: [], lastUpgrade: undefined };
  }

  /** Checks the sources now; resolves once the check, and any upgrade it led to, has ended. */
  async checkForUpgrade(): Promise<BuildStatus> {
    return (await this.selfUpgrade?.checkNow()) ?? this.buildStatus();
  }

  /**
   * Starts a new generation, waits until all of it is ready, then drains the old one. A request
   * during a restart is coalesced into at most one more restart after it.
   */
  restart(reason: string, build?: Build): Promise<RestartOutcome> {
    if (this.shuttingDown) return Promise.resolve({ ok: false, generation: undefined, reason: 'the master is shutting down' });
    if (this.restartRun === undefined) {
      this.restartRun = this.performRestart(reason, build).finally(() => {
        this.restartRun = undefined;
      });
      return this.restartRun;
    }
    if (this.restartQueued === undefined) {
      this.log.info({ reason }, 'restart requested during a restart: one more will follow it');
      this.restartQueued = this.restartRun.then(() => {
        this.restartQueued = undefined;
        return this.restart(reason);
      });
    } else {
      this.log.debug({ reason }, 'restart request coalesced with the one already queued');
    }
    return this.restartQueued;
  }

  /** `build` is what the caller knows is installed (an upgrade just hashed it); else it is read from disk. */
  private async performRestart(reason: string, known?: Build): Promise<RestartOutcome> {
    const outcome = await this.restartOnce(reason, known);
    this.lastRestart = { ...outcome, at: new Date().toISOString(), reason };
    // restartRun is cleared after this settles; spares start then, unless another restart follows.
    setImmediate(() => this.fillSpares());
    return outcome;
  }

  private async restartOnce(reason: string, known: Build | undefined): Promise<RestartOutcome> {
    const began = Date.now();
    let build: Build;
    try {
      build = known ?? (await this.readBuild());
    } catch (error) {
      const why = `cannot read the build at ${this.entry.binPath}: ${describeError(error)}`;
      this.log.error({ reason: why }, 'restart abandoned: old generation keeps serving');
      return { ok: false, generation: undefined, reason: why };
    }
    const { buildId } = build;
    const generation = new Generation(this.nextGeneration++, build);
    this.log.info({ generation: generation.number, buildId, reason }, 'restart begun');
    void this.systemd?.reloading(`restarting: starting generation ${generation.number}`);
    this.starting = generation;
    for (let slot = 0; slot < this.config.workers; slot++) this.spawnWorker(generation, build, slot);
    const result = await awaitGenerationReady(generation, this.config.readyTimeout, this.shutdownController.signal);
    this.starting = undefined;
    if (!result.ok) {
      const workers = [...generation.workers];
      for (const worker of workers) worker.kill();
      await Promise.all(workers.map((worker) => worker.exited));
      this.log.error({ generation: generation.number, buildId, reason: result.reason }, 'restart abandoned: old generation keeps serving');
      void this.systemd?.ready(`serving generation ${this.current?.number ?? '-'}; last restart abandoned: ${result.reason}`);
      return { ok: false, generation: generation.number, reason: result.reason };
    }
    const old = this.current;
    this.current = generation;
    if (old) await this.drain(old);
    const durationMs = Date.now() - began;
    this.log.info({ generation: generation.number, buildId, durationMs, draining: this.draining.length }, 'restart done');
    this.readyReported = true;
    void this.systemd?.ready(`serving generation ${generation.number}`);
    return { ok: true, generation: generation.number, buildId, durationMs };
  }

  private spawnWorker(generation: Generation, build: Build, slot: number, restarts = 0): WorkerProcess {
    const { buildId } = build;
    const env = workerEnvironment(this.entry, this.config, { generation: generation.number, buildId, listeners: this.listeners });
    const plain = this.entry.command;
    const { command, args } = workerCommand(this.entry, build);
    const spare = build.kind === 'script' ? this.spares?.take() : undefined;
    this.log.debug({ generation: generation.number, command, args, listenFds: this.listeners.length, sparePid: spare?.pid }, 'spawning worker');
    const worker = new WorkerProcess(
      {
        command,
        args,
        env,
        listenerFds: this.listeners.map((listener) => listener.fd),
        generation: generation.number,
        buildId,
        slot,
        restarts,
        stopSignal: plain?.stopSignal,
        readyDelay: plain?.readyDelay,
        warm: spare && { child: spare, argv: warmStartArgv(this.entry) },
      },
      this.log,
      this.workerLog,
    );
    generation.workers.add(worker);
    worker.on('restart', () => void this.restart(`requested by worker ${worker.pid}`));
    worker.once('exit', () => this.onWorkerExit(generation, worker));
    worker.once('ready', () => {
      this.reportFirstReady(generation);
      this.fillSpares();
    });
    return worker;
  }

  private createSparePool(): SparePool | undefined {
    if (!this.config.warmStart || this.entry.command) return undefined;
    return sparePoolFor(this.entry, this.config, () => this.listeners, this.log);
  }

  /**
   * Tops the spares up once the serving generation is all ready and no restart runs: a spare
   * booting beside a starting generation would only slow it down.
   */
  private fillSpares(): void {
    if (!this.spares || this.shuttingDown || this.restartRun !== undefined || !this.current) return;
    if (this.current.build.kind !== 'script') return;
    if (![...this.current.workers].every((worker) => worker.phase === 'ready')) return;
    this.spares.fill();
  }

  /** systemd's READY=1 once every worker of the first generation serves (later ones: at restart done). */
  private reportFirstReady(generation: Generation): void {
    if (this.readyReported || generation !== this.current) return;
    if (![...generation.workers].every((worker) => worker.phase === 'ready')) return;
    this.readyReported = true;
    void this.systemd?.ready(`serving generation ${generation.number}`);
  }

  private onWorkerExit(generation: Generation, worker: WorkerProcess): void {
    generation.workers.delete(worker);
    const fields = {
      workerPid: worker.pid,
      generation: generation.number,
      buildId: worker.buildId,
      code: worker.exitInfo?.code,
      signal: worker.exitInfo?.signal,
    };
    if (worker.stopRequested) {
      const clean = worker.exitInfo?.code === 0 || (worker.stopSignal !== undefined && worker.exitInfo?.signal === worker.stopSignal);
      if (clean) this.log.info(fields, 'worker exited');
      else this.log.warn({ ...fields, reason: worker.describeExit() }, 'worker exited');
      const index = this.draining.indexOf(generation);
      if (index >= 0 && generation.size === 0) {
        this.draining.splice(index, 1);
        this.log.info({ generation: generation.number, draining: this.draining.length }, 'generation drained');
      }
      return;
    }
    if (worker.pendingReplacement || worker.slotCovered) {
      // A replacement of a hung worker or one over maxMemory failed, or the worker it replaces died
      // first: replaceWorker decides what fills the slot.
      this.log.warn({ ...fields, reason: worker.describeExit() }, worker.pendingReplacement ? 'worker exited before it was ready' : 'worker exited while its replacement starts');
      return;
    }
    if (generation === this.current && !this.shuttingDown) {
      const delayMs = this.backoff.next(Date.now() - worker.startedAt);
      this.log.error(
        { ...fields, reason: worker.describeExit(), delayMs, consecutiveCrashes: this.backoff.crashes },
        'worker exited unexpectedly: replacing it',
      );
      const timer = setTimeout(() => {
        this.replacementTimers.delete(timer);
        if (generation !== this.current || this.shuttingDown) return;
        this.readBuild().then(
          (build) => {
            if (generation === this.current && !this.shuttingDown) this.spawnWorker(generation, build, worker.slot, worker.restarts + 1);
          },
          (error) => this.log.error({ err: error }, 'cannot read the build to replace a crashed worker'),
        );
      }, delayMs);
      this.replacementTimers.add(timer);
      return;
    }
    // A worker of a generation being started: the restart reports it.
    this.log.warn({ ...fields, reason: worker.describeExit() }, 'worker exited');
  }

  /**
   * Asks every worker of `generation` to drain. Resolves once each has said it accepts no more
   * connections (so that "restart done" means only the new generation accepts), or after
   * STOPPED_ACCEPTING_WAIT_MS for one too busy to say so; plain commands are not waited for.
   */
  private async drain(generation: Generation): Promise<void> {
    if (generation.size === 0) return;
    this.draining.push(generation);
    this.log.info(
      { generation: generation.number, buildId: generation.buildId, workers: generation.size, draining: this.draining.length },
      'drain begun',
    );
    for (const worker of generation.workers) void worker.stop(this.config.terminateTimeout);
    while (this.draining.length > this.config.maxDrainingGenerations) {
      const oldest = this.draining.shift()!;
      this.log.warn(
        { generation: oldest.number, workers: oldest.size, draining: this.draining.length, maxDrainingGenerations: this.config.maxDrainingGenerations },
        'drain forced: too many generations draining, killing the oldest',
      );
      for (const worker of oldest.workers) worker.kill();
    }
    const waitMs = Math.min(STOPPED_ACCEPTING_WAIT_MS, this.config.terminateTimeout);
    if (!(await awaitStoppedAccepting(generation, waitMs))) {
      this.log.warn(
        { generation: generation.number, waitedMs: waitMs },
        'old workers have not confirmed they stopped accepting (event loop busy?): they may take a few more connections',
      );
    }
  }

  private liveWorkers(): WorkerProcess[] {
    const generations = [this.current, this.starting, ...this.draining].filter((g): g is Generation => g !== undefined);
    return generations.flatMap((generation) => [...generation.workers]);
  }

  private forward(signal: NodeJS.Signals): void {
    const workers = this.liveWorkers();
    this.log.info({ signal, workers: workers.length }, 'forwarding signal to workers');
    for (const worker of workers) worker.signal(signal);
  }

  /** Drains every worker, closes the sockets (removing unix socket files) and exits 0. */
  async shutdown(signal: NodeJS.Signals): Promise<void> {
    if (this.shuttingDown) {
      if (signal === 'SIGINT') {
        this.log.warn('second SIGINT: exiting now');
        this.spares?.stop();
        for (const worker of this.liveWorkers()) worker.kill();
        this.closeListeners();
        this.exit(130);
      }
      return;
    }
    this.log.info({ signal }, 'shutdown begun: draining workers');
    void this.systemd?.stopping();
    const workers = this.liveWorkers();
    this.shutdownController.abort();
    this.spares?.stop();
    this.selfUpgrade?.stop();
    this.health?.stop();
    for (const timer of this.replacementTimers) clearTimeout(timer);
    await Promise.all(workers.map((worker) => worker.stop(this.config.terminateTimeout)));
    this.closeListeners();
    await this.closeOperationFiles();
    this.removeSignalHandlers?.();
    await this.systemd?.flush();
    this.log.info({ signal }, 'shutdown done');
    this.exit(0);
  }

  private closeListeners(): void {
    for (const listener of this.listeners) listener.close();
  }

  // Operations: the pid file and the control socket `overseer status|restart|upgrade` use.
  // A fast exit (second SIGINT, fatal start error) removes both through their 'exit' hooks.
  private pidFile: PidFile | undefined;
  private control: ControlServer | undefined;

  /** Before binding: a second master on the same pid file must stop before it takes any socket. */
  private async claimPidFile(): Promise<void> {
    if (this.config.pidFile === undefined) return;
    this.pidFile = await claimPidFile(this.config.pidFile, { controlSocket: this.config.controlSocket, log: this.log });
  }

  private async openControlSocket(): Promise<void> {
    if (this.config.controlSocket === undefined || this.shuttingDown) return;
    this.control = await startControlServer(this.config.controlSocket, this, this.log);
  }

  private async closeOperationFiles(): Promise<void> {
    await this.control?.close();
    this.pidFile?.release();
  }
}
