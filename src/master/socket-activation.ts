/**
 * systemd socket activation on the master's side: when systemd (or `systemd-socket-activate`)
 * started this process with `LISTEN_FDS`, the master takes those sockets as its listeners instead
 * of binding, and hands them to its workers like sockets it bound itself.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { BindError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ENV, FIRST_LISTENER_FD } from '../protocol.js';
import type { BoundListener } from './listeners.js';
import { adoptSocket, socketName, type ServerHandle } from './node-internals.js';

/**
 * How many sockets systemd passed to this very process: `LISTEN_FDS` counts only when
 * `LISTEN_PID` names this process (a variable inherited from a parent that was activated is not
 * meant for us). 0 when there are none.
 */
export function activatedSocketCount(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number {
  const count = Number(env[ENV.listenFds]);
  if (!Number.isInteger(count) || count <= 0) return 0;
  if (Number(env[ENV.listenPid]) !== pid) return 0;
  return count;
}

/** The path of a unix socket, by its inode in /proc/net/unix (Linux): getsockname through the TCP wrap cannot say it. */
function unixSocketPath(fd: number): string | undefined {
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    if (inode === undefined) return undefined;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns[6] === inode) return columns[7];
    }
  } catch {
    // not Linux, or /proc not mounted: the address stays unknown
  }
  return undefined;
}

function describeSocket(handle: ServerHandle, fd: number): string {
  let name;
  try {
    name = socketName(handle);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BindError(
      `fd:${fd}`,
      `systemd passed fd ${fd} (LISTEN_FDS) but it is not a socket overseer can use (${code ?? String(error)}): ` +
        'check the ListenStream= lines of the .socket unit, or start overseer without socket activation',
      code,
      error,
    );
  }
  if (name.port !== undefined) {
    if (name.address === '0.0.0.0' || name.address === '::') return `:${name.port}`;
    return name.family === 'IPv6' ? `[${name.address}]:${name.port}` : `${name.address}:${name.port}`;
  }
  const path = unixSocketPath(fd);
  return path ? `unix:${path}` : `fd:${fd}`;
}

/**
 * The sockets systemd passed, as listeners (fds 3 up, in order), or undefined when this process
 * was not socket-activated. Removes `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` from this
 * process's environment, as `sd_listen_fds()` does, so nothing started later mistakes them for its own.
 */
export function adoptActivatedSockets(log: Logger, configured: readonly string[]): BoundListener[] | undefined {
  const count = activatedSocketCount();
  if (count === 0) return undefined;
  const names = (process.env[ENV.listenFdNames] ?? '').split(':');
  delete process.env[ENV.listenFds];
  delete process.env[ENV.listenPid];
  delete process.env[ENV.listenFdNames];
  const listeners: BoundListener[] = [];
  for (let index = 0; index < count; index++) {
    const fd = FIRST_LISTENER_FD + index;
    const handle = adoptSocket(fd);
    let address: string;
    try {
      address = describeSocket(handle, fd);
    } catch (error) {
      handle.close();
      for (const listener of listeners) listener.close();
      throw error;
    }
    let closed = false;
    const systemdName = names[index];
    listeners.push({
      spec: `systemd:${fd}`,
      address,
      fd,
      // A program written for the unit may look its sockets up by the names the unit gave them.
      name: systemdName !== undefined && systemdName !== '' ? systemdName : address.replaceAll(':', '_'),
      // systemd owns the path: the master must never unlink it.
      unixPath: undefined,
      close() {
        if (closed) return;
        closed = true;
        handle.close();
      },
    });
  }
  if (configured.length > 0) {
    log.warn(
      { configured, adopted: listeners.map((listener) => listener.address) },
      'socket activation: serving on the sockets systemd passed; the configured addresses are not bound',
    );
  }
  return listeners;
}
