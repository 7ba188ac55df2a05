/**
 * Tells systemd how the master is doing (`Type=notify` services): READY=1 once the first
 * generation serves, RELOADING=1 while a restart runs, READY=1 again after it, STOPPING=1 at
 * shutdown. Node has no unix datagram sockets, so each message goes through the `systemd-notify`
 * program.
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../logger.js';

const NOTIFY_PROGRAM = 'systemd-notify';
const NOTIFY_TIMEOUT_MS = 10_000;

function runNotify(args: readonly string[]): Promise<{ error: NodeJS.ErrnoException | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NOTIFY_PROGRAM, args, { timeout: NOTIFY_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) =>
      resolve({ error: error as NodeJS.ErrnoException | null, stdout, stderr }),
    );
  });
}

/** systemd's clock for RELOADING=1 (CLOCK_MONOTONIC, which Node's hrtime reads on Linux), in microseconds. */
function monotonicMicroseconds(): string {
  return String(process.hrtime.bigint() / 1000n);
}

/** Sends sd_notify messages in order, one `systemd-notify` run each; never throws. */
export class SystemdNotifier {
  private queue: Promise<void> = Promise.resolve();
  private unavailable = false;
  private failureReported = false;
  private pidOption: Promise<boolean> | undefined;

  private constructor(private readonly log: Logger) {}

  /** A notifier when systemd asked for notifications (`NOTIFY_SOCKET` is set), else undefined. */
  static fromEnvironment(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | undefined {
    return env.NOTIFY_SOCKET ? new SystemdNotifier(log) : undefined;
  }

  /** The service serves (the first generation is ready, or a restart ended). */
  ready(status: string): Promise<void> {
    return this.send(['READY=1', `STATUS=${status}`]);
  }

  /** A restart has begun. */
  reloading(status: string): Promise<void> {
    return this.send(['RELOADING=1', `MONOTONIC_USEC=${monotonicMicroseconds()}`, `STATUS=${status}`]);
  }

  /** Shutdown has begun. */
  stopping(): Promise<void> {
    return this.send(['STOPPING=1', 'STATUS=draining workers and stopping']);
  }

  /** Resolves once every message sent so far has been handed to systemd (or given up on). */
  flush(): Promise<void> {
    return this.queue;
  }

  private send(assignments: readonly string[]): Promise<void> {
    this.queue = this.queue.then(() => this.deliver(assignments));
    return this.queue;
  }

  /** `--pid` makes systemd-notify speak for the master (MAINPID), not for itself, a short-lived child. */
  private supportsPidOption(): Promise<boolean> {
    this.pidOption ??= runNotify(['--help']).then(({ stdout }) => stdout.includes('--pid'));
    return this.pidOption;
  }

  private async deliver(assignments: readonly string[]): Promise<void> {
    if (this.unavailable) return;
    const pid = (await this.supportsPidOption()) ? [`--pid=${process.pid}`] : [];
    const { error, stderr } = await runNotify([...pid, ...assignments]);
    if (error === null) {
      this.log.debug({ message: assignments.join(' ') }, 'systemd notified');
      return;
    }
    if (error.code === 'ENOENT') {
      this.unavailable = true;
      this.log.warn(
        { program: NOTIFY_PROGRAM },
        'NOTIFY_SOCKET is set but systemd-notify is not installed: systemd will not hear READY/RELOADING/STOPPING; ' +
          'install systemd (it provides systemd-notify) or use Type=simple in the unit',
      );
      return;
    }
    if (!this.failureReported) {
      this.failureReported = true;
      this.log.warn({ message: assignments.join(' '), reason: stderr.trim() || error.message }, 'systemd-notify failed: systemd may not hear this state change');
    }
  }
}
