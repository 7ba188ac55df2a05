import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { constants as zlibConstants, createGunzip } from 'node:zlib';
import { ReadEntry, Unpack } from 'tar';
import { ArchiveError, describeError } from '../../errors.js';
import { checkSymlinksInside, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, EntryGuard, type ExtractLimits } from './archive-rules.js';
import { checkReleaseId } from './releases.js';

export type { ExtractLimits } from './archive-rules.js';
export { activateRelease, currentRelease, pruneReleases } from './releases.js';
export { resolveEntryPoint } from './entry-point.js';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const USTAR_MAGIC = Buffer.from('ustar');
const USTAR_OFFSET = 257;
const PROBE_BYTES = USTAR_OFFSET + USTAR_MAGIC.length;
/** How much compressed input detection reads at most to find the first tar header. */
const MAX_COMPRESSED_PROBE = 1024 * 1024;
/** Headers, extended headers and padding a tar stream may carry per entry beyond the entries' sizes. */
const OVERHEAD_PER_ENTRY = 4096;
const TEMP_PREFIX = '.tmp-';

/**
 * Whether the file at `path` is a gzip-compressed tar (gzip magic `1f 8b`, then `ustar` at
 * offset 257 of the decompressed data) or a plain tar (`ustar` at offset 257), decided by
 * content, never by name. `undefined` for anything else, including a gzipped file that is not a
 * tar. A tar whose data begins with the gzip magic is not accepted either, since any reader would
 * take it for gzip.
 */
export async function detectArchive(path: string): Promise<'tar.gz' | 'tar' | undefined> {
  const head = await readHead(path, PROBE_BYTES);
  if (startsWith(head, GZIP_MAGIC)) {
    const tar = await readGunzippedHead(path, PROBE_BYTES);
    return tar !== undefined && isTarHead(tar) ? 'tar.gz' : undefined;
  }
  return isTarHead(head) ? 'tar' : undefined;
}

function isTarHead(head: Buffer): boolean {
  return head.length >= PROBE_BYTES && !startsWith(head, GZIP_MAGIC) && head.subarray(USTAR_OFFSET, PROBE_BYTES).equals(USTAR_MAGIC);
}

function startsWith(buffer: Buffer, prefix: Buffer): boolean {
  return buffer.length >= prefix.length && buffer.subarray(0, prefix.length).equals(prefix);
}

async function readHead(path: string, length: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/** The first `length` bytes of the gzip stream in `path`, or undefined when it has fewer or is not gzip. */
function readGunzippedHead(path: string, length: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const input = createReadStream(path, { end: MAX_COMPRESSED_PROBE - 1 });
    // Z_SYNC_FLUSH: the probe reads a prefix of the file, and a prefix must not count as damage.
    const gunzip = createGunzip({ finishFlush: zlibConstants.Z_SYNC_FLUSH });
    const chunks: Buffer[] = [];
    let have = 0;
    let settled = false;
    const settle = (result: Buffer | undefined) => {
      if (settled) return;
      settled = true;
      input.destroy();
      gunzip.destroy();
      resolve(result);
    };
    input.on('error', (error) => {
      if (settled) return;
      settled = true;
      gunzip.destroy();
      reject(error);
    });
    gunzip.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= length) settle(Buffer.concat(chunks).subarray(0, length));
    });
    gunzip.on('end', () => settle(undefined));
    gunzip.on('error', () => settle(undefined));
    input.pipe(gunzip);
  });
}

/**
 * Extracts the archive into `<releasesDir>/<id>/`: first into a temporary sibling directory
 * (`.tmp-<id>-*`), then renamed into place, so a failed extraction leaves nothing at `<id>`.
 * Every entry is checked as its header arrives (see the rules in `archive-rules.ts`); the first
 * breach, a limit passed, or a corrupt or truncated archive stops the extraction, removes the
 * temporary directory and rejects with an `ArchiveError` naming the entry and the rule.
 * File modes are kept (less setuid/setgid and the process umask); owners are not.
 * Resolves with the release directory, whose mtime is the time of extraction.
 */
export async function extractRelease(archivePath: string, releasesDir: string, id: string, limits: ExtractLimits = {}): Promise<string> {
  checkReleaseId(id);
  const guard = new EntryGuard(limits);
  const kind = await detectArchive(archivePath).catch((error: unknown) => {
    throw new ArchiveError(`could not read the archive "${archivePath}": ${describeError(error)}`);
  });
  if (kind === undefined) {
    throw new ArchiveError(`"${archivePath}" is not a tar or gzip-compressed tar archive (judged by its content, not its name): publish the app as a .tar.gz of its directory`);
  }
  await mkdir(releasesDir, { recursive: true });
  const releaseDir = join(releasesDir, id);
  if (await stat(releaseDir).catch(() => undefined)) {
    throw new ArchiveError(`release directory "${releaseDir}" already exists: remove it, or extract this build under another id`);
  }
  const tempDir = await mkdtemp(join(releasesDir, `${TEMP_PREFIX}${id}-`));
  try {
    await unpack(archivePath, kind, tempDir, guard, limits);
    await checkSymlinksInside(tempDir, guard.symlinksWritten);
    // mkdtemp made it private; a release is read by whoever runs the app, like any install.
    await chmod(tempDir, 0o755);
    // Pruning orders releases by this mtime; an archive's "./" entry may have set an old one.
    const now = new Date();
    await utimes(tempDir, now, now);
    await rename(tempDir, releaseDir);
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true, maxRetries: 3 });
    if (error instanceof ArchiveError) throw error;
    throw new ArchiveError(`could not extract "${archivePath}" into "${releaseDir}": ${describeError(error)}`);
  }
  return releaseDir;
}

/**
 * Streams the archive into node-tar's Unpack. The decompression is ours rather than node-tar's:
 * when a rule is broken mid-stream, ending a plain tar stream lets Unpack finish the writes it has
 * begun and report `close`, after which the directory can be removed with nothing still writing
 * into it (an aborted gzip inside node-tar never reports that).
 */
function unpack(archivePath: string, kind: 'tar.gz' | 'tar', cwd: string, guard: EntryGuard, limits: ExtractLimits): Promise<void> {
  const maxStreamBytes = (limits.maxBytes ?? DEFAULT_MAX_BYTES) + ((limits.maxEntries ?? DEFAULT_MAX_ENTRIES) + 1) * OVERHEAD_PER_ENTRY;
  return new Promise((resolve, reject) => {
    let failure: ArchiveError | undefined;
    let ended = false;
    let streamBytes = 0;
    const unpacker = new Unpack({
      cwd,
      strict: true,
      preserveOwner: false,
      // We hand it plain tar: it must not sniff for compression itself.
      zstd: false,
      brotli: false,
      filter: (_path, entry) => {
        if (failure || !(entry instanceof ReadEntry)) return false;
        try {
          guard.admit(entry);
          return true;
        } catch (error) {
          fail(error as ArchiveError);
          return false;
        }
      },
    });
    const input = createReadStream(archivePath);
    const gunzip = kind === 'tar.gz' ? createGunzip() : undefined;
    const source: Readable = gunzip ? input.pipe(gunzip) : input;

    const endUnpack = () => {
      if (ended) return;
      ended = true;
      unpacker.end();
    };
    function fail(error: ArchiveError) {
      if (failure) return;
      failure = error;
      source.pause();
      source.removeAllListeners('data');
      source.removeAllListeners('end');
      input.unpipe();
      input.destroy();
      gunzip?.destroy();
      // Not from inside Unpack's own write (where the filter runs): end it on a clean stack.
      setImmediate(endUnpack);
    }

    unpacker.on('ignoredEntry', (entry: ReadEntry) => {
      try {
        guard.checkIgnored(entry);
      } catch (error) {
        fail(error as ArchiveError);
      }
    });
    unpacker.on('error', (error: Error & { entry?: ReadEntry; tarCode?: string }) => fail(fromTarError(archivePath, error)));
    unpacker.on('abort', (error: Error) => {
      // Unreachable with plain tar input; if it ever happens, Unpack will not report close.
      fail(corrupt(archivePath, describeError(error)));
      reject(failure);
    });
    unpacker.on('close', () => (failure ? reject(failure) : resolve()));

    input.on('error', (error) => fail(new ArchiveError(`could not read "${archivePath}": ${describeError(error)}`)));
    gunzip?.on('error', (error) => fail(corrupt(archivePath, `its gzip data is damaged or ends early (${describeError(error)})`)));
    source.on('data', (chunk: Buffer) => {
      if (failure) return;
      streamBytes += chunk.length;
      if (streamBytes > maxStreamBytes) {
        fail(new ArchiveError(`"${archivePath}" unpacks to a tar stream of more than ${maxStreamBytes} bytes, more than its entries and headers can account for within the limits (maxBytes, maxEntries): refused as a decompression bomb`));
        return;
      }
      if (!unpacker.write(chunk)) {
        source.pause();
        unpacker.once('drain', () => source.resume());
      }
    });
    source.on('end', endUnpack);
  });
}

function corrupt(archivePath: string, detail: string): ArchiveError {
  return new ArchiveError(`archive "${archivePath}" is corrupt or truncated: ${detail}; fetch it again or rebuild it`);
}

/** node-tar in strict mode reports every problem as an error; name the entry when it knows it. */
function fromTarError(archivePath: string, error: Error & { entry?: ReadEntry; tarCode?: string }): ArchiveError {
  if (error.tarCode === 'TAR_BAD_ARCHIVE' || error.tarCode === 'TAR_ENTRY_INVALID' || error.tarCode === 'TAR_ABORT') {
    return corrupt(archivePath, error.message);
  }
  const entryPath = error.entry?.path;
  if (entryPath !== undefined) {
    return new ArchiveError(`archive entry "${entryPath}" could not be extracted: ${error.message}`, entryPath);
  }
  return new ArchiveError(`could not extract "${archivePath}": ${error.message}`);
}
