import { describe, expect, it } from 'vitest';
import { ChecksumError } from '../src/errors.js';
import { checksumFor, parseChecksums } from '../src/fetchers/checksums.js';

const A = 'a'.repeat(64);
const B = '0123456789abcdef'.repeat(4);
const UPPER = 'ABCDEF0123456789'.repeat(4);

function checksumError(run: () => unknown): ChecksumError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ChecksumError);
    expect((error as ChecksumError).code).toBe('ERR_OVERSEER_CHECKSUM');
    return error as ChecksumError;
  }
  throw new Error('no ChecksumError was thrown');
}

describe('checksums', () => {
  it('reads sha256sum text and binary lines, skipping blank lines and comments, with CRLF', () => {
    const text = `# made by the release script\r\n\r\n${A}  app-linux-x64.tar.gz\r\n${B} *app-darwin-arm64.tar.gz\r\n`;
    expect(parseChecksums(text)).toEqual([
      { sha256: A, name: 'app-linux-x64.tar.gz' },
      { sha256: B, name: 'app-darwin-arm64.tar.gz' },
    ]);
    expect(checksumFor(text, 'app-linux-x64.tar.gz')).toBe(A);
    expect(checksumFor(text, 'app-darwin-arm64.tar.gz')).toBe(B);
    expect(checksumFor(text, 'app-windows-x64.zip')).toBeUndefined();
  });

  it('strips a leading ./ from listed names and from the name asked for, and lower-cases the hex', () => {
    const text = `${UPPER}  ./dist.tar.gz\n${A}  ././other.mjs\n`;
    expect(checksumFor(text, 'dist.tar.gz')).toBe(UPPER.toLowerCase());
    expect(checksumFor(text, './other.mjs')).toBe(A);
  });

  it('takes a file holding one bare hash (an <asset>.sha256) as the hash of whatever asset is asked for', () => {
    expect(checksumFor(`${B}\n`, 'app.mjs')).toBe(B);
    expect(checksumFor(`  ${UPPER}  \n\n`, 'anything')).toBe(UPPER.toLowerCase());
    expect(parseChecksums(B)).toEqual([{ sha256: B, name: undefined }]);
  });

  it('reads BSD-style lines and sha256sum-escaped names', () => {
    const text = `SHA256 (app.mjs) = ${A}\n\\${B}  dir\\\\name\\nwith-newline\n`;
    expect(checksumFor(text, 'app.mjs')).toBe(A);
    expect(checksumFor(text, 'dir\\name\nwith-newline')).toBe(B);
  });

  it('names the malformed line and says what a line should look like', () => {
    const error = checksumError(() => checksumFor(`${A}  ok.mjs\n\nthis is not a checksum\n`, 'ok.mjs', 'checksums.txt'));
    expect(error.message).toMatch(/^checksums\.txt line 3 is not a checksum line: expected "<64 hex digits>  <file name>"/);
  });

  it('refuses a hash that is not 64 hex digits, naming the line and the likely algorithm', () => {
    const sha1 = 'b'.repeat(40);
    const error = checksumError(() => parseChecksums(`${A}  a\n${sha1}  b\n`, 'SHA256SUMS'));
    expect(error.message).toMatch(/SHA256SUMS line 2 has a hash of 40 hex digits \(that is the length of a SHA-1\); a SHA-256 has 64/);
  });

  it('refuses a bare hash among named lines', () => {
    const error = checksumError(() => parseChecksums(`${A}  a.mjs\n${B}\n`));
    expect(error.message).toMatch(/line 2: a hash without a file name is only valid as the file's only entry/);
  });

  it('refuses a name listed twice with different hashes, but not the same line twice', () => {
    expect(checksumFor(`${A}  a.mjs\n${A} *a.mjs\n`, 'a.mjs')).toBe(A);
    const error = checksumError(() => checksumFor(`${A}  a.mjs\n${B}  ./a.mjs\n`, 'a.mjs'));
    expect(error.message).toMatch(/lists a\.mjs more than once with different hashes/);
  });

  it('returns nothing for an empty or comment-only file', () => {
    expect(parseChecksums('\n# nothing yet\n')).toEqual([]);
    expect(checksumFor('', 'a.mjs')).toBeUndefined();
  });
});
