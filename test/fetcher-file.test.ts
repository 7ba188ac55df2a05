import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { tempMarker } from './helpers/processes.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, FetchError } from '../src/errors.js';
import { FileFetcher, type FileFetcherOptions } from '../src/fetchers/file.js';
import type { Logger } from '../src/logger.js';

interface LoggedLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A Logger that keeps its lines in memory, so tests can look at them. */
function memoryLogger(lines: LoggedLine[] = []): Logger & { lines: LoggedLine[] } {
  const at =
    (level: string) =>
    (fieldsOrMsg: unknown, msg?: string): void => {
      if (typeof fieldsOrMsg === 'string') lines.push({ level, msg: fieldsOrMsg, fields: {} });
      else lines.push({ level, msg: msg ?? '', fields: (fieldsOrMsg ?? {}) as Record<string, unknown> });
    };
  const logger = {
    lines,
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: () => logger,
  };
  return logger;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', reject);
    stream.once('end', () => resolvePromise(Buffer.concat(chunks)));
  });
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function eventually(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Writes `bytes` to a temporary file beside `path` and renames it over `path`, as build tools do. */
function replaceByRename(path: string, bytes: Buffer): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, bytes);
  renameSync(temporary, path);
}

let dir: string;
let buildPath: string;
let log: ReturnType<typeof memoryLogger>;
const cleanups: Array<() => void> = [];

function makeFetcher(options: Partial<FileFetcherOptions> = {}): FileFetcher {
  const fetcher = new FileFetcher({ path: buildPath, settle: 20, ...options });
  fetcher.init({ runningId: '0'.repeat(64), binPath: '/nonexistent', log });
  return fetcher;
}

const signal = () => new AbortController().signal;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), tempMarker()));
  buildPath = join(dir, 'app.mjs');
  log = memoryLogger();
});

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('FileFetcher options', () => {
  it('resolves the path against the working directory and uses the documented defaults', () => {
    const fetcher = new FileFetcher({ path: 'build/app.mjs' });
    expect(fetcher.path).toBe(resolve(process.cwd(), 'build/app.mjs'));
    expect(fetcher.source).toBe(`file:${resolve(process.cwd(), 'build/app.mjs')}`);
    expect(fetcher.interval).toBe(1000);
    expect(fetcher.settle).toBe(300);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['an empty path', { path: '' }, /FileFetcher path must be a non-empty string, got "": pass the file/],
    ['no path', {}, /FileFetcher path must be a non-empty string/],
    ['interval 0', { path: 'a', interval: 0 }, /FileFetcher interval must be a positive number of milliseconds, got 0: pass a number > 0/],
    ['a negative interval', { path: 'a', interval: -5 }, /interval must be a positive number of milliseconds, got -5/],
    ['interval NaN', { path: 'a', interval: Number.NaN }, /interval must be a positive number/],
    ['settle 0', { path: 'a', settle: 0 }, /FileFetcher settle must be a positive number of milliseconds, got 0/],
    ['a string settle', { path: 'a', settle: '300' }, /settle must be a positive number of milliseconds, got "300"/],
    ['no options object', undefined, /FileFetcher takes an options object/],
  ];
  it.each(bad)('rejects %s with a ConfigError that names the option and the fix', (_name, options, message) => {
    const make = () => new FileFetcher(options as FileFetcherOptions);
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(message);
  });
});

describe('FileFetcher.fetch', () => {
  it('hands over the exact bytes once, then nothing until the file changes', async () => {
    const bytes = randomBytes(300_000);
    writeFileSync(buildPath, bytes);
    const fetcher = makeFetcher();

    const build = await fetcher.fetch(signal());
    expect(build).toBeDefined();
    const fetched = await readAll(build!.stream);
    expect(sha256(fetched)).toBe(sha256(bytes));
    expect(build).toMatchObject({ size: bytes.length, name: 'app.mjs', version: statSync(buildPath).mtime.toISOString() });
    expect(fetcher.source).toBe(`file:${buildPath}`);

    expect(await fetcher.fetch(signal())).toBeUndefined();
  });

  it('fetches a file renamed over the path with its new bytes', async () => {
    replaceByRename(buildPath, randomBytes(50_000));
    const fetcher = makeFetcher();
    await readAll((await fetcher.fetch(signal()))!.stream);

    const next = randomBytes(70_000);
    replaceByRename(buildPath, next);
    const build = await fetcher.fetch(signal());
    expect(build).toBeDefined();
    expect(sha256(await readAll(build!.stream))).toBe(sha256(next));
    expect(build!.size).toBe(next.length);
  });

  it('hands the same file over again when its stream was not read to the end', async () => {
    const bytes = randomBytes(10_000);
    writeFileSync(buildPath, bytes);
    const fetcher = makeFetcher();
    const abandoned = await fetcher.fetch(signal());
    expect(abandoned).toBeDefined();
    abandoned!.stream.destroy();

    const again = await fetcher.fetch(signal());
    expect(again).toBeDefined();
    expect(sha256(await readAll(again!.stream))).toBe(sha256(bytes));
  });

  it("resolves undefined while the file is missing and logs 'waiting for a build' once per absence", async () => {
    const fetcher = makeFetcher();
    const waiting = () => log.lines.filter((line) => line.msg === 'waiting for a build');

    for (let i = 0; i < 3; i++) expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(waiting()).toEqual([{ level: 'info', msg: 'waiting for a build', fields: { source: `file:${buildPath}` } }]);

    writeFileSync(buildPath, 'export {};\n');
    const build = await fetcher.fetch(signal());
    expect(build).toBeDefined();
    await readAll(build!.stream);
    unlinkSync(buildPath);
    for (let i = 0; i < 2; i++) expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(waiting()).toHaveLength(2);
  });

  it('never hands over a file that is still being written', async () => {
    const chunks = Array.from({ length: 30 }, () => randomBytes(20_000));
    const complete = Buffer.concat(chunks);
    writeFileSync(buildPath, chunks[0]!);
    let written = 1;
    const writer = setInterval(() => {
      if (written < chunks.length) appendFileSync(buildPath, chunks[written++]!);
    }, 50);
    cleanups.push(() => clearInterval(writer));
    const fetcher = makeFetcher({ settle: 300 });

    let fetchesDuringWriting = 0;
    while (written < chunks.length) {
      fetchesDuringWriting++;
      const build = await fetcher.fetch(signal());
      if (build === undefined) continue;
      // A build handed over must either be complete or have its stream refuse to end cleanly.
      const outcome = await readAll(build.stream).then(
        (bytes) => ({ bytes }),
        (error: unknown) => ({ error }),
      );
      if ('error' in outcome) {
        expect(outcome.error).toBeInstanceOf(FetchError);
        continue;
      }
      expect(outcome.bytes.length).toBe(complete.length);
      expect(sha256(outcome.bytes)).toBe(sha256(complete));
    }
    const stillBeingWrittenSeen = log.lines.some((line) => line.level === 'debug' && line.msg === 'build still being written');
    clearInterval(writer);

    expect(fetchesDuringWriting).toBeGreaterThanOrEqual(2);
    expect(stillBeingWrittenSeen).toBe(true);
    const build = await fetcher.fetch(signal());
    expect(build).toBeDefined();
    expect(sha256(await readAll(build!.stream))).toBe(sha256(complete));
  });

  const mutations: Array<[string, (path: string) => void, RegExp]> = [
    ['appended to', (path) => appendFileSync(path, randomBytes(1000)), /changed while it was being read \(it grew past/],
    // A read that lands while the file is truncated sees it shrink; one after sees it written in place.
    [
      'rewritten in place',
      (path) => writeFileSync(path, randomBytes(statSync(path).size)),
      /changed while it was being read \((it was written in place|it shrank to \d+ of \d+ bytes)\)/,
    ],
    ['renamed over', (path) => replaceByRename(path, randomBytes(1000)), /changed while it was being read \(it was replaced\)/],
  ];
  it.each(mutations)('makes the stream error when the file is %s while it is being read', async (_name, mutate, message) => {
    writeFileSync(buildPath, randomBytes(8 * 1024 * 1024));
    const fetcher = makeFetcher();
    const build = await fetcher.fetch(signal());
    expect(build).toBeDefined();
    const { stream } = build!;

    await within(new Promise((r) => stream.once('readable', r)), 5_000, 'the build stream never became readable');
    expect(stream.read()).not.toBeNull();
    mutate(buildPath);

    const error = await within(readAll(stream).then(() => undefined, (e: unknown) => e), 10_000, 'the build stream did not finish');
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).message).toMatch(message);
    expect((error as FetchError).message).toContain(buildPath);

    // The broken read is forgotten: the next fetch reads the file as it is now.
    const next = await fetcher.fetch(signal());
    expect(next).toBeDefined();
    expect(sha256(await readAll(next!.stream))).toBe(sha256(readFileSync(buildPath)));
  });

  it('throws a FetchError naming the path, EISDIR and the fix when the path is a directory', async () => {
    mkdirSync(buildPath);
    const fetcher = makeFetcher();
    const error = await fetcher.fetch(signal()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect(error).toMatchObject({ code: 'ERR_OVERSEER_FETCH', source: `file:${buildPath}` });
    expect((error as FetchError).message).toContain(buildPath);
    expect((error as FetchError).message).toMatch(/\(EISDIR\): the path option must name the build file itself/);
  });

  it('throws a FetchError naming ENOTDIR when a part of the path is a file', async () => {
    writeFileSync(join(dir, 'file'), 'x');
    const fetcher = new FileFetcher({ path: join(dir, 'file', 'app.mjs') });
    await expect(fetcher.fetch(signal())).rejects.toThrow(/\(ENOTDIR\): a part of the path is a file/);
  });

  it('stops waiting for the file to settle when the signal aborts', async () => {
    writeFileSync(buildPath, 'export {};\n');
    const fetcher = makeFetcher({ settle: 60_000 });
    const controller = new AbortController();
    const fetching = fetcher.fetch(controller.signal);
    setTimeout(() => controller.abort(), 20);
    await within(expect(fetching).rejects.toMatchObject({ name: 'AbortError' }), 5_000, 'fetch did not stop on abort');
  });
});

describe('FileFetcher.watch', () => {
  /** Resolves when an independent watch on the directory reports `name`: the kernel has delivered the event. */
  function directoryEvent(name: string): Promise<void> {
    return new Promise((resolvePromise) => {
      const control = watch(dir, (_event, filename) => {
        if (filename === name) {
          control.close();
          resolvePromise();
        }
      });
      cleanups.push(() => control.close());
    });
  }

  it('calls onChange when the file is written or renamed over, and not after unsubscribing', async () => {
    const fetcher = makeFetcher();
    let changes = 0;
    const unsubscribe = fetcher.watch(() => changes++);
    cleanups.push(unsubscribe);

    writeFileSync(buildPath, 'one');
    await eventually(() => changes > 0, 'onChange was not called after the file was written');

    const afterWrite = changes;
    replaceByRename(buildPath, Buffer.from('two'));
    await eventually(() => changes > afterWrite, 'onChange was not called after a file was renamed over the path');

    // Another file in the same directory is not the build.
    const beforeOther = changes;
    const otherSeen = directoryEvent('other.txt');
    writeFileSync(join(dir, 'other.txt'), 'x');
    await within(otherSeen, 5_000, 'the control watch did not see other.txt');
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toBe(beforeOther);

    unsubscribe();
    const afterUnsubscribe = changes;
    const buildSeen = directoryEvent('app.mjs');
    writeFileSync(buildPath, 'three');
    await within(buildSeen, 5_000, 'the control watch did not see app.mjs change');
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toBe(afterUnsubscribe);
  });

  it('returns a no-op and logs at debug when the directory cannot be watched', () => {
    const fetcher = new FileFetcher({ path: join(dir, 'missing', 'app.mjs') });
    fetcher.init({ runningId: '0'.repeat(64), binPath: '/nonexistent', log });
    const unsubscribe = fetcher.watch(() => {});
    expect(typeof unsubscribe).toBe('function');
    expect(() => unsubscribe()).not.toThrow();
    expect(log.lines).toContainEqual(
      expect.objectContaining({ level: 'debug', msg: 'cannot watch the build directory; polling only', fields: expect.objectContaining({ code: 'ENOENT' }) }),
    );
  });
});

describe('FileFetcher checksumPath', () => {
  it('sets sha256 from the checksum file, waits for it, and offers the build again when it changes', async () => {
    const bytes = randomBytes(50_000);
    const sumsPath = join(dir, 'SHA256SUMS');
    writeFileSync(buildPath, bytes);
    const fetcher = makeFetcher({ checksumPath: sumsPath });

    expect(await fetcher.fetch(signal())).toBeUndefined();
    expect(log.lines.filter((line) => line.msg === 'waiting for the checksum file')).toHaveLength(1);

    const wrong = 'e'.repeat(64);
    writeFileSync(sumsPath, `${wrong}  ./app.mjs\n${sha256(Buffer.from('x'))}  other.mjs\n`);
    const first = await fetcher.fetch(signal());
    expect(first?.sha256).toBe(wrong);
    expect((await within(readAll(first!.stream), 5_000, 'the build read')).equals(bytes)).toBe(true);
    expect(await fetcher.fetch(signal())).toBeUndefined();

    // the build tool corrects the checksum: the same build is offered again, with it
    writeFileSync(sumsPath, `${sha256(bytes)} *app.mjs\n`);
    const again = await fetcher.fetch(signal());
    expect(again?.sha256).toBe(sha256(bytes));
    await within(readAll(again!.stream), 5_000, 'the build read again');
    expect(await fetcher.fetch(signal())).toBeUndefined();
  });

  it('throws a FetchError when the checksum file does not list the build, or names a malformed line', async () => {
    writeFileSync(buildPath, 'export default 1;\n');
    const sumsPath = join(dir, 'app.mjs.sha256');
    writeFileSync(sumsPath, `${'a'.repeat(64)}  other.mjs\n`);
    const unlisted = await makeFetcher({ checksumPath: sumsPath }).fetch(signal()).catch((error: unknown) => error);
    expect(unlisted).toBeInstanceOf(FetchError);
    expect((unlisted as FetchError).message).toMatch(/checksum file .*app\.mjs\.sha256 does not list app\.mjs/);

    writeFileSync(sumsPath, `${'a'.repeat(64)}  app.mjs\nrubbish\n`);
    const malformed = await makeFetcher({ checksumPath: sumsPath }).fetch(signal()).catch((error: unknown) => error);
    expect(malformed).toBeInstanceOf(FetchError);
    expect((malformed as FetchError).message).toMatch(/line 2 is not a checksum line/);
  });
});
