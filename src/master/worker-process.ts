import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from '../logger.js';
import {
  asFailedMessage,
  asHeartbeatMessage,
  asLogMessage,
  isReadyMessage,
  isRestartMessage,
  isStoppedAcceptingMessage,
  type StartMessage,
  type StopMessage,
} from '../protocol.js';

export type WorkerPhase = 'starting' | 'ready' | 'draining' | 'exited';

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerSpec {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  listenerFds: readonly number[];
  generation: number;
  buildId: string;
  /** Which of its generation's workers this is (0 to workers - 1); a replacement takes the slot of the one it replaces. */
  slot: number;
  /** How many workers crashed in this slot before this one. */
  restarts: number;
  /** For a program that knows no IPC stop message: the signal that asks it to drain and exit. */
  stopSignal?: NodeJS.Signals | undefined;
  /** For a program that may never say it is ready: ms after which it counts as ready while it runs. */
  readyDelay?: number | undefined;
  /**
   * A warm spare to become this worker instead of spawning `command` (see `SparePool`): it is sent
   * `env` and runs `argv` (the entry script and its arguments) as its main module.
   */
  warm?: { child: ChildProcess; argv: string[] } | undefined;
}

interface WorkerEvents {
  ready: [];
  exit: [WorkerExit];
  restart: [];
}

/**
 * One child process of the master: spawned with the listener fds from 3 up and an IPC channel
 * after them, watched through its lifecycle, stopped by message with a kill deadline.
 */
export class WorkerProcess extends EventEmitter<WorkerEvents> {
  readonly generation: number;
  readonly buildId: string;
  readonly slot: number;
  readonly restarts: number;
  readonly startedAt = Date.now();
  phase: WorkerPhase = 'starting';
  /** Whether the master asked this worker to stop (an exit after that is not a crash). */
  stopRequested = false;
  /** Why the program said it failed, when it did. */
  failure: string | undefined;
  exitInfo: WorkerExit | undefined;
  /** When the last heartbeat came; undefined until the first (a worker that sends none is never judged hung). */
  lastHeartbeatAt: number | undefined;
  /** RSS in bytes the worker reported with its last heartbeat. */
  reportedRss: number | undefined;
  /** RSS in bytes at the master's last memory sample. */
  lastRss: number | undefined;
  /** A replacement for this worker is starting (it hung, or grew past maxMemory): it is judged no more. */
  beingReplaced = false;
  /** A replacement is starting in this worker's slot: if this worker dies meanwhile, the slot needs no crash replacement. */
  slotCovered = false;
  /** This worker replaces another and is not ready yet: if it exits now, the replacement failed, which is not a crash to replace. */
  pendingReplacement = false;
  readonly exited: Promise<WorkerExit>;
  private confirmStoppedAccepting!: () => void;
  /**
   * Resolves once the worker, asked to stop, says it has closed its listeners (or has exited):
   * from then on it takes no connection from the shared sockets. Plain commands never say it.
   */
  readonly stoppedAccepting = new Promise<void>((resolve) => (this.confirmStoppedAccepting = resolve));
  private readonly child: ChildProcess;
  private readonly log: Logger;
  /** Writes the lines this worker hands over (see `relayLogger`). */
  private readonly workerLog: Logger;
  private killTimer: NodeJS.Timeout | undefined;
  private readyDelayTimer: NodeJS.Timeout | undefined;
  /** The signal that stops this worker, when it knows no stop message: dying of it is a clean stop. */
  readonly stopSignal: NodeJS.Signals | undefined;

  /** `log` is the master's logger; `workerLog` writes what the worker itself logs. */
  constructor(spec: WorkerSpec, log: Logger, workerLog: Logger) {
    super();
    this.generation = spec.generation;
    this.slot = spec.slot;
    this.restarts = spec.restarts;
    this.buildId = spec.buildId;
    this.stopSignal = spec.stopSignal;
    this.child = spec.warm ? this.startSpare(spec.warm, spec.env) : this.spawnChild(spec);
    const identity = { workerPid: this.child.pid, generation: spec.generation, buildId: spec.buildId };
    this.log = log.child(identity);
    this.workerLog = workerLog.child(identity);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        clearTimeout(this.killTimer);
        clearTimeout(this.readyDelayTimer);
        this.phase = 'exited';
        this.exitInfo = { code, signal };
        this.confirmStoppedAccepting();
        resolve(this.exitInfo);
        this.emit('exit', this.exitInfo);
      });
    });
    this.child.once('error', (error) => {
      // Spawn failures (ENOENT, EMFILE, ...) arrive here; an 'exit' may never follow.
      this.failure = error.message;
      this.log.error({ err: error }, 'worker could not be started');
      if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid === undefined) {
        this.phase = 'exited';
        this.exitInfo = { code: null, signal: null };
        this.emit('exit', this.exitInfo);
      }
    });
    this.child.on('message', (message) => this.onMessage(message));
    this.log.info(spec.warm ? { warm: true } : {}, 'worker started');
    if (spec.readyDelay !== undefined) {
      const readyDelay = spec.readyDelay;
      this.readyDelayTimer = setTimeout(() => this.becomeReady({ readyDelay }), readyDelay);
    }
  }

  private spawnChild(spec: WorkerSpec): ChildProcess {
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', ...spec.listenerFds, 'ipc'];
    return spawn(spec.command, spec.args, { env: spec.env, stdio });
  }

  private startSpare(warm: { child: ChildProcess; argv: string[] }, env: NodeJS.ProcessEnv): ChildProcess {
    const strings: Record<string, string> = {};
    for (const [key, value] of Object.entries(env)) if (value !== undefined) strings[key] = value;
    const start: StartMessage = { overseer: 'start', env: strings, argv: warm.argv };
    warm.child.send(start, (error) => {
      // The spare died between the pool's check and now: its 'exit' reports this worker's end.
      if (error) {
        this.failure = `the warm spare it was started from could not be reached: ${error.message}`;
        this.kill();
      }
    });
    return warm.child;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** How this worker ended, in words, for logs and restart errors. */
  describeExit(): string {
    const how = this.exitInfo?.signal ? `was killed by ${this.exitInfo.signal}` : `exited with code ${this.exitInfo?.code}`;
    return this.failure ? `${how}: ${this.failure}` : how;
  }

  private onMessage(message: unknown): void {
    const heartbeat = asHeartbeatMessage(message);
    // Any message proves the worker's loop turns (a ready message right after a long synchronous
    // start-up must not find a stale heartbeat), once the worker has shown it sends heartbeats.
    if (heartbeat || this.lastHeartbeatAt !== undefined) this.lastHeartbeatAt = Date.now();
    if (heartbeat) {
      this.reportedRss = heartbeat.rss;
    } else if (isReadyMessage(message)) {
      this.becomeReady({});
    } else if (isRestartMessage(message)) {
      this.emit('restart');
    } else if (isStoppedAcceptingMessage(message)) {
      this.confirmStoppedAccepting();
    } else {
      const line = asLogMessage(message);
      if (line) this.workerLog[line.level](line.fields, line.msg);
      const failed = asFailedMessage(message);
      if (failed) this.failure = failed.message;
    }
  }

  private becomeReady(how: { readyDelay?: number }): void {
    if (this.phase !== 'starting') return;
    clearTimeout(this.readyDelayTimer);
    this.phase = 'ready';
    this.log.info({ startupMs: Date.now() - this.startedAt, ...how }, 'worker ready');
    this.emit('ready');
  }

  /** Asks the worker to drain and exit; kills it when `timeout` passes. Resolves on exit. */
  stop(timeout: number): Promise<WorkerExit> {
    if (this.phase === 'exited' || this.phase === 'draining') return this.exited;
    this.phase = 'draining';
    this.stopRequested = true;
    const message: StopMessage = { overseer: 'stop', timeout };
    if (this.stopSignal !== undefined) {
      this.signal(this.stopSignal);
    } else if (this.child.connected) {
      this.child.send(message, (error) => {
        // The channel closed under us: the worker is on its way out, or wedged. SIGTERM is the fallback ask.
        if (error) this.signal('SIGTERM');
      });
    } else {
      this.signal('SIGTERM');
    }
    this.killTimer = setTimeout(() => {
      this.log.warn({ terminateTimeout: timeout }, 'drain forced: worker still running after terminateTimeout, killing it');
      this.kill();
    }, timeout);
    return this.exited;
  }

  /** SIGKILL, at once. */
  kill(): void {
    this.signal('SIGKILL');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.phase === 'exited') return;
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
  }
}
