/**
 * minisign secret keys: reading (unencrypted and scrypt-encrypted), writing, key pair generation,
 * and the small encoding helpers the public-key and signature code shares.
 *
 * Secret key layout (158 bytes, base64 on the line after an untrusted comment):
 * "Ed" | kdf ("Sc" scrypt, or two zero bytes) | "B2" | salt (32) | opslimit (u64 LE) |
 * memlimit (u64 LE) | key id (8) | Ed25519 secret key (64: seed then public key) |
 * checksum (32: BLAKE2b-256 of "Ed" + key id + secret key). With scrypt, the last 104 bytes are
 * XORed with a 104-byte scrypt stream of the password.
 */
import * as crypto from 'node:crypto';
import { SignatureError } from '../../errors.js';
import { blake2b } from './blake2b.js';

export const SIGNATURE_ALGORITHM = 'Ed';
export const PREHASHED_SIGNATURE_ALGORITHM = 'ED';
export const KEY_ID_BYTES = 8;
export const PUBLIC_KEY_BYTES = 32;
export const UNTRUSTED_COMMENT_PREFIX = 'untrusted comment: ';

const SCRYPT_KDF = 'Sc';
const NO_KDF = '\0\0';
const BLAKE2B_CHECKSUM = 'B2';
const SALT_BYTES = 32;
const SEED_BYTES = 32;
const CHECKSUM_BYTES = 32;
/** key id + secret key + checksum: the part scrypt encrypts. */
const PROTECTED_BYTES = KEY_ID_BYTES + SEED_BYTES + PUBLIC_KEY_BYTES + CHECKSUM_BYTES;
const SECRET_KEY_BYTES = 2 + 2 + 2 + SALT_BYTES + 8 + 8 + PROTECTED_BYTES;
/** minisign's (libsodium's "sensitive") scrypt limits: about 1 GiB of memory, a few seconds. */
const DEFAULT_OPSLIMIT = 33_554_432n;
const DEFAULT_MEMLIMIT = 1_073_741_824n;
/** Refuse keys whose scrypt parameters would need more memory than this. */
const MAX_SCRYPT_MEMORY = 4 * 1024 ** 3;

/** How minisign prints a key id: the 8 bytes as a little-endian integer, in upper-case hex. */
export function formatKeyId(keyIdBytes: Uint8Array): string {
  return Buffer.from(keyIdBytes).reverse().toString('hex').toUpperCase();
}

/** Decodes canonical base64 of exactly `length` bytes, or returns undefined. */
export function decodeBase64Exactly(text: string, length: number): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length || bytes.toString('base64') !== text) return undefined;
  return bytes;
}

/** The lines of a minisign text file, without line ends, trailing blank lines dropped. */
export function textLines(text: string): string[] {
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  while (lines.length > 0 && lines[lines.length - 1]?.trim() === '') lines.pop();
  return lines;
}

/** Throws when a comment would not fit on its line, or not in minisign's line buffers. */
export function assertOneLineComment(kind: string, comment: string, maxBytes: number): void {
  if (/[\r\n]/.test(comment)) {
    throw new SignatureError(`The ${kind} must be a single line: remove the line breaks from it.`);
  }
  if (Buffer.byteLength(comment) > maxBytes) {
    throw new SignatureError(`The ${kind} is longer than ${maxBytes} bytes, more than minisign can read: shorten it.`);
  }
}

export function ed25519PublicKeyFromBytes(publicKeyBytes: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyBytes).toString('base64url') },
    format: 'jwk',
  });
}

/** A minisign secret key, decrypted and checked. */
export interface DecodedSecretKey {
  keyIdBytes: Buffer;
  privateKey: crypto.KeyObject;
}

/**
 * scrypt's N, r and p from libsodium's opslimit and memlimit, computed the way
 * `crypto_pwhash_scryptsalsa208sha256` does it, so a key encrypted by minisign decrypts here.
 */
export function scryptParameters(opslimit: bigint, memlimit: bigint): { N: number; r: number; p: number } {
  const ops = opslimit < 32_768n ? 32_768n : opslimit;
  const r = 8n;
  const smallestLog2Above = (maxN: bigint): bigint => {
    let log2 = 1n;
    while (log2 < 63n && 1n << log2 <= maxN / 2n) log2 += 1n;
    return log2;
  };
  let log2N: bigint;
  let p: bigint;
  if (ops < memlimit / 32n) {
    p = 1n;
    log2N = smallestLog2Above(ops / (r * 4n));
  } else {
    log2N = smallestLog2Above(memlimit / (r * 128n));
    let maxRp = ops / 4n / (1n << log2N);
    if (maxRp > 0x3fff_ffffn) maxRp = 0x3fff_ffffn;
    p = maxRp / r;
  }
  return { N: Number(1n << log2N), r: Number(r), p: Number(p) };
}

function scryptOptions(opslimit: bigint, memlimit: bigint): crypto.ScryptOptions {
  const { N, r, p } = scryptParameters(opslimit, memlimit);
  // OpenSSL needs 128 * r * (N + 2) bytes for V plus 128 * r * p for B.
  const memoryNeeded = 128 * r * (N + 2 + p);
  if (p < 1 || memoryNeeded > MAX_SCRYPT_MEMORY) {
    throw new SignatureError(
      `The secret key's scrypt parameters (opslimit ${opslimit}, memlimit ${memlimit}) are unusable here: ` +
        're-encrypt it with `minisign -C`, or make a new key pair.',
    );
  }
  return { N, r, p, maxmem: memoryNeeded + 1024 * 1024 };
}

function deriveStream(password: string, salt: Buffer, options: crypto.ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(Buffer.from(password, 'utf8'), salt, PROTECTED_BYTES, options, (error, stream) => {
      if (error) reject(new SignatureError(`Could not derive the secret key's decryption key: ${error.message}`, { cause: error }));
      else resolve(stream);
    });
  });
}

function xorInPlace(target: Buffer, stream: Buffer): void {
  for (let i = 0; i < target.length; i += 1) target[i] = (target[i] as number) ^ (stream[i] as number);
}

function checksum(keyIdBytes: Buffer, secretKeyBytes: Buffer): Buffer {
  return blake2b(Buffer.concat([Buffer.from(SIGNATURE_ALGORITHM), keyIdBytes, secretKeyBytes]), CHECKSUM_BYTES);
}

function notASecretKey(detail: string): SignatureError {
  return new SignatureError(
    `Not a minisign secret key: ${detail}. Expected the text of a .key file made by \`minisign -G\` or \`overseer keygen\` ` +
      '(an "untrusted comment:" line, then one base64 line).',
  );
}

/** Reads a .key file's text; `password` is needed when the key is scrypt-encrypted (minisign's default). */
export async function decodeSecretKey(text: string, password?: string): Promise<DecodedSecretKey> {
  const lines = textLines(text).filter((line) => line.trim() !== '');
  const keyLine = lines[0]?.startsWith('untrusted comment:') ? lines[1] : lines[0];
  if (keyLine === undefined) throw notASecretKey('the text is empty');
  const bytes = decodeBase64Exactly(keyLine.trim(), SECRET_KEY_BYTES);
  if (bytes === undefined) throw notASecretKey(`its key line is not base64 of ${SECRET_KEY_BYTES} bytes`);

  const algorithm = bytes.toString('latin1', 0, 2);
  const kdf = bytes.toString('latin1', 2, 4);
  const checksumAlgorithm = bytes.toString('latin1', 4, 6);
  if (algorithm !== SIGNATURE_ALGORITHM) throw notASecretKey(`its signature algorithm is ${JSON.stringify(algorithm)}, not "Ed"`);
  if (checksumAlgorithm !== BLAKE2B_CHECKSUM) {
    throw new SignatureError(`Unsupported minisign secret key checksum ${JSON.stringify(checksumAlgorithm)}: only BLAKE2b ("B2") is supported.`);
  }
  const salt = bytes.subarray(6, 6 + SALT_BYTES);
  const opslimit = bytes.readBigUInt64LE(6 + SALT_BYTES);
  const memlimit = bytes.readBigUInt64LE(6 + SALT_BYTES + 8);
  const protectedPart = Buffer.from(bytes.subarray(SECRET_KEY_BYTES - PROTECTED_BYTES));

  const encrypted = kdf === SCRYPT_KDF;
  if (encrypted) {
    if (password === undefined || password === '') {
      throw new SignatureError(
        'The minisign secret key is encrypted with a password, and none was given: pass its password ' +
          '(the `password` option), or remove the password with `minisign -C -W`.',
      );
    }
    xorInPlace(protectedPart, await deriveStream(password, salt, scryptOptions(opslimit, memlimit)));
  } else if (kdf !== NO_KDF) {
    throw new SignatureError(
      `Unsupported minisign secret key encryption ${JSON.stringify(kdf)}: only scrypt ("Sc") and none are supported.`,
    );
  }

  const keyIdBytes = protectedPart.subarray(0, KEY_ID_BYTES);
  const secretKeyBytes = protectedPart.subarray(KEY_ID_BYTES, KEY_ID_BYTES + SEED_BYTES + PUBLIC_KEY_BYTES);
  const storedChecksum = protectedPart.subarray(PROTECTED_BYTES - CHECKSUM_BYTES);
  const checksumMatches = crypto.timingSafeEqual(storedChecksum, checksum(keyIdBytes, secretKeyBytes));
  if (encrypted && !checksumMatches) {
    throw new SignatureError('Wrong password for the minisign secret key (its checksum does not match once decrypted): check the password.');
  }
  // `minisign -G -W` leaves the checksum of an unencrypted key zeroed; any other mismatch is damage.
  if (!encrypted && !checksumMatches && storedChecksum.some((byte) => byte !== 0)) {
    throw new SignatureError('The minisign secret key is corrupt (its checksum does not match): restore it from a backup.');
  }

  const seed = secretKeyBytes.subarray(0, SEED_BYTES);
  const storedPublicKey = secretKeyBytes.subarray(SEED_BYTES);
  const privateKey = crypto.createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: seed.toString('base64url'), x: storedPublicKey.toString('base64url') },
    format: 'jwk',
  });
  const derivedPublicKey = crypto.createPublicKey(privateKey).export({ format: 'jwk' }).x;
  if (derivedPublicKey !== storedPublicKey.toString('base64url')) {
    throw new SignatureError('The minisign secret key is corrupt (its public half does not match its seed): restore it from a backup.');
  }
  return { keyIdBytes: Buffer.from(keyIdBytes), privateKey };
}

/**
 * Makes a minisign key pair. Without a password the secret key is stored unencrypted, like
 * `minisign -G -W` (but with its checksum filled in). With a password it is encrypted the way
 * `minisign -G` does it, with minisign's scrypt limits: this blocks for a few seconds and
 * about 1 GiB of memory. `untrustedComment` goes on the public key file
 * (default: `minisign public key <KEY ID>`, as minisign writes it).
 */
export function generateKeyPair(options: { untrustedComment?: string; password?: string } = {}): {
  publicKey: string;
  secretKey: string;
  keyId: string;
} {
  const keyIdBytes = crypto.randomBytes(KEY_ID_BYTES);
  const keyId = formatKeyId(keyIdBytes);
  const publicKeyComment = options.untrustedComment ?? `minisign public key ${keyId}`;
  assertOneLineComment('untrusted comment', publicKeyComment, 1000);

  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const privateJwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(privateJwk.d ?? '', 'base64url');
  const publicKeyBytes = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const secretKeyBytes = Buffer.concat([seed, publicKeyBytes]);
  const protectedPart = Buffer.concat([keyIdBytes, secretKeyBytes, checksum(keyIdBytes, secretKeyBytes)]);

  const encrypted = options.password !== undefined && options.password !== '';
  const salt = encrypted ? crypto.randomBytes(SALT_BYTES) : Buffer.alloc(SALT_BYTES);
  const limits = Buffer.alloc(16);
  if (encrypted) {
    limits.writeBigUInt64LE(DEFAULT_OPSLIMIT, 0);
    limits.writeBigUInt64LE(DEFAULT_MEMLIMIT, 8);
    const stream = crypto.scryptSync(
      Buffer.from(options.password ?? '', 'utf8'),
      salt,
      PROTECTED_BYTES,
      scryptOptions(DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT),
    );
    xorInPlace(protectedPart, stream);
  }
  const secretKeyFile = Buffer.concat([
    Buffer.from(SIGNATURE_ALGORITHM + (encrypted ? SCRYPT_KDF : NO_KDF) + BLAKE2B_CHECKSUM, 'latin1'),
    salt,
    limits,
    protectedPart,
  ]);
  const publicKeyFile = Buffer.concat([Buffer.from(SIGNATURE_ALGORITHM), keyIdBytes, publicKeyBytes]);
  return {
    publicKey: `${UNTRUSTED_COMMENT_PREFIX}${publicKeyComment}\n${publicKeyFile.toString('base64')}\n`,
    secretKey:
      `${UNTRUSTED_COMMENT_PREFIX}minisign ${encrypted ? 'encrypted' : 'unencrypted'} secret key\n` +
      `${secretKeyFile.toString('base64')}\n`,
    keyId,
  };
}
