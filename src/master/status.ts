import type { RestartOutcome } from './generation.js';
import type { BuildStatus } from './upgrade/status.js';
import type { WorkerPhase } from './worker-process.js';

export interface WorkerStatus {
  pid: number | undefined;
  generation: number;
  /** Which of its generation's workers this is; a crashed worker's replacement takes its slot. */
  slot: number;
  phase: WorkerPhase;
  uptimeMs: number;
  /** Workers that crashed in this slot before this one. */
  restarts: number;
}

export interface GenerationStatus {
  number: number;
  buildId: string;
  /** `current` serves; `starting` is on its way to replace it; `draining` finishes its requests and exits. */
  state: 'current' | 'starting' | 'draining';
  workers: WorkerStatus[];
}

/** A master's state as `overseer status` reports it. */
export interface MasterStatus {
  pid: number;
  startedAt: string;
  uptimeMs: number;
  /** Addresses as bound, with the ports the OS chose. */
  addresses: string[];
  binPath: string;
  generations: GenerationStatus[];
  /** How the last restart ended, and when. */
  lastRestart: (RestartOutcome & { at: string; reason: string }) | undefined;
  /** Warm spares booted and waiting to become the next workers (see the `warmStart` option). */
  spares: number;
  build: BuildStatus;
}
