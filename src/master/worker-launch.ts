import type { ResolvedConfig } from '../config.js';
import { ENV } from '../protocol.js';
import type { Build } from './generation.js';
import type { BoundListener } from './listeners.js';
import { plainWorkerLaunch, type PlainCommand } from './plain-command.js';

/** How to start the entry script again as a worker. */
export interface Entry {
  binPath: string;
  execPath: string;
  execArgv: readonly string[];
  args: readonly string[];
  /** Run this command as each worker instead of the entry script (`overseer run -- <command>`); `binPath` is then the file upgrades replace. */
  command?: PlainCommand | undefined;
}

/** Inspector flags would make every worker fight over the master's debug port. */
function workerExecArgv(execArgv: readonly string[]): string[] {
  return execArgv.filter((flag) => !/^--(inspect|inspect-brk|inspect-wait|inspect-port|debug-port)(=|$)/.test(flag));
}

/** The program a worker of `build` runs: a script on the master's own node, a native build as itself, a plain command as given. */
export function workerCommand(entry: Entry, { kind }: Build): { command: string; args: string[] } {
  if (entry.command) return plainWorkerLaunch(entry.command.argv);
  if (kind === 'native') return { command: entry.binPath, args: [...entry.args] };
  return { command: entry.execPath, args: [...workerExecArgv(entry.execArgv), entry.binPath, ...entry.args] };
}

/**
 * How a warm spare of `entry` starts: node with the workers' flags, running the spare entry (see
 * `SparePool`). The entry script and its arguments follow, unused, so that `ps` tells which
 * program a spare (and the worker it becomes) belongs to.
 */
export function spareCommand(entry: Entry, spareEntry: string, ignoredSignals: readonly NodeJS.Signals[]): { command: string; args: string[] } {
  return { command: entry.execPath, args: [...workerExecArgv(entry.execArgv), spareEntry, ignoredSignals.join(','), ...warmStartArgv(entry)] };
}

/** What a warm spare runs as its main module to become a worker of `entry`: the argv node would see after its own flags. */
export function warmStartArgv(entry: Entry): string[] {
  return [entry.binPath, ...entry.args];
}

/** The environment of a worker: the contract's variables (section 3) over the master's own. */
export function workerEnvironment(
  entry: Entry,
  config: ResolvedConfig,
  { generation, buildId, listeners }: { generation: number; buildId: string; listeners: readonly BoundListener[] },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    [ENV.worker]: '1',
    [ENV.binId]: buildId,
    [ENV.binPath]: entry.binPath,
    [ENV.generation]: String(generation),
    [ENV.addresses]: JSON.stringify(listeners.map((listener) => listener.address)),
    [ENV.terminateTimeout]: String(config.terminateTimeout),
    // Heartbeats only when someone listens: with the liveness check off they cost nothing.
    ...(config.livenessTimeout !== undefined && { [ENV.livenessInterval]: String(config.livenessInterval) }),
    [ENV.listenFds]: String(listeners.length),
    [ENV.listenFdNames]: listeners.map((listener) => listener.name).join(':'),
  };
  // A pid can only be named after fork; a LISTEN_PID inherited from our own activation would lie.
  delete env[ENV.listenPid];
  // Only the master speaks to systemd: a worker's READY=1 would be taken for the service's.
  delete env.NOTIFY_SOCKET;
  if (listeners.length === 0) {
    delete env[ENV.listenFds];
    delete env[ENV.listenFdNames];
  }
  return env;
}
