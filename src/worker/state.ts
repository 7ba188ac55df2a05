import type { Server } from 'node:net';
import type { ListenerHandle, State } from '../config.js';
import { NoListenerError } from '../errors.js';

/** Where a worker's listeners and identity come from: the master's environment, or in-process. */
export interface WorkerSetup {
  enabled: boolean;
  id: string;
  binPath: string;
  generation: number;
  listeners: ListenerHandle[];
  addresses: string[];
  terminateTimeout: number;
}

export interface StateInit extends Omit<WorkerSetup, 'terminateTimeout'> {
  gracefulShutdown: AbortSignal;
  serve: (server: Server, index: number) => Promise<void>;
  ready: () => void;
}

function noListener(): never {
  throw new NoListenerError('no address is configured, so there is no listener: pass address (or addresses) to run()');
}

/** Builds the `state` a program receives. */
export function createState(init: StateInit): State {
  const startedAt = new Date();
  return Object.freeze({
    enabled: init.enabled,
    id: init.id,
    startedAt,
    get listener(): ListenerHandle {
      return init.listeners[0] ?? noListener();
    },
    listeners: Object.freeze([...init.listeners]),
    address: init.addresses[0] ?? '',
    addresses: Object.freeze([...init.addresses]),
    gracefulShutdown: init.gracefulShutdown,
    binPath: init.binPath,
    generation: init.generation,
    serve: (server: Server, index = 0) => init.serve(server, index),
    ready: () => init.ready(),
  });
}

/** Listens on `listener` and resolves once listening; rejects with the listen error. */
export function listenOn(server: Server, listener: ListenerHandle): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(listener);
  });
}
