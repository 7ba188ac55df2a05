/**
 * What `overseer run` was asked to do, checked before anything binds or starts: each value is
 * parsed here, and every problem becomes a `UsageError` that says how to write it instead.
 */
import { accessSync, constants as fsConstants, openSync, readSync, closeSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, delimiter, join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseByteSize } from '../health-options.js';
import { buildKindOf } from '../master/upgrade/build-kind.js';

/** Readiness for programs that cannot send `process.send('ready')`: counted ready after this long up. */
export const DEFAULT_READY_DELAY_MS = 2000;

/** commander value parser: milliseconds, a whole number >= 1. */
export function parseMilliseconds(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidArgumentError(`expected a whole number of milliseconds >= 1, such as 5000`);
  }
  return number;
}

/** commander value parser: a size in bytes, or with a unit (`512MB`, `2GB`: powers of 1024). */
export function parseSize(value: string): number {
  try {
    return parseByteSize('the size', /^\d+$/.test(value.trim()) ? Number(value) : value);
  } catch {
    throw new InvalidArgumentError(`expected a size of at least 1MB such as 512MB or 2GB (KB, MB and GB are powers of 1024), or a number of bytes`);
  }
}

/** commander value parser: a worker count or 'auto'. */
export function parseWorkers(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidArgumentError(`expected a whole number >= 1 or 'auto', such as 2`);
  }
  return number;
}

/** commander value parser: a signal name this platform knows, `TERM` or `SIGTERM`. */
export function parseSignal(value: string): NodeJS.Signals {
  const name = (value.toUpperCase().startsWith('SIG') ? value.toUpperCase() : `SIG${value.toUpperCase()}`) as NodeJS.Signals;
  if (!(name in osConstants.signals)) {
    throw new InvalidArgumentError(`expected a signal name such as SIGTERM, SIGINT or SIGQUIT (see kill -l)`);
  }
  return name;
}

/** commander value collector for repeatable options. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Where `name` runs from: a path as written (with a '/'), else the first executable of that name on PATH. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): { path: string } | { problem: 'missing' | 'not-executable' } {
  const isRunnable = (path: string) => {
    try {
      if (!statSync(path).isFile()) return false;
      accessSync(path, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) {
    const path = resolve(name);
    if (isRunnable(path)) return { path };
    try {
      statSync(path);
      return { problem: 'not-executable' };
    } catch {
      return { problem: 'missing' };
    }
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, name);
    if (isRunnable(path)) return { path };
  }
  return { problem: 'missing' };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The file an upgrade replaces, when `--bin` is not given: the first argument after the program
 * that names an existing file (`node server.mjs` → server.mjs), else the program itself when it is
 * given by path (`./server`). `fromPath` when only a PATH lookup found it (`python3 ...`): good for
 * the build id, never to be overwritten by an upgrade.
 */
export function defaultBin(argv: readonly string[], program: string): { path: string; fromPath: boolean } {
  for (const word of argv.slice(1)) {
    if (!word.startsWith('-') && isFile(resolve(word))) return { path: resolve(word), fromPath: false };
  }
  const first = argv[0] ?? '';
  return { path: program, fromPath: !first.includes('/') };
}

function readHead(path: string): Buffer {
  const head = Buffer.alloc(256);
  const fd = openSync(path, 'r');
  try {
    return head.subarray(0, readSync(fd, head, 0, head.length, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the program is node itself or a script for node (`#!/usr/bin/env node`): such a program
 * has `process.send` and can say when it is ready.
 */
export function isNodeProgram(program: string): boolean {
  if (/^(node|nodejs)(\d+)?$/.test(basename(program))) return true;
  try {
    const head = readHead(program);
    return head[0] === 0x23 && head[1] === 0x21 && buildKindOf(head) === 'script';
  } catch {
    return false;
  }
}
