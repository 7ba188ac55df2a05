import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BuildRejectedError } from '../../errors.js';
import { ENV, SANITY_PREFIX } from '../../protocol.js';
import type { BuildKind } from './build-kind.js';


/** How much of the candidate's output is kept to explain a failure. */
const OUTPUT_KEPT = 4096;

export interface SanityCheckOptions {
  kind: BuildKind;
  execPath: string;
  execArgv: readonly string[];
  args: readonly string[];
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the candidate (the master is shutting down). */
  signal?: AbortSignal;
}

/**
 * The part of a failed build's output a person needs: Node's error line (`SyntaxError: ...`) with
 * the place it points at, else the end of the output.
 */
export function summarizeOutput(text: string): string {
  const lines = text.split('\n').map((line) => line.trim());
  const error = lines.findIndex((line) => /^([A-Z]\w*)?Error\b.*:/.test(line) || /^Error \[\w+\]/.test(line));
  if (error >= 0) {
    const where = lines.slice(0, error).find((line) => /^(file:\/\/|\/|node:).+:\d+$/.test(line));
    return where ? `${lines[error]} (at ${where})` : lines[error]!;
  }
  const trimmed = text.trim();
  return trimmed.length > 400 ? `…${trimmed.slice(-400)}` : trimmed;
}

/**
 * Starts the candidate build the way a worker would be started, but in sanity-check mode: `run()`
 * validates its options, prints a token and exits without binding anything. A build that does not
 * load (a syntax error, a missing import), throws before `run()`, never calls `run()`, or hangs is
 * rejected with its own output as the reason. Output around the token is tolerated.
 */
export function sanityCheck(path: string, options: SanityCheckOptions): Promise<void> {
  const token = randomBytes(16).toString('hex');
  const command = options.kind === 'native' ? path : options.execPath;
  const args = options.kind === 'native' ? [...options.args] : [...options.execArgv, path, ...options.args];
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), [ENV.sanity]: token };
  for (const name of [ENV.worker, ENV.listenFds, ENV.listenFdNames, ENV.listenPid]) delete env[name];
  return new Promise((resolve, reject) => {
    // Its own process group, so that whatever it started dies with it on a timeout.
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const keep = (text: string, chunk: string) => (text + chunk).slice(-OUTPUT_KEPT);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout = keep(stdout, chunk)));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = keep(stderr, chunk)));
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new BuildRejectedError(`sanity check failed: ${reason}`));
    };
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      fail(`the build did not finish its sanity check within ${options.timeoutMs} ms (does it block before calling run()?)`);
    }, options.timeoutMs);
    const onAbort = () => {
      killGroup();
      fail('the master is shutting down');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('exit', () => options.signal?.removeEventListener('abort', onAbort));
    child.once('error', (error) => fail(`cannot start the build: ${error.message}${options.kind === 'native' ? ' (is it executable on this platform?)' : ''}`));
    child.once('close', (code, signal) => {
      if (settled) return;
      const output = summarizeOutput(stderr) || summarizeOutput(stdout);
      if (!stdout.includes(`${SANITY_PREFIX}${token}`)) {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        fail(
          code === 0 && !signal
            ? `the build is not an overseer program: it exited without calling run()${output ? `; its output: ${output}` : ''}`
            : `the build ${how} before calling run()${output ? `: ${output}` : ''}`,
        );
        return;
      }
      if (code !== 0) {
        fail(`the build printed its token but exited with code ${code ?? signal}${output ? `: ${output}` : ''}`);
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve();
    });
  });
}
