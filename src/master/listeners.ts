import { lookup } from 'node:dns/promises';
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { BindError } from '../errors.js';
import { formatAddress, parseAddress, type ParsedAddress } from './addresses.js';
import { bindPipe, bindTcp, boundPort, type ServerHandle } from './node-internals.js';

/** A socket the master owns for its whole life and hands to every worker. */
export interface BoundListener {
  /** The address as configured. */
  readonly spec: string;
  /** The address as bound: the configured one with the port the OS chose. */
  readonly address: string;
  readonly fd: number;
  /** systemd `LISTEN_FDNAMES` entry: the address, with ':' (not allowed there) replaced by '_'. */
  readonly name: string;
  readonly unixPath: string | undefined;
  close(): void;
}

const PROBE_TIMEOUT_MS = 1000;

/** Resolves when something accepts a connection to `options`, or false when it is refused. */
function somethingListens(options: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(options);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function bindFailure(address: ParsedAddress, code: string | undefined, cause: unknown): BindError {
  const where = address.spec;
  if (code === 'EADDRINUSE') {
    const hint =
      address.kind === 'unix'
        ? `another process serves ${address.path}: stop it, or choose another path`
        : `another process listens on port ${address.port} (see: ss -ltnp 'sport = :${address.port}'): stop it, or choose another port`;
    return new BindError(where, `address ${where} is already in use: ${hint}`, code, cause);
  }
  if (code === 'EACCES' || code === 'EPERM') {
    const hint =
      address.kind === 'unix'
        ? 'the directory is not writable by this user: choose a path this user may create'
        : 'ports below 1024 need privileges: use a higher port, or grant CAP_NET_BIND_SERVICE';
    return new BindError(where, `no permission to bind ${where}: ${hint}`, code, cause);
  }
  if (code === 'EADDRNOTAVAIL') {
    return new BindError(where, `address ${where} is not an address of this machine: use one of its interfaces, or ':port' for all`, code, cause);
  }
  if (code === 'ENOENT') {
    return new BindError(where, `cannot create unix socket ${where}: its directory does not exist`, code, cause);
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return new BindError(where, `cannot bind ${where}: ${message}`, code, cause);
}

async function bindUnix(address: Extract<ParsedAddress, { kind: 'unix' }>): Promise<ServerHandle> {
  try {
    return bindPipe(address.path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A master that was SIGKILLed leaves its socket file behind; it is stale if nobody answers on it.
    if (code !== 'EADDRINUSE' || (await somethingListens({ path: address.path }))) throw bindFailure(address, code, error);
    unlinkSync(address.path);
    try {
      return bindPipe(address.path);
    } catch (retryError) {
      throw bindFailure(address, (retryError as NodeJS.ErrnoException).code, retryError);
    }
  }
}

async function bindInet(address: Extract<ParsedAddress, { kind: 'tcp' }>): Promise<{ handle: ServerHandle; port: number }> {
  let host = address.host;
  let family: 4 | 6 = address.family === 6 ? 6 : 4;
  if (address.family === 0 && host !== null) {
    try {
      const found = await lookup(host);
      host = found.address;
      family = found.family === 6 ? 6 : 4;
    } catch (error) {
      throw bindFailure(address, undefined, new Error(`cannot resolve host ${JSON.stringify(host)}: use an IP address or a name this machine resolves`));
    }
  }
  let handle: ServerHandle | undefined;
  try {
    handle = bindTcp(host, address.port, family);
    // libuv defers a bind error such as EADDRINUSE to the next call on the handle: getsockname reports it.
    const port = boundPort(handle);
    return { handle, port };
  } catch (error) {
    handle?.close();
    throw bindFailure(address, (error as NodeJS.ErrnoException).code, error);
  }
}

async function bindOne(spec: string): Promise<BoundListener> {
  const address = parseAddress(spec);
  let handle: ServerHandle;
  let reported: string;
  if (address.kind === 'unix') {
    handle = await bindUnix(address);
    reported = formatAddress(address);
  } else {
    const bound = await bindInet(address);
    handle = bound.handle;
    reported = formatAddress(address, bound.port);
  }
  let closed = false;
  return {
    spec,
    address: reported,
    fd: handle.fd,
    name: reported.replaceAll(':', '_'),
    unixPath: address.kind === 'unix' ? address.path : undefined,
    close() {
      if (closed) return;
      closed = true;
      handle.close();
    },
  };
}

/** Parses every address first (so a typo fails before anything binds), then binds them in order. */
export async function bindAll(specs: readonly string[]): Promise<BoundListener[]> {
  specs.forEach((spec) => parseAddress(spec));
  const bound: BoundListener[] = [];
  try {
    for (const spec of specs) bound.push(await bindOne(spec));
  } catch (error) {
    for (const listener of bound) listener.close();
    throw error;
  }
  return bound;
}

/**
 * Removes unix socket files synchronously: the path of last resort when the master exits
 * without closing its handles (closing a bound pipe handle unlinks the path by itself).
 */
export function unlinkUnixSockets(listeners: readonly BoundListener[]): void {
  for (const listener of listeners) {
    if (listener.unixPath === undefined) continue;
    try {
      unlinkSync(listener.unixPath);
    } catch {
      // already gone
    }
  }
}
