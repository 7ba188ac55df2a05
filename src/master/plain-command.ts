/**
 * Workers that are not overseer programs: any command, started with the listeners as fds from 3
 * and systemd's socket-activation variables, as `overseer run -- <command>` does.
 */

/** A command the master runs as each worker instead of its entry script. */
export interface PlainCommand {
  /** The program and its arguments, as the user gave them. */
  readonly argv: readonly string[];
  /** Asks a worker to drain and exit: such a program knows no IPC stop message. */
  readonly stopSignal: NodeJS.Signals;
  /**
   * Milliseconds after which a worker still running counts as ready, for programs that never
   * send `process.send('ready')`. Undefined: wait for the message.
   */
  readonly readyDelay: number | undefined;
}

/**
 * `LISTEN_PID` must be the pid of the program that reads it, which a parent cannot know before
 * the fork. sh's `$$` is its own pid, and `exec` keeps it: the program started by exec finds its
 * own pid there. `"$0" "$@"` passes the command and its arguments through untouched.
 */
const EXPORT_OWN_PID_THEN_EXEC = 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"';

/** How to start `argv` so that it inherits the listeners and finds its own pid in `LISTEN_PID`. */
export function plainWorkerLaunch(argv: readonly string[]): { command: string; args: string[] } {
  return { command: '/bin/sh', args: ['-c', EXPORT_OWN_PID_THEN_EXEC, ...argv] };
}
