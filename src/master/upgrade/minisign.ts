/**
 * minisign-compatible Ed25519 signatures (https://jedisct1.github.io/minisign/), with node:crypto
 * only: parse public keys and .minisig files, verify a file, sign one, make key pairs.
 *
 * Public key: base64 of "Ed" | key id (8) | Ed25519 public key (32).
 * Signature file, four lines: "untrusted comment: ...", base64 of algorithm ("Ed" legacy: the
 * signature covers the file; "ED" prehashed: it covers the file's BLAKE2b-512) | key id (8) |
 * signature (64), "trusted comment: ...", base64 of the global signature over
 * signature (64) + the trusted comment's bytes.
 */
import * as crypto from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SignatureError, describeError } from '../../errors.js';
import {
  KEY_ID_BYTES,
  PREHASHED_SIGNATURE_ALGORITHM,
  PUBLIC_KEY_BYTES,
  SIGNATURE_ALGORITHM,
  UNTRUSTED_COMMENT_PREFIX,
  assertOneLineComment,
  decodeBase64Exactly,
  decodeSecretKey,
  ed25519PublicKeyFromBytes,
  formatKeyId,
  textLines,
} from './minisign-secret-key.js';

export { generateKeyPair } from './minisign-secret-key.js';

const TRUSTED_COMMENT_PREFIX = 'trusted comment: ';
const ED25519_SIGNATURE_BYTES = 64;
const SIGNATURE_LINE_BYTES = 2 + KEY_ID_BYTES + ED25519_SIGNATURE_BYTES;
const PUBLIC_KEY_LINE_BYTES = 2 + KEY_ID_BYTES + PUBLIC_KEY_BYTES;
/** Same limit as minisign: a legacy signature needs the whole file in memory. */
const MAX_LEGACY_FILE_BYTES = 1024 ** 3;
/** Comment lengths that still fit minisign's line buffers (1024 and 8192 bytes per line). */
const MAX_UNTRUSTED_COMMENT_BYTES = 1000;
const MAX_TRUSTED_COMMENT_BYTES = 8000;
const DEFAULT_UNTRUSTED_SIGNATURE_COMMENT = 'signature from overseer secret key';

/** A minisign public key. */
export interface MinisignPublicKey {
  /**
   * The key id as minisign prints it: the 8 id bytes as a little-endian number in upper-case hex,
   * always 16 digits here (minisign 0.11 drops leading zeros, so it may show one digit fewer).
   */
  keyId: string;
  publicKey: crypto.KeyObject;
}

/** The parts of a .minisig file. */
export interface MinisignSignature {
  /** `Ed`: the signature covers the file itself; `ED`: it covers the file's BLAKE2b-512. */
  algorithm: 'Ed' | 'ED';
  /** Id of the key that made the signature, as minisign prints it. */
  keyId: string;
  signature: Buffer;
  /** Signed along with the signature: it cannot be changed without the secret key. */
  trustedComment: string;
  /** Signature over `signature` followed by the trusted comment. */
  globalSignature: Buffer;
  /** Not signed: anyone can change it. */
  untrustedComment: string;
}

function notAPublicKey(detail: string): SignatureError {
  return new SignatureError(
    `Not a minisign public key: ${detail}. Give the base64 line of a minisign .pub file ` +
      '(56 characters starting with "RW", as printed by `minisign -G` or `overseer keygen`), or the whole .pub file.',
  );
}

/** Parses a public key: the bare base64 key line, or the text of a .pub file (comment line + key line). */
export function parsePublicKey(text: string): MinisignPublicKey {
  const lines = textLines(text)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const keyLines = lines.filter((line) => !line.startsWith('untrusted comment:'));
  if (keyLines.length !== 1 || lines.length > 2) {
    throw notAPublicKey(lines.length === 0 ? 'the text is empty' : 'expected one key line, after an optional "untrusted comment:" line');
  }
  const keyLine = keyLines[0] as string;
  const bytes = decodeBase64Exactly(keyLine, PUBLIC_KEY_LINE_BYTES);
  if (bytes === undefined) {
    if (decodeBase64Exactly(keyLine, 158) !== undefined) {
      throw new SignatureError(
        'This is a minisign secret key, not a public key: configure the .pub file (or its base64 line) instead, ' +
          'and keep the secret key off the servers.',
      );
    }
    throw notAPublicKey(`the key line is not base64 of ${PUBLIC_KEY_LINE_BYTES} bytes`);
  }
  const algorithm = bytes.toString('latin1', 0, 2);
  if (algorithm !== SIGNATURE_ALGORITHM) {
    throw new SignatureError(`Unsupported minisign public key algorithm ${JSON.stringify(algorithm)}: only Ed25519 ("Ed") keys are supported.`);
  }
  try {
    return {
      keyId: formatKeyId(bytes.subarray(2, 2 + KEY_ID_BYTES)),
      publicKey: ed25519PublicKeyFromBytes(bytes.subarray(2 + KEY_ID_BYTES)),
    };
  } catch (error) {
    throw notAPublicKey(`its Ed25519 key is invalid (${describeError(error)})`);
  }
}

/** Loads a public key from `keyOrPath`: a base64 key line, or the path of a .pub file. */
export async function loadPublicKey(keyOrPath: string): Promise<MinisignPublicKey> {
  if (/^RW[A-Za-z0-9+/]{54}$/.test(keyOrPath.trim())) return parsePublicKey(keyOrPath);
  let text: string;
  try {
    text = await readFile(keyOrPath, 'utf8');
  } catch (error) {
    throw new SignatureError(
      `The public key ${JSON.stringify(keyOrPath)} is neither a minisign key line (starting "RW") nor a readable ` +
        `.pub file (${describeError(error)}): give the key's base64 line or the path of its .pub file.`,
      { cause: error },
    );
  }
  return parsePublicKey(text);
}

function notASignature(detail: string): SignatureError {
  return new SignatureError(
    `Not a minisign signature: ${detail}. Expected the four lines of a .minisig file as written by \`minisign -S\` ` +
      'or `overseer sign`: "untrusted comment: ...", a base64 line, "trusted comment: ...", a base64 line.',
  );
}

/** Parses the text of a .minisig file. */
export function parseSignature(text: string): MinisignSignature {
  if (text.trim() === '') {
    throw new SignatureError(
      'No minisign signature was given: the build must come with its .minisig file, signed by the configured public key ' +
        '(sign it with `overseer sign` or `minisign -S`).',
    );
  }
  const lines = textLines(text);
  if (lines.length !== 4) throw notASignature(`it has ${lines.length} lines`);
  const [untrustedLine, signatureLine, trustedLine, globalSignatureLine] = lines as [string, string, string, string];
  if (!untrustedLine.startsWith(UNTRUSTED_COMMENT_PREFIX)) throw notASignature('line 1 does not start with "untrusted comment: "');
  if (!trustedLine.startsWith(TRUSTED_COMMENT_PREFIX)) throw notASignature('line 3 does not start with "trusted comment: "');
  const signatureBytes = decodeBase64Exactly(signatureLine.trim(), SIGNATURE_LINE_BYTES);
  if (signatureBytes === undefined) throw notASignature(`line 2 is not base64 of ${SIGNATURE_LINE_BYTES} bytes`);
  const globalSignature = decodeBase64Exactly(globalSignatureLine.trim(), ED25519_SIGNATURE_BYTES);
  if (globalSignature === undefined) throw notASignature(`line 4 is not base64 of ${ED25519_SIGNATURE_BYTES} bytes`);
  const algorithm = signatureBytes.toString('latin1', 0, 2);
  if (algorithm !== SIGNATURE_ALGORITHM && algorithm !== PREHASHED_SIGNATURE_ALGORITHM) {
    throw new SignatureError(
      `Unsupported minisign signature algorithm ${JSON.stringify(algorithm)}: only Ed25519 signatures ` +
        '("ED" prehashed, the default of `minisign -S`, or "Ed" legacy) are supported; re-sign the build with `minisign -S`.',
    );
  }
  return {
    algorithm,
    keyId: formatKeyId(signatureBytes.subarray(2, 2 + KEY_ID_BYTES)),
    signature: Buffer.from(signatureBytes.subarray(2 + KEY_ID_BYTES)),
    trustedComment: trustedLine.slice(TRUSTED_COMMENT_PREFIX.length),
    globalSignature,
    untrustedComment: untrustedLine.slice(UNTRUSTED_COMMENT_PREFIX.length),
  };
}

async function blake2b512OfFile(path: string): Promise<Buffer> {
  const hash = crypto.createHash('blake2b512');
  await pipeline(createReadStream(path), hash);
  return hash.digest();
}

async function legacySignedBytes(path: string): Promise<Buffer> {
  const { size } = await stat(path);
  if (size > MAX_LEGACY_FILE_BYTES) {
    throw new SignatureError(
      `${path} is larger than 1 GiB and its signature is in minisign's legacy format, which needs the whole file in ` +
        'memory: re-sign it with a prehashed signature (`minisign -S`, the default since minisign 0.10, or `overseer sign`).',
    );
  }
  return readFile(path);
}

function globallySignedBytes(signature: Buffer, trustedComment: string): Buffer {
  return Buffer.concat([signature, Buffer.from(trustedComment, 'utf8')]);
}

/**
 * Verifies the file at `path` against a .minisig text, resolving with its trusted comment.
 * A prehashed signature ("ED") is checked against the file's BLAKE2b-512, streamed in constant
 * memory. A legacy signature ("Ed") covers the file itself, so the whole file is read into
 * memory; as in minisign, files over 1 GiB are refused in that case.
 */
export async function verifyFile(
  path: string,
  signatureText: string,
  key: MinisignPublicKey,
): Promise<{ trustedComment: string }> {
  const signature = parseSignature(signatureText);
  if (signature.keyId !== key.keyId) {
    throw new SignatureError(
      `${path} was signed with key ${signature.keyId} but the configured public key is ${key.keyId}: ` +
        `configure the public key of ${signature.keyId}, or re-sign the build with the secret key of ${key.keyId}.`,
    );
  }
  let signedBytes: Buffer;
  try {
    signedBytes = signature.algorithm === PREHASHED_SIGNATURE_ALGORITHM ? await blake2b512OfFile(path) : await legacySignedBytes(path);
  } catch (error) {
    if (error instanceof SignatureError) throw error;
    throw new SignatureError(`Could not read ${path} to verify its signature: ${describeError(error)}`, { cause: error });
  }
  if (!crypto.verify(null, signedBytes, key.publicKey, signature.signature)) {
    throw new SignatureError(
      `${path} does not match its signature: the build was altered or corrupted after it was signed, or it was signed ` +
        `by another key posing as ${key.keyId}. Do not run it; publish the build again with a fresh signature.`,
    );
  }
  if (!crypto.verify(null, globallySignedBytes(signature.signature, signature.trustedComment), key.publicKey, signature.globalSignature)) {
    throw new SignatureError(
      `The trusted comment of ${path}'s signature was altered after signing (the file itself matches): ` +
        'use the .minisig file exactly as it was signed, or sign the build again.',
    );
  }
  return { trustedComment: signature.trustedComment };
}

/**
 * Signs the file at `path` with a minisign secret key (the text of a .key file), resolving with
 * the .minisig text. The signature is prehashed ("ED", minisign's default), so the file is
 * streamed. `password` is needed for an encrypted key (and ignored for an unencrypted one);
 * decrypting takes a few seconds and about 1 GiB of memory, as in minisign. The default trusted comment is minisign's:
 * `timestamp:<unix seconds>\tfile:<base name>\thashed`.
 */
export async function signFile(
  path: string,
  secretKeyText: string,
  options: { password?: string; trustedComment?: string; untrustedComment?: string } = {},
): Promise<string> {
  const trustedComment = options.trustedComment ?? `timestamp:${Math.floor(Date.now() / 1000)}\tfile:${basename(path)}\thashed`;
  const untrustedComment = options.untrustedComment ?? DEFAULT_UNTRUSTED_SIGNATURE_COMMENT;
  assertOneLineComment('trusted comment', trustedComment, MAX_TRUSTED_COMMENT_BYTES);
  assertOneLineComment('untrusted comment', untrustedComment, MAX_UNTRUSTED_COMMENT_BYTES);
  const { keyIdBytes, privateKey } = await decodeSecretKey(secretKeyText, options.password);
  let digest: Buffer;
  try {
    digest = await blake2b512OfFile(path);
  } catch (error) {
    throw new SignatureError(`Could not read ${path} to sign it: ${describeError(error)}`, { cause: error });
  }
  const signature = crypto.sign(null, digest, privateKey);
  const globalSignature = crypto.sign(null, globallySignedBytes(signature, trustedComment), privateKey);
  const signatureLine = Buffer.concat([Buffer.from(PREHASHED_SIGNATURE_ALGORITHM, 'latin1'), keyIdBytes, signature]);
  return (
    `${UNTRUSTED_COMMENT_PREFIX}${untrustedComment}\n${signatureLine.toString('base64')}\n` +
    `${TRUSTED_COMMENT_PREFIX}${trustedComment}\n${globalSignature.toString('base64')}\n`
  );
}
