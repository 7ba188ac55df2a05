import { execFileSync } from 'node:child_process';
import http2 from 'node:http2';
import https from 'node:https';
import { join } from 'node:path';
import WebSocket from 'ws';
import { NeverProcessed, startRequestLoad, type RequestOnce } from './load.js';


/** A self-signed certificate for 127.0.0.1, made with the openssl command in `dir`. */
export function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { key, cert };
}

/** HTTPS (HTTP/1.1) load accepting a self-signed certificate: keep-alive, or a new connection per request. */
export function startHttpsLoad(port: number, options: { connections: number; keepAlive: boolean }) {
  const agent = options.keepAlive ? new https.Agent({ keepAlive: true, maxSockets: options.connections, rejectUnauthorized: false }) : undefined;
  const requestOnce: RequestOnce = () =>
    new Promise((resolve, reject) => {
      const request = https.get({ host: '127.0.0.1', port, path: '/', agent: agent ?? false, rejectUnauthorized: false, timeout: 15_000 }, (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, generation: String(response.headers['x-generation']) }));
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(Object.assign(new Error('no response within 15000 ms'), { code: 'ETIMEDOUT' })));
      request.on('error', reject);
    });
  return startRequestLoad(options.connections, requestOnce, () => agent?.destroy());
}

/**
 * HTTP/2 load: `sessions` connections, each carrying `streamsPerSession` requests back to back at
 * once. A client opens a new connection once its session was told GOAWAY, and retries a stream
 * refused with REFUSED_STREAM (never processed, as HTTP/2 defines it), as h2 clients do.
 */
export function startHttp2Load(port: number, options: { sessions: number; streamsPerSession: number }) {
  const clients: Array<http2.ClientHttp2Session | undefined> = Array.from({ length: options.sessions }, () => undefined);
  const all = new Set<http2.ClientHttp2Session>();
  const sessionFor = (index: number): http2.ClientHttp2Session => {
    const current = clients[index];
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    // A session's connection error also fails its streams: counted there.
    session.on('error', () => {});
    session.on('close', () => all.delete(session));
    all.add(session);
    clients[index] = session;
    return session;
  };
  let next = 0;
  const requestOnce: RequestOnce = () => {
    const index = next++ % options.sessions;
    return new Promise((resolve, reject) => {
      const stream = sessionFor(index).request({ ':path': '/' });
      let status = 0;
      let generation = '';
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
        generation = String(headers['x-generation']);
      });
      stream.resume();
      stream.on('end', () => resolve({ status, generation }));
      stream.on('error', (error: NodeJS.ErrnoException) => {
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) reject(new NeverProcessed('REFUSED_STREAM'));
        else reject(Object.assign(error, { code: `${error.code ?? 'ERR'} rst=${stream.rstCode}` }));
      });
      stream.setTimeout(15_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.end();
    });
  };
  return startRequestLoad(options.sessions * options.streamsPerSession, requestOnce, () => {
    for (const session of all) session.destroy();
  });
}

/**
 * A WebSocket client that numbers its messages and expects each back as an echo. When the
 * server closes with 1012 (service restart) it reconnects at once and sends again every message
 * not yet echoed, so a message is lost only if it never comes back.
 */
export class NumberingClient {
  private socket: WebSocket | undefined;
  private nextSeq = 1;
  private readonly pending = new Map<number, string>();
  readonly echoed = new Set<number>();
  /** Echoes received for a message already echoed: the price of resending, not a loss. */
  duplicates = 0;
  /** Messages sent again after a reconnect because no echo had come for them. */
  resent = 0;
  /** The generation each connection greeted with, in order. */
  readonly greetings: number[] = [];
  readonly closeCodes: number[] = [];
  readonly errors: string[] = [];
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly url: string, private readonly intervalMs = 5) {}

  get sent(): number {
    return this.nextSeq - 1;
  }

  get unanswered(): number {
    return this.pending.size;
  }

  /** Connects, and sends a numbered message every `intervalMs` until `stopSending()`. */
  start(): void {
    this.connect();
    this.timer = setInterval(() => this.send(), this.intervalMs);
  }

  stopSending(): void {
    clearInterval(this.timer);
  }

  close(): void {
    this.stopped = true;
    this.stopSending();
    this.socket?.terminate();
  }

  private connect(): void {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.on('open', () => {
      for (const [, text] of this.pending) {
        this.resent += 1;
        socket.send(text);
      }
    });
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { hello?: number; echo?: string };
      if (message.hello !== undefined) this.greetings.push(message.hello);
      if (message.echo === undefined) return;
      const seq = Number(message.echo);
      if (this.echoed.has(seq)) this.duplicates += 1;
      this.echoed.add(seq);
      this.pending.delete(seq);
    });
    socket.on('error', (error) => this.errors.push(error.message));
    socket.on('close', (code) => {
      if (this.stopped) return;
      this.closeCodes.push(code);
      this.connect();
    });
  }

  private send(): void {
    const seq = this.nextSeq++;
    const text = String(seq);
    this.pending.set(seq, text);
    // Not open (connecting, or closing after the server's 1012): sent on the next open.
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(text);
  }
}
