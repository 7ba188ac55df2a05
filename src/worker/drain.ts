import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Session } from 'node:http2';
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

/**
 * What happens to an open socket when draining begins. Every such decision is made here.
 * `close-after-streams`: an HTTP/2 connection; its session is told GOAWAY and closes once the
 * streams it already accepted have finished.
 */
export type SocketFate = 'close-after-response' | 'close-when-idle' | 'close-after-streams' | 'leave-to-application';

/** `node:http2` servers, plain or TLS: the only servers with `updateSettings`. */
function isHttp2Server(server: net.Server): boolean {
  return typeof (server as { updateSettings?: unknown }).updateSettings === 'function';
}

/**
 * Stops one server gracefully: no new connections, `Connection: close` on every further
 * response, idle keep-alive sockets closed once they have sat idle, in-flight requests left to
 * finish; `force()` ends whatever is left.
 */
export class ServerDrain {
  private readonly sockets = new Set<net.Socket>();
  private readonly isHttp: boolean;
  /** The open HTTP/2 sessions of an `node:http2` server; undefined for any other server. */
  private readonly sessions: Set<ServerHttp2Session> | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly server: net.Server) {
    this.isHttp = typeof (server as { closeIdleConnections?: unknown }).closeIdleConnections === 'function';
    if (this.isHttp) assertDrainInternals();
    // A TLS server's requests run on the TLS socket, not on the TCP one under it.
    const isTls = typeof (server as { setSecureContext?: unknown }).setSecureContext === 'function';
    const event = isTls ? 'secureConnection' : 'connection';
    server.on(event, this.track);
    if (isHttp2Server(server)) {
      this.sessions = new Set();
      server.on('session', this.trackSession);
    }
  }

  private readonly trackSession = (session: ServerHttp2Session): void => {
    // A connection accepted just before the drain may only now have finished its handshake.
    if (this.closed) return this.goAway(session);
    this.sessions?.add(session);
    session.once('close', () => this.sessions?.delete(session));
  };

  /**
   * GOAWAY with the last stream the session accepted, as `session.close()` sends it: streams
   * already accepted finish, and the client opens a new connection for further requests. A
   * request the client sent before the GOAWAY reached it is refused with REFUSED_STREAM, which
   * HTTP/2 defines as never processed and safe to retry; clients retry it.
   */
  private goAway(session: ServerHttp2Session): void {
    if (!session.closed && !session.destroyed) session.close();
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
    // An HTTP/1 request on an http2 server with allowHTTP1 is parsed by the HTTP/1 parser, as below.
    if (this.sessions && !isHttpParsed(socket)) return 'close-after-streams';
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
    for (const session of this.sessions ?? []) this.goAway(session);
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
