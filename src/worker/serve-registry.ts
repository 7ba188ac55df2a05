import type { Server } from 'node:net';
import type { ListenerHandle } from '../config.js';
import { NoListenerError } from '../errors.js';
import { ServerDrain } from './drain.js';
import { listenOn } from './state.js';

/** The servers a program handed to `state.serve()`, each with its drain. */
export class ServeRegistry {
  private readonly drains: ServerDrain[] = [];

  constructor(private readonly listeners: readonly ListenerHandle[]) {}

  async serve(server: Server, index: number): Promise<void> {
    const listener = this.listeners[index];
    if (listener === undefined) {
      throw new NoListenerError(
        `state.serve(server, ${index}): there is no listener ${index}; ${this.listeners.length} address(es) are configured, so use an index below ${this.listeners.length} or add an address`,
      );
    }
    this.drains.push(new ServerDrain(server));
    await listenOn(server, listener);
  }

  get size(): number {
    return this.drains.length;
  }

  get openConnections(): number {
    return this.drains.reduce((sum, drain) => sum + drain.openConnections, 0);
  }

  drainAll(): Promise<void> {
    return Promise.all(this.drains.map((drain) => drain.drain())).then(() => undefined);
  }

  forceAll(): void {
    for (const drain of this.drains) drain.force();
  }
}
