/**
 * The client side of the master's control socket: one newline-delimited JSON request, one answer.
 * Used by `overseer status|restart|upgrade` and by a starting master checking a pid file's holder.
 */
import { createConnection } from 'node:net';

/** Commands the control socket understands. */
export type ControlCommand = 'status' | 'restart' | 'upgrade';

export interface ControlRequest {
  cmd: ControlCommand | (string & {});
}

/** The answer to a request the master could not carry out (unknown command, bad JSON). */
export interface ControlErrorAnswer {
  error: string;
}

/** Longest line either side sends or accepts; a status of many workers is a few KiB. */
export const MAX_CONTROL_LINE_BYTES = 1024 * 1024;

/** A failure to talk to the socket: `code` is the syscall's (`ENOENT`, `ECONNREFUSED`, ...) or `ETIMEDOUT`. */
export class ControlConnectionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlConnectionError';
  }
}

/**
 * Sends `request` to the control socket at `path` and resolves with the parsed answer. Rejects
 * with `ControlConnectionError` when the socket is missing, refuses, closes early, answers
 * something that is not JSON, or does not answer within `timeoutMs`.
 */
export function askControlSocket(path: string, request: ControlRequest, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    let received = '';
    let settled = false;
    const finish = (error: ControlConnectionError | undefined, answer?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(answer);
    };
    const timer = setTimeout(
      () => finish(new ControlConnectionError('ETIMEDOUT', `no answer on ${path} within ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      received += chunk;
      const newline = received.indexOf('\n');
      if (newline < 0) {
        if (received.length > MAX_CONTROL_LINE_BYTES) finish(new ControlConnectionError('EMSGSIZE', `the answer on ${path} is too long`));
        return;
      }
      try {
        finish(undefined, JSON.parse(received.slice(0, newline)));
      } catch {
        finish(new ControlConnectionError('EPROTO', `the answer on ${path} is not JSON: is it an overseer control socket?`));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(new ControlConnectionError(error.code ?? 'EIO', `${path}: ${error.message}`)));
    socket.on('close', () => finish(new ControlConnectionError('ECONNRESET', `${path} closed the connection before answering`)));
  });
}
