/** Signals a master passes on to its workers when a user sends them (the restart signal excepted). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR2', 'SIGWINCH'];

export interface SignalHandlers {
  restart(signal: NodeJS.Signals): void;
  shutdown(signal: NodeJS.Signals): void;
  forward(signal: NodeJS.Signals): void;
}

/**
 * Installs the master's handlers. Called before anything slow: an unhandled SIGUSR2 kills Node.
 * Returns a function that removes them again.
 */
export function installMasterSignals(restartSignal: NodeJS.Signals, handlers: SignalHandlers): () => void {
  const installed: Array<[NodeJS.Signals, () => void]> = [];
  const on = (signal: NodeJS.Signals, handler: () => void) => {
    process.on(signal, handler);
    installed.push([signal, handler]);
  };
  on(restartSignal, () => handlers.restart(restartSignal));
  on('SIGTERM', () => handlers.shutdown('SIGTERM'));
  on('SIGINT', () => handlers.shutdown('SIGINT'));
  for (const signal of FORWARDED_SIGNALS) {
    if (signal !== restartSignal) on(signal, () => handlers.forward(signal));
  }
  return () => {
    for (const [signal, handler] of installed) process.off(signal, handler);
  };
}
