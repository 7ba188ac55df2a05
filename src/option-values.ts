import { ConfigError } from './errors.js';

/** A number option: `fallback` when not given, else a finite number >= `min`, rounded. */
export function positive(name: string, value: unknown, fallback: number, min: number, unit: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new ConfigError(`${name} must be a number of ${unit} >= ${min}, got ${JSON.stringify(value)}`);
  }
  return Math.round(value);
}

/** A duration option in milliseconds. */
export function milliseconds(name: string, value: unknown, fallback: number, min = 1): number {
  return positive(name, value, fallback, min, 'milliseconds');
}
