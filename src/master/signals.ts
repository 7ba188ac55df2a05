/** Signals a master passes on to its workers when a user sends them (the restart signal excepted). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR2', 'SIGWINCH'];

export interface SignalHandlers {
  restart(signal: NodeJS.Signals): void;
  shutdown(signal: NodeJS.Signals): void;
  forward(signal: NodeJS.Signals): void;
}

function masterSignals(restartSignal: NodeJS.Signals): NodeJS.Signals[] {
  return [restartSignal, 'SIGTERM', 'SIGINT', ...FORWARDED_SIGNALS.filter((signal) => signal !== restartSignal)];
}

/**
 * Installs the master's handlers. An unhandled SIGUSR2 kills Node, so `run()` calls
 * `bufferMasterSignals` first thing, and this takes over from it, replaying what arrived meanwhile.
 * Returns a function that removes the handlers again.
 */
export function installMasterSignals(restartSignal: NodeJS.Signals, handlers: SignalHandlers, buffered?: SignalBuffer): () => void {
  const route = (signal: NodeJS.Signals) => {
    if (signal === restartSignal) handlers.restart(signal);
    else if (signal === 'SIGTERM' || signal === 'SIGINT') handlers.shutdown(signal);
    else handlers.forward(signal);
  };
  const installed = masterSignals(restartSignal).map((signal) => {
    const handler = () => route(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  for (const signal of buffered?.release() ?? []) route(signal);
  return () => {
    for (const [signal, handler] of installed) process.off(signal, handler);
  };
}

/** Holds the master's signals from the first moment until its handlers are installed. */
export interface SignalBuffer {
  /** Stops buffering and hands over what arrived, in order. */
  release(): NodeJS.Signals[];
}

export function bufferMasterSignals(restartSignal: NodeJS.Signals): SignalBuffer {
  const received: NodeJS.Signals[] = [];
  const installed = masterSignals(restartSignal).map((signal) => {
    const handler = () => received.push(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return {
    release() {
      for (const [signal, handler] of installed) process.off(signal, handler);
      return received.splice(0);
    },
  };
}
