import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

/** One entry of a hand-made tar: anything a hostile archive may hold, which `tar.c` would never write. */
export interface CraftedEntry {
  name: string;
  /** Typeflag: '0' file (default), '1' hard link, '2' symlink, '3' char device, '4' block device, '5' dir, '6' FIFO, or any other byte. */
  type?: string;
  body?: string | Buffer;
  /** Size written in the header, when it must differ from the body's (a lie, or a huge declared size). */
  declaredSize?: number;
  linkname?: string;
  mode?: number;
  badChecksum?: boolean;
}

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`"${value}" does not fit a ${length}-byte tar field`);
  bytes.copy(block, offset);
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  writeString(block, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

/** A ustar header block, laid out by POSIX (name 0, mode 100, size 124, checksum 148, type 156, magic 257). */
export function tarHeader(entry: CraftedEntry, bodyLength: number): Buffer {
  const block = Buffer.alloc(512);
  const type = entry.type ?? '0';
  writeString(block, 0, 100, entry.name);
  writeOctal(block, 100, 8, entry.mode ?? (type === '5' ? 0o755 : 0o644));
  writeOctal(block, 108, 8, 1000);
  writeOctal(block, 116, 8, 1000);
  writeOctal(block, 124, 12, entry.declaredSize ?? bodyLength);
  writeOctal(block, 136, 12, Math.floor(Date.now() / 1000));
  writeString(block, 156, 1, type);
  writeString(block, 157, 100, entry.linkname ?? '');
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (entry.badChecksum) sum += 1;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** The bytes of a tar holding `entries`, ended by the two zero blocks. */
export function craftTar(entries: CraftedEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    parts.push(tarHeader(entry, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Writes a crafted tar to `path`, gzipped when asked. */
export function writeCraftedTar(path: string, entries: CraftedEntry[], options: { gzip?: boolean } = {}): string {
  const tar = craftTar(entries);
  writeFileSync(path, options.gzip ? gzipSync(tar) : tar);
  return path;
}
