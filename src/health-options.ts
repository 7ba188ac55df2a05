import { ConfigError } from './errors.js';
import { milliseconds } from './option-values.js';

/** The options of `run()` that watch workers' health (see `Config`). */
export interface HealthConfig {
  livenessInterval?: number;
  livenessTimeout?: number | false;
  maxMemory?: number | string;
  memoryCheckInterval?: number;
}

export interface HealthOptions {
  livenessInterval: number;
  /** Undefined: the liveness check is off. */
  livenessTimeout: number | undefined;
  /** Bytes; undefined: no limit. */
  maxMemory: number | undefined;
  memoryCheckInterval: number;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** A limit below this is surely a mistake (bytes taken for megabytes): no Node.js process fits in it. */
const MIN_MAX_MEMORY = 1024 ** 2;

/**
 * Parses a size: a number of bytes, or a string such as `'512MB'`, `'1.5 GiB'` or `'800k'` (units are
 * powers of 1024). Throws `ConfigError` naming `name` for anything else, or for less than 1 MiB.
 */
export function parseByteSize(name: string, value: unknown): number {
  let bytes: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) bytes = value;
  else if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
    const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
    if (match && unit !== undefined) bytes = Number(match[1]) * unit;
  }
  if (bytes === undefined) {
    throw new ConfigError(`${name} must be a number of bytes or a size such as '512MB' or '2GB', got ${JSON.stringify(value)}`);
  }
  if (bytes < MIN_MAX_MEMORY) {
    throw new ConfigError(`${name} must be at least 1MB, got ${JSON.stringify(value)}: give the size with its unit, such as '512MB'`);
  }
  return Math.round(bytes);
}

/** The liveness and memory options of `config`, checked, with their defaults. */
export function resolveHealthOptions(config: HealthConfig): HealthOptions {
  const livenessInterval = milliseconds('livenessInterval', config.livenessInterval, 1000);
  let livenessTimeout: number | undefined;
  if (config.livenessTimeout !== false) {
    if (config.livenessTimeout !== undefined && (typeof config.livenessTimeout !== 'number' || !Number.isFinite(config.livenessTimeout))) {
      throw new ConfigError(`livenessTimeout must be a number of milliseconds, or false to turn the liveness check off, got ${JSON.stringify(config.livenessTimeout)}`);
    }
    livenessTimeout = milliseconds('livenessTimeout', config.livenessTimeout, 10_000);
    if (livenessTimeout < 2 * livenessInterval) {
      throw new ConfigError(
        `livenessTimeout (${livenessTimeout} ms) must be at least twice livenessInterval (${livenessInterval} ms), or one late heartbeat would count a healthy worker as hung: raise livenessTimeout or lower livenessInterval`,
      );
    }
  }
  return {
    livenessInterval,
    livenessTimeout,
    maxMemory: config.maxMemory === undefined ? undefined : parseByteSize('maxMemory', config.maxMemory),
    memoryCheckInterval: milliseconds('memoryCheckInterval', config.memoryCheckInterval, 5000, 10),
  };
}
