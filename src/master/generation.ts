import type { BuildKind } from './upgrade/build-kind.js';
import type { WorkerProcess } from './worker-process.js';

/** A build as the master starts it: its id (hex SHA-256) and how to run it. */
export interface Build {
  buildId: string;
  kind: BuildKind;
}

/** The workers started together by one start or restart. */
export class Generation {
  readonly workers = new Set<WorkerProcess>();

  constructor(
    readonly number: number,
    readonly build: Build,
  ) {}

  get buildId(): string {
    return this.build.buildId;
  }

  get size(): number {
    return this.workers.size;
  }
}

export type RestartOutcome =
  | { ok: true; generation: number; buildId: string; durationMs: number }
  | { ok: false; generation: number | undefined; reason: string };

/**
 * Waits until every worker of a new generation is ready (or only the workers `only` names: the
 * replacements of single workers). Fails as soon as one exits first, when `timeoutMs` passes, or
 * when `cancel` aborts, with a reason a person can act on.
 */
export function awaitGenerationReady(
  generation: Generation,
  timeoutMs: number,
  cancel: AbortSignal,
  only?: readonly WorkerProcess[],
): Promise<{ ok: true } | { ok: false; reason: string }> {
  return new Promise((resolve) => {
    const workers = only ? [...only] : [...generation.workers];
    const what = only ? `replacement worker ${workers.map((worker) => worker.pid).join(', ')} of generation ${generation.number}` : `new generation ${generation.number}`;
    let pending = workers.filter((worker) => worker.phase !== 'ready').length;
    const cleanups: Array<() => void> = [];
    const finish = (result: { ok: true } | { ok: false; reason: string }) => {
      for (const cleanup of cleanups) cleanup();
      resolve(result);
    };
    if (pending === 0) return finish({ ok: true });
    const timer = setTimeout(
      () => finish({ ok: false, reason: `${what} was not ready within readyTimeout (${timeoutMs} ms)` }),
      timeoutMs,
    );
    cleanups.push(() => clearTimeout(timer));
    const onAbort = () => finish({ ok: false, reason: 'the master is shutting down' });
    cancel.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => cancel.removeEventListener('abort', onAbort));
    for (const worker of workers) {
      const onReady = () => {
        pending -= 1;
        if (pending === 0) finish({ ok: true });
      };
      const onExit = () => {
        finish({ ok: false, reason: `new worker ${worker.pid} of generation ${generation.number} ${worker.describeExit()} before it was ready` });
      };
      worker.once('ready', onReady);
      worker.once('exit', onExit);
      cleanups.push(() => {
        worker.off('ready', onReady);
        worker.off('exit', onExit);
      });
    }
  });
}

/**
 * Whether every worker of a draining `generation` said, within `waitMs`, that it accepts no more
 * connections (or exited). Plain commands cannot say it and are not waited for.
 */
export async function awaitStoppedAccepting(generation: Generation, waitMs: number): Promise<boolean> {
  const confirmations = [...generation.workers].filter((worker) => worker.stopSignal === undefined).map((worker) => worker.stoppedAccepting);
  let timer: NodeJS.Timeout | undefined;
  const confirmed = await Promise.race([
    Promise.all(confirmations).then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), waitMs))),
  ]);
  clearTimeout(timer);
  return confirmed;
}
