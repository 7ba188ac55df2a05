/**
 * The master's pid file: claimed before any address is bound, so a second master started by
 * mistake stops before it can take sockets or run workers, and removed when the master exits.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PidFileError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { askControlSocket } from './control-client.js';

/** What a pid file names, and whether that process is a master still running. */
export type PidFileHolder =
  | { state: 'none' }
  | { state: 'unreadable'; reason: string }
  | { state: 'stale'; pid: number; reason: string }
  | { state: 'live'; pid: number; how: string };

/** Parses a pid file's text: a positive integer on its first line. */
export function parsePid(text: string): number | undefined {
  const line = text.split('\n', 1)[0]?.trim() ?? '';
  if (!/^[1-9][0-9]{0,9}$/.test(line)) return undefined;
  return Number(line);
}

/** Whether a process with this pid exists (also when it belongs to another user). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process could be an overseer master, going by its command line: a master is always
 * a Node.js process. Undefined where /proc cannot tell (another OS, a hidepid mount).
 */
function couldBeMaster(pid: number): boolean | undefined {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
  // A zombie or kernel thread has an empty command line: it is no master.
  const program = argv[0];
  if (program === undefined) return false;
  const name = basename(program);
  return /node/i.test(name) || name === basename(process.execPath) || name === basename(process.argv0);
}

/**
 * Decides who holds `pidFile`. A holder is live when its control socket answers as that pid, or
 * when the process exists and its command line could be a master's (a master still starting has
 * no socket yet, so doubt counts as live). It is stale when the process is gone, is this very
 * process (a container restarted with the same pid), or runs something other than Node.js.
 */
export async function inspectPidFile(pidFile: string, controlSocket: string | undefined): Promise<PidFileHolder> {
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'none' };
    return { state: 'unreadable', reason: describeError(error) };
  }
  const pid = parsePid(text);
  if (pid === undefined) return { state: 'stale', pid: 0, reason: `it holds no pid (${JSON.stringify(text.slice(0, 40))})` };
  if (pid === process.pid) return { state: 'stale', pid, reason: 'it names this very process (left from an earlier run with the same pid)' };
  if (!processExists(pid)) return { state: 'stale', pid, reason: `process ${pid} is gone` };
  if (controlSocket !== undefined) {
    const answer = await askControlSocket(controlSocket, { cmd: 'status' }, 2_000).catch(() => undefined);
    if (answer !== undefined && (answer as { pid?: unknown }).pid === pid) return { state: 'live', pid, how: `its control socket ${controlSocket} answers` };
  }
  const master = couldBeMaster(pid);
  if (master === false) return { state: 'stale', pid, reason: `process ${pid} is not an overseer master (it is not a Node.js process)` };
  return { state: 'live', pid, how: master === true ? 'it is a running Node.js process' : 'it is running' };
}

/** A pid file this process holds. */
export interface PidFile {
  readonly path: string;
  /** Removes the file if it still names this process. Safe to call more than once. */
  release(): void;
}

/** Writes `<dir>/.<name>.<random>.tmp`: a name in the same directory, so rename and link stay atomic. */
async function writeTemporary(path: string, contents: string): Promise<string> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temporary, contents, { mode: 0o644, flag: 'wx' });
  return temporary;
}

function heldError(pidFile: string, holder: { pid: number; how: string }): PidFileError {
  return new PidFileError(
    `pid file ${pidFile} is held by a running overseer master, pid ${holder.pid} (${holder.how}): ` +
      `stop that master first (kill ${holder.pid}), or give this one another pidFile`,
  );
}

/**
 * Claims `pidFile` for this process. Refuses (a `PidFileError` naming the holder's pid and the fix)
 * when another live master holds it; replaces a stale one with a warning. The file appears whole:
 * it is written beside its final name and hard-linked into place, which fails if another master
 * claimed it meanwhile; where links are not supported, renamed into place.
 */
export async function claimPidFile(pidFile: string, options: { controlSocket: string | undefined; log: Logger }): Promise<PidFile> {
  const { log } = options;
  try {
    await mkdir(dirname(pidFile), { recursive: true });
  } catch (error) {
    throw new PidFileError(`cannot create the directory of pid file ${pidFile}: ${describeError(error)}: create it, or choose another pidFile`);
  }
  let temporary: string;
  try {
    temporary = await writeTemporary(pidFile, `${process.pid}\n`);
  } catch (error) {
    throw new PidFileError(`cannot write pid file ${pidFile}: ${describeError(error)}: make its directory writable for this user, or choose another pidFile`);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(temporary, pidFile);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') {
          // Filesystems without hard links: a plain rename, after the check below found no holder.
          const holder = await inspectPidFile(pidFile, options.controlSocket);
          if (holder.state === 'live') throw heldError(pidFile, holder);
          await rename(temporary, pidFile);
          break;
        }
      }
      const holder = await inspectPidFile(pidFile, options.controlSocket);
      if (holder.state === 'live') throw heldError(pidFile, holder);
      if (holder.state === 'unreadable') {
        throw new PidFileError(`cannot read pid file ${pidFile}: ${holder.reason}: fix its permissions, or choose another pidFile`);
      }
      if (holder.state === 'stale') {
        log.warn({ pidFile, stalePid: holder.pid || undefined, reason: holder.reason }, 'replacing a stale pid file');
        await rename(temporary, pidFile);
        break;
      }
      // 'none': it vanished between link and read; try once more, then give up.
      if (attempt > 3) throw new PidFileError(`pid file ${pidFile} keeps changing under this master: is another master starting with it?`);
    }
  } finally {
    await rm(temporary, { force: true });
  }
  await verifyOwnership(pidFile);
  log.info({ pidFile }, 'pid file written');
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      // Never remove a file another master has claimed since.
      if (parsePid(readFileSync(pidFile, 'utf8')) === process.pid) unlinkSync(pidFile);
    } catch {
      // already gone
    }
  };
  process.on('exit', release);
  return { path: pidFile, release };
}

/** After a rename race with another master, the file must name this process. */
async function verifyOwnership(pidFile: string): Promise<void> {
  const text = await readFile(pidFile, 'utf8');
  if (parsePid(text) !== process.pid) {
    const other = parsePid(text);
    throw new PidFileError(`pid file ${pidFile} was taken by pid ${other ?? '?'} while this master claimed it: stop one of the two masters`);
  }
}
