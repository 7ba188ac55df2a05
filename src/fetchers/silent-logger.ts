import type { Logger } from '../logger.js';

/** The logger a fetcher uses until `init` gives it the master's: a fetcher used on its own logs nothing. */
export const silentLogger: Logger = {
  fatal() {},
  error() {},
  warn() {},
  info() {},
  debug() {},
  child: () => silentLogger,
};
