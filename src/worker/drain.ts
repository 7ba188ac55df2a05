import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { assertDrainInternals, isHttpParsed, responseInFlight } from '../master/node-internals.js';

/**
 * How long a keep-alive socket must sit idle, once draining began, before it is closed. A busy
 * client reuses its socket well within this, gets a `Connection: close` response and closes
 * cleanly; closing at once would race a request already on the wire and reset it.
 */
export const IDLE_CLOSE_MS = 500;

const SET = Symbol('overseer.sockets');
type TrackedSocket = net.Socket & { [SET]?: Set<net.Socket> };

// One shared function instead of a closure per connection: tracking must cost next to nothing.
function untrack(this: TrackedSocket): void {
  this[SET]?.delete(this);
}

/** What happens to an open socket when draining begins. Every such decision is made here. */
export type SocketFate = 'close-after-response' | 'close-when-idle' | 'leave-to-application';

/**
 * Stops one server gracefully: no new connections, `Connection: close` on every further
 * response, idle keep-alive sockets closed once they have sat idle, in-flight requests left to
 * finish; `force()` ends whatever is left.
 */
export class ServerDrain {
  private readonly sockets = new Set<net.Socket>();
  private readonly isHttp: boolean;
  private closed: Promise<void> | undefined;

  constructor(private readonly server: net.Server) {
    this.isHttp = typeof (server as { closeIdleConnections?: unknown }).closeIdleConnections === 'function';
    if (this.isHttp) assertDrainInternals();
    // A TLS server's requests run on the TLS socket, not on the TCP one under it.
    const isTls = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function';
    const event = isTls ? 'secureConnection' : 'connection';
    server.on(event, this.track);
  }

  private readonly track = (socket: TrackedSocket): void => {
    socket[SET] = this.sockets;
    socket.on('close', untrack);
    this.sockets.add(socket);
  };

  private readonly onRequestWhileDraining = (_request: IncomingMessage, response: ServerResponse): void => {
    response.shouldKeepAlive = false;
  };

  /** Decides what becomes of `socket` now that draining has begun. */
  fateOf(socket: net.Socket): SocketFate {
    if (!this.isHttp || !isHttpParsed(socket)) return 'leave-to-application';
    const response = responseInFlight(socket);
    if (response !== null && !response.headersSent) {
      response.shouldKeepAlive = false;
      return 'close-after-response';
    }
    if (response !== null) {
      // Headers already promised keep-alive: let this response finish, then treat the socket as idle.
      response.once('finish', () => this.closeWhenIdle(socket));
      return 'close-after-response';
    }
    this.closeWhenIdle(socket);
    return 'close-when-idle';
  }

  /** Closes `socket` once it has received nothing and had no response in flight for IDLE_CLOSE_MS. */
  private closeWhenIdle(socket: net.Socket): void {
    let bytesRead = socket.bytesRead;
    const check = () => {
      if (socket.destroyed) return;
      if (socket.bytesRead !== bytesRead || responseInFlight(socket) !== null) {
        // The client is using it: its response will say Connection: close. Check again later.
        bytesRead = socket.bytesRead;
        setTimeout(check, IDLE_CLOSE_MS).unref();
        return;
      }
      socket.end();
      setTimeout(() => socket.destroy(), IDLE_CLOSE_MS).unref();
    };
    setTimeout(check, IDLE_CLOSE_MS).unref();
  }

  /** Begins draining. Resolves when the server and every connection it accepted have closed. */
  drain(): Promise<void> {
    if (this.closed) return this.closed;
    this.closed = new Promise((resolve) => {
      if (!this.server.listening) {
        // Never listened, or closed by the application already: only its connections remain.
        if (this.sockets.size === 0) return resolve();
        for (const socket of this.sockets) socket.once('close', () => this.sockets.size === 0 && resolve());
      } else {
        // net.Server's close, not http.Server's: the latter drops idle keep-alive sockets at once.
        net.Server.prototype.close.call(this.server, () => resolve());
      }
    });
    if (this.isHttp) this.server.prependListener('request', this.onRequestWhileDraining);
    for (const socket of this.sockets) this.fateOf(socket);
    return this.closed;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** The deadline: ends every connection still open, in flight or not. */
  force(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
