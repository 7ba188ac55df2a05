import { ChecksumError } from '../errors.js';

/** One line of a checksum file: a SHA-256 and the file it is for (undefined for a bare hash). */
export interface ChecksumEntry {
  /** 64 hex digits, lower case. */
  sha256: string;
  /** The file name as listed, without a leading `./`; undefined when the file is a bare hash. */
  name: string | undefined;
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
/**
 * `sha256sum` output: the hash, a space, then a space (text mode) or `*` (binary mode), then the
 * name. A single space, as some scripts write, is accepted too.
 */
const GNU_LINE = /^(\\?)([0-9a-fA-F]+)(?: [ *]| )(.+)$/;
/** `sha256sum --tag` / `shasum -a 256 --tag` output: `SHA256 (name) = hash`. */
const BSD_LINE = /^SHA256 \((.+)\) = ([0-9a-fA-F]+)$/;

/**
 * Parses the checksum files release tools publish: `sha256sum` lines (`<hex>  <name>` or
 * `<hex> *<name>`, names escaped with a leading backslash as `sha256sum` does), BSD-style
 * `SHA256 (<name>) = <hex>` lines, or a file holding nothing but one bare hash (an
 * `<asset>.sha256`). Blank lines and `#` comments are skipped. Throws a {@link ChecksumError}
 * naming the line when one cannot be read.
 *
 * @param file how the file is named in error messages, e.g. `checksums.txt`
 */
export function parseChecksums(text: string, file = 'the checksum file'): ChecksumEntry[] {
  const entries: ChecksumEntry[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let bareLine: number | undefined;
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const lineNumber = index + 1;
    const entry = parseLine(raw.replace(/\s+$/, '').replace(/^\s+(?=[0-9a-fA-F])/, ''), file, lineNumber);
    if (entry.name === undefined) bareLine ??= lineNumber;
    entries.push(entry);
  }
  if (bareLine !== undefined && entries.length > 1) {
    throw new ChecksumError(
      `${file} line ${bareLine}: a hash without a file name is only valid as the file's only entry (an <asset>.sha256 file); ` +
        'write "<hash>  <name>" on every line',
    );
  }
  return entries;
}

/**
 * The SHA-256 (lower-case hex) that a checksum file gives for `assetName`, or undefined when it
 * does not list it. A file holding one bare hash is taken to be for `assetName`. A file listing
 * the name twice with different hashes is a {@link ChecksumError}.
 */
export function checksumFor(text: string, assetName: string, file = 'the checksum file'): string | undefined {
  const entries = parseChecksums(text, file);
  const [only] = entries;
  if (entries.length === 1 && only?.name === undefined) return only?.sha256;
  const wanted = stripDotSlash(assetName);
  const found = new Set(entries.filter((entry) => entry.name === wanted).map((entry) => entry.sha256));
  if (found.size > 1) {
    throw new ChecksumError(`${file} lists ${wanted} more than once with different hashes (${[...found].join(', ')}); publish one hash per file`);
  }
  return found.values().next().value;
}

function parseLine(line: string, file: string, lineNumber: number): ChecksumEntry {
  const bsd = BSD_LINE.exec(line);
  if (bsd) return { sha256: checkedHash(bsd[2] ?? '', file, lineNumber), name: stripDotSlash(bsd[1] ?? '') };
  if (/^[0-9a-fA-F]+$/.test(line)) return { sha256: checkedHash(line, file, lineNumber), name: undefined };
  const gnu = GNU_LINE.exec(line);
  if (!gnu) {
    throw new ChecksumError(
      `${file} line ${lineNumber} is not a checksum line: expected "<64 hex digits>  <file name>" (as sha256sum writes) or "<64 hex digits> *<file name>"`,
    );
  }
  const escaped = gnu[1] === '\\';
  const name = escaped ? unescapeName(gnu[3] ?? '', file, lineNumber) : (gnu[3] ?? '');
  return { sha256: checkedHash(gnu[2] ?? '', file, lineNumber), name: stripDotSlash(name) };
}

function checkedHash(hex: string, file: string, lineNumber: number): string {
  if (SHA256_HEX.test(hex)) return hex.toLowerCase();
  const hint = hex.length === 40 ? ' (that is the length of a SHA-1)' : hex.length === 128 ? ' (that is the length of a SHA-512)' : '';
  throw new ChecksumError(
    `${file} line ${lineNumber} has a hash of ${hex.length} hex digits${hint}; a SHA-256 has 64: publish the output of sha256sum`,
  );
}

/** Undoes `sha256sum`'s escaping of names holding a backslash or a newline. */
function unescapeName(name: string, file: string, lineNumber: number): string {
  return name.replace(/\\(.?)/g, (_match, next: string) => {
    if (next === '\\') return '\\';
    if (next === 'n') return '\n';
    if (next === 'r') return '\r';
    throw new ChecksumError(`${file} line ${lineNumber} has an unknown escape "\\${next}" in its file name`);
  });
}

function stripDotSlash(name: string): string {
  let result = name;
  while (result.startsWith('./')) result = result.slice(2);
  return result;
}
