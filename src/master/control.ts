/**
 * The master's control socket: a unix socket speaking newline-delimited JSON, one answer line per
 * request line, in order. `{"cmd":"status"}` answers the `MasterStatus`; `{"cmd":"restart"}` waits
 * for the restart and answers its `RestartOutcome` (`{ ok: true, generation, buildId, durationMs }`
 * or `{ ok: false, reason }`); `{"cmd":"upgrade"}` checks the sources now and answers the
 * `BuildStatus`; anything else answers `{ "error": "..." }`.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { askControlSocket, MAX_CONTROL_LINE_BYTES, type ControlErrorAnswer } from './control-client.js';
import type { RestartOutcome } from './generation.js';
import type { MasterStatus } from './status.js';
import type { BuildStatus } from './upgrade/status.js';

/** What the control socket can ask of a master. */
export interface ControlTarget {
  status(): MasterStatus;
  restart(reason: string): Promise<RestartOutcome>;
  checkForUpgrade(): Promise<BuildStatus>;
}

/** A listening control socket. */
export interface ControlServer {
  readonly path: string;
  /** Stops listening, ends open connections and removes the socket file. */
  close(): Promise<void>;
}

async function answer(line: string, target: ControlTarget, log: Logger): Promise<unknown> {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch {
    return { error: 'the request is not JSON: send one object per line, such as {"cmd":"status"}' } satisfies ControlErrorAnswer;
  }
  const cmd = typeof request === 'object' && request !== null ? (request as { cmd?: unknown }).cmd : undefined;
  switch (cmd) {
    case 'status':
      return target.status();
    case 'restart':
      log.info({ cmd }, 'restart requested on the control socket');
      return target.restart('requested on the control socket');
    case 'upgrade':
      log.info({ cmd }, 'upgrade check requested on the control socket');
      return target.checkForUpgrade();
    default:
      return { error: `unknown command ${JSON.stringify(cmd)}: the commands are status, restart and upgrade` } satisfies ControlErrorAnswer;
  }
}

function serveConnection(socket: Socket, target: ControlTarget, log: Logger): void {
  let buffered = '';
  // Answers go out in the order their requests came, even when a restart takes a while.
  let queue = Promise.resolve();
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === '') continue;
      queue = queue.then(async () => {
        let reply: unknown;
        try {
          reply = await answer(line, target, log);
        } catch (error) {
          reply = { error: describeError(error) } satisfies ControlErrorAnswer;
        }
        if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(reply)}\n`);
      });
    }
    if (buffered.length > MAX_CONTROL_LINE_BYTES) {
      socket.end(`${JSON.stringify({ error: 'request line too long' } satisfies ControlErrorAnswer)}\n`);
      buffered = '';
    }
  });
}

/** Removes a socket file left by a master that is gone; refuses to touch anything else. */
async function clearStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket()) {
    throw new ConfigError(`controlSocket ${path} exists and is not a socket: remove it, or choose another controlSocket`);
  }
  const live = await askControlSocket(path, { cmd: 'status' }, 2_000).then(
    (reply) => reply,
    (error: { code?: string }) => (error.code === 'ECONNREFUSED' ? undefined : error),
  );
  if (live !== undefined) {
    const pid = (live as { pid?: unknown }).pid;
    throw new ConfigError(
      `controlSocket ${path} is in use${typeof pid === 'number' ? ` by master ${pid}` : ''}: stop that master, or choose another controlSocket`,
    );
  }
  await unlink(path).catch(() => {});
}

function listenOwnerOnly(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A unix socket is created by bind(), synchronously inside listen(): with this umask it is
    // 0600 from its first moment, so no other user can connect in the gap before a chmod.
    const previous = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
}

/**
 * Opens the control socket at `path` for `target`. The socket is owner-only (0600), so only the
 * master's user (and root) can connect; on Linux that is enforced by the socket's own mode, but
 * some systems ignore a socket's mode, and anyone who can write to its directory can remove or
 * replace it: keep it in a directory only that user can write to (a missing directory is created
 * 0700). A socket file left by a master that is gone is replaced; a live one is refused.
 */
export async function startControlServer(path: string, target: ControlTarget, log: Logger): Promise<ControlServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await clearStaleSocket(path);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, target, log);
  });
  try {
    await listenOwnerOnly(server, path);
    chmodSync(path, 0o600);
  } catch (error) {
    server.close();
    throw new ConfigError(`cannot open the control socket ${path}: ${describeError(error)}: choose another controlSocket`);
  }
  server.unref();
  const inode = lstatSync(path).ino;
  const removeFile = () => {
    try {
      // Only our own socket: another master may have taken the path since.
      if (lstatSync(path).ino === inode) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.once('exit', removeFile);
  log.info({ controlSocket: path }, 'control socket listening');
  let closed: Promise<void> | undefined;
  return {
    path,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }).then(() => {
        removeFile();
        process.off('exit', removeFile);
      });
      return closed;
    },
  };
}
