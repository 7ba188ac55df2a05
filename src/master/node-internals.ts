/**
 * The only module that touches Node.js internals. Each use is feature-checked so that a Node
 * release that moves them fails loudly at start-up with a clear message, not mid-restart.
 */
import http, { type ServerResponse } from 'node:http';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { NodeInternalsError } from '../errors.js';

/** A bound, not yet listening socket owned by the master. */
export interface ServerHandle {
  readonly fd: number;
  close(callback?: () => void): void;
  getsockname?(out: Record<string, unknown>): number;
}

type CreateServerHandle = (address: string | null, port: number, addressType: number) => ServerHandle | number;

function createServerHandle(): CreateServerHandle {
  const create = (net as unknown as { _createServerHandle?: unknown })._createServerHandle;
  if (typeof create !== 'function') {
    throw new NodeInternalsError(
      `this Node.js ${process.version} has no net._createServerHandle, which overseer needs to own sockets without accepting on them: ` +
        'run overseer on Node.js 20, 22 or 24, and report this Node version to the overseer project',
    );
  }
  return create as CreateServerHandle;
}

/** Checks every internal this process will need, so a missing one fails before anything binds. */
export function assertMasterInternals(): void {
  createServerHandle();
}

function errnoError(code: number, syscall: string): NodeJS.ErrnoException {
  const name = getSystemErrorName(code);
  const error: NodeJS.ErrnoException = new Error(`${syscall} ${name}`);
  error.code = name;
  error.errno = code;
  error.syscall = syscall;
  return error;
}

function checked(result: ServerHandle | number, syscall: string): ServerHandle {
  if (typeof result === 'number') throw errnoError(result, syscall);
  if (typeof result.fd !== 'number' || result.fd < 0) {
    result.close();
    throw new NodeInternalsError('net._createServerHandle returned a handle without a file descriptor: this Node.js is not supported');
  }
  return result;
}

/** Binds a TCP socket without listening. `host` null binds every interface (IPv6 dual-stack, else IPv4). */
export function bindTcp(host: string | null, port: number, family: 4 | 6): ServerHandle {
  return checked(createServerHandle()(host, port, family), 'bind');
}

/** Binds a unix socket path without listening. Closing the handle unlinks the path. */
export function bindPipe(path: string): ServerHandle {
  return checked(createServerHandle()(path, -1, -1), 'bind');
}

/** The port a TCP handle is bound to. */
export function boundPort(handle: ServerHandle): number {
  const out: Record<string, unknown> = {};
  const error = handle.getsockname?.(out);
  if (error || typeof out.port !== 'number') throw errnoError(typeof error === 'number' ? error : -22, 'getsockname');
  return out.port;
}

/** What getsockname says about a socket: an IP address and port, or (a unix socket) address ''. */
export interface SocketName {
  address: string;
  family: string | undefined;
  port: number | undefined;
}

type TcpWrapBinding = { TCP: new (type: number) => ServerHandle & { open(fd: number): number }; constants: { SERVER: number } };

function tcpWrap(): TcpWrapBinding {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  let tcp: Partial<TcpWrapBinding> | undefined;
  try {
    tcp = typeof binding === 'function' ? (binding.call(process, 'tcp_wrap') as Partial<TcpWrapBinding>) : undefined;
  } catch {
    tcp = undefined;
  }
  if (typeof tcp?.TCP !== 'function' || typeof tcp.constants?.SERVER !== 'number' || typeof tcp.TCP.prototype.open !== 'function') {
    throw new NodeInternalsError(
      `this Node.js ${process.version} has no process.binding('tcp_wrap').TCP, which overseer needs to take over sockets passed by systemd ` +
        '(LISTEN_FDS): run overseer on Node.js 20, 22 or 24, or let overseer bind the addresses itself (remove the .socket unit)',
    );
  }
  return tcp as TcpWrapBinding;
}

/**
 * Takes over a listening socket this process inherited as `fd` (systemd socket activation): a
 * handle that owns the fd and can name its address, without accepting on it. Closing the handle
 * closes the fd, and never unlinks a unix socket path (systemd owns it).
 */
export function adoptSocket(fd: number): ServerHandle {
  const { TCP, constants } = tcpWrap();
  // A TCP wrap takes any stream socket fd; getsockname then tells a unix socket (address '') from an IP one.
  const handle = new TCP(constants.SERVER);
  const error = handle.open(fd);
  if (error) throw errnoError(error, 'open');
  return { fd, close: (callback) => handle.close(callback), getsockname: (out) => handle.getsockname!(out) };
}

/** The address a handle is bound to (getsockname). */
export function socketName(handle: ServerHandle): SocketName {
  const out: Record<string, unknown> = {};
  const error = handle.getsockname?.(out);
  if (error) throw errnoError(error, 'getsockname');
  return {
    address: typeof out.address === 'string' ? out.address : '',
    family: typeof out.family === 'string' ? out.family : undefined,
    port: typeof out.port === 'number' ? out.port : undefined,
  };
}

type HttpSocket = net.Socket & { _httpMessage?: ServerResponse | null; parser?: unknown };

let drainInternalsChecked = false;

/**
 * Checks, once per process, that Node still records a socket's in-flight response where the
 * drain looks for it: a response assigned to a socket and detached again, as the server does.
 */
export function assertDrainInternals(): void {
  if (drainInternalsChecked) return;
  const socket = new net.Socket() as HttpSocket;
  const response = new http.ServerResponse(new http.IncomingMessage(socket));
  response.assignSocket(socket);
  const assigned = socket._httpMessage === response;
  response.detachSocket(socket);
  const detached = socket._httpMessage === null;
  socket.destroy();
  if (!assigned || !detached) {
    throw new NodeInternalsError(
      `this Node.js ${process.version} no longer exposes a socket's in-flight response (socket._httpMessage), which overseer's drain needs ` +
        'to tell busy connections from idle ones: run overseer on Node.js 20, 22 or 24, and report this Node version to the overseer project',
    );
  }
  drainInternalsChecked = true;
}

/** The response a server socket is writing now, if any (Node sets it while a request is in flight). */
export function responseInFlight(socket: net.Socket): ServerResponse | null {
  return (socket as HttpSocket)._httpMessage ?? null;
}

/**
 * Whether Node's HTTP parser still owns this socket. After an `upgrade` (WebSocket, ...) the
 * socket belongs to the application, and only the application may decide when it closes. Should a
 * Node release drop `socket.parser`, every socket counts as the application's: drains then wait
 * for clients or the deadline, which is slower but never cuts a request.
 */
export function isHttpParsed(socket: net.Socket): boolean {
  const parser = (socket as HttpSocket).parser;
  return parser !== null && parser !== undefined;
}
