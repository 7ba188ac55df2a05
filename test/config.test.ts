import { describe, expect, it } from 'vitest';
import { parseByteSize, resolveConfig, type Config } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { CrashBackoff } from '../src/master/backoff.js';

const program = () => {};

describe('resolveConfig', () => {
  it('fills in the documented defaults', () => {
    expect(resolveConfig({ program })).toMatchObject({
      addresses: [],
      restartSignal: 'SIGUSR2',
      terminateTimeout: 30_000,
      readyTimeout: 30_000,
      workers: 1,
      warmStart: true,
      required: false,
      noRestart: false,
      maxDrainingGenerations: 3,
      livenessInterval: 1000,
      livenessTimeout: 10_000,
      maxMemory: undefined,
      memoryCheckInterval: 5000,
    });
    expect(resolveConfig({ program, livenessTimeout: false }).livenessTimeout).toBeUndefined();
    expect(resolveConfig({ program, maxMemory: '512MB' }).maxMemory).toBe(512 * 1024 ** 2);
    expect(resolveConfig({ program, address: 3000 }).addresses).toEqual([':3000']);
    expect(resolveConfig({ program, workers: 'auto' }).workers).toBeGreaterThanOrEqual(1);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['no program', { address: ':3000' }, /program is required: run\(\{ program: async \(state\)/],
    ['both address and addresses', { program, address: ':1', addresses: [':2'] }, /either address or addresses, not both/],
    ['workers 0', { program, workers: 0 }, /workers must be a whole number >= 1 or 'auto', got 0/],
    ['workers 1.5', { program, workers: 1.5 }, /workers must be a whole number/],
    ['negative terminateTimeout', { program, terminateTimeout: -5 }, /terminateTimeout must be a number of milliseconds >= 1, got -5/],
    ['string readyTimeout', { program, readyTimeout: '5s' }, /readyTimeout must be a number of milliseconds/],
    ['SIGTERM as restart signal', { program, restartSignal: 'SIGTERM' }, /SIGTERM and SIGINT stop the master/],
    ['SIGUSR1 as restart signal', { program, restartSignal: 'SIGUSR1' }, /SIGUSR1 belongs to the Node.js debugger/],
    ['a logger without info()', { program, logger: {} }, /logger must be a pino-compatible logger/],
    ['addresses not an array', { program, addresses: ':3000' }, /addresses must be an array/],
    ['livenessTimeout true', { program, livenessTimeout: true }, /livenessTimeout must be a number of milliseconds, or false to turn the liveness check off, got true/],
    ['livenessTimeout 0', { program, livenessTimeout: 0 }, /livenessTimeout must be a number of milliseconds >= 1, got 0/],
    ['livenessTimeout under twice livenessInterval', { program, livenessInterval: 1000, livenessTimeout: 1500 }, /livenessTimeout \(1500 ms\) must be at least twice livenessInterval \(1000 ms\).*raise livenessTimeout or lower livenessInterval/],
    ['livenessInterval 0', { program, livenessInterval: 0 }, /livenessInterval must be a number of milliseconds >= 1, got 0/],
    ['maxMemory with an unknown unit', { program, maxMemory: '512 MBs' }, /maxMemory must be a number of bytes or a size such as '512MB' or '2GB', got "512 MBs"/],
    ['maxMemory as bytes taken for megabytes', { program, maxMemory: 512 }, /maxMemory must be at least 1MB, got 512: give the size with its unit, such as '512MB'/],
    ['maxMemory negative', { program, maxMemory: '-5MB' }, /maxMemory must be a number of bytes or a size/],
    ['warmStart as a string', { program, warmStart: 'no' }, /warmStart must be true or false, got "no"/],
    ['memoryCheckInterval 1', { program, memoryCheckInterval: 1 }, /memoryCheckInterval must be a number of milliseconds >= 10, got 1/],
  ];
  it.each(bad)('rejects %s with a ConfigError that names the option', (_name, config, message) => {
    expect(() => resolveConfig(config as Config)).toThrow(ConfigError);
    expect(() => resolveConfig(config as Config)).toThrow(message);
    try {
      resolveConfig(config as Config);
    } catch (error) {
      expect((error as ConfigError).code).toBe('ERR_OVERSEER_CONFIG');
    }
  });
});

describe('parseByteSize', () => {
  it('reads bytes and sizes with units in powers of 1024, case and spaces aside', () => {
    expect(parseByteSize('maxMemory', 2 * 1024 ** 2)).toBe(2 * 1024 ** 2);
    expect(parseByteSize('maxMemory', '512MB')).toBe(512 * 1024 ** 2);
    expect(parseByteSize('maxMemory', '512 MiB')).toBe(512 * 1024 ** 2);
    expect(parseByteSize('maxMemory', '1.5gb')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('maxMemory', '2048k')).toBe(2 * 1024 ** 2);
    expect(parseByteSize('maxMemory', '1048576')).toBe(1024 ** 2);
  });
});

describe('CrashBackoff', () => {
  it('replaces a first crash at once, then waits 1.5x longer each time up to the cap', () => {
    const backoff = new CrashBackoff(100, 1_000, 10_000);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(() => backoff.next(50))).toEqual([0, 150, 225, 338, 506, 759, 1_000, 1_000]);
  });

  it('starts afresh after a worker ran stably', () => {
    const backoff = new CrashBackoff(100, 30_000, 10_000);
    backoff.next(50);
    backoff.next(50);
    expect(backoff.next(50)).toBe(225);
    expect(backoff.next(10_000)).toBe(0);
    expect(backoff.next(50)).toBe(150);
  });
});
