/**
 * `overseer keygen` and `overseer sign`: make a minisign key pair, and sign a build with it. The
 * files they write are minisign's, so `minisign -V` verifies what `overseer sign` signs, and
 * `overseer sign` accepts keys made by `minisign -G`.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SignatureError, describeError } from '../errors.js';
import { generateKeyPair, parseSignature, signFile } from '../master/upgrade/minisign.js';

/** What `keygenCommand` wrote. */
export interface KeygenResult {
  publicKeyPath: string;
  secretKeyPath: string;
  keyId: string;
  /** The public key's base64 line: what the `publicKey` option of `run()` takes. */
  publicKey: string;
}

/** What `signCommand` wrote. */
export interface SignResult {
  signaturePath: string;
  keyId: string;
  trustedComment: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
async function replaceFile(path: string, contents: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporaryPath, contents, { mode, flag: 'wx' });
    await rename(temporaryPath, path);
  } catch (error) {
    await rm(temporaryPath, { force: true });
    throw error;
  }
}

async function writeKeyFile(path: string, contents: string, mode: number, force: boolean): Promise<void> {
  // Without force, 'wx' refuses atomically even if the file appeared after the existence check.
  if (force) await replaceFile(path, contents, mode);
  else await writeFile(path, contents, { mode, flag: 'wx' });
}

/**
 * Makes a minisign key pair and writes `<output>.pub` and `<output>.key` (mode 0600). Refuses to
 * overwrite either file unless `force`. With `password`, the secret key is encrypted as
 * `minisign -G` does it (a few seconds, about 1 GiB of memory); without, it is stored
 * unencrypted, as `minisign -G -W` does.
 */
export async function keygenCommand(options: { output: string; force?: boolean; password?: string }): Promise<KeygenResult> {
  if (options.output.trim() === '') {
    throw new SignatureError('keygen needs an output path prefix: --output keys/overseer writes keys/overseer.pub and keys/overseer.key.');
  }
  const publicKeyPath = `${options.output}.pub`;
  const secretKeyPath = `${options.output}.key`;
  const force = options.force === true;
  if (!force) {
    const existing = [];
    for (const path of [publicKeyPath, secretKeyPath]) if (await exists(path)) existing.push(path);
    if (existing.length > 0) {
      throw new SignatureError(
        `Refusing to overwrite ${existing.join(' and ')}: choose another --output, or pass --force to replace the key pair ` +
          '(builds signed with the old key will no longer verify against the new public key).',
      );
    }
  }
  const pair = generateKeyPair(options.password === undefined ? {} : { password: options.password });
  try {
    await mkdir(dirname(secretKeyPath), { recursive: true });
    await writeKeyFile(secretKeyPath, pair.secretKey, 0o600, force);
  } catch (error) {
    throw new SignatureError(`Could not write the secret key ${secretKeyPath}: ${describeError(error)}`, { cause: error });
  }
  try {
    await writeKeyFile(publicKeyPath, pair.publicKey, 0o644, force);
  } catch (error) {
    // A secret key without its public key is useless and would block the next attempt.
    await rm(secretKeyPath, { force: true });
    throw new SignatureError(`Could not write the public key ${publicKeyPath}: ${describeError(error)}`, { cause: error });
  }
  const publicKeyLine = pair.publicKey.trimEnd().split('\n').at(-1) ?? '';
  return { publicKeyPath, secretKeyPath, keyId: pair.keyId, publicKey: publicKeyLine };
}

/**
 * Signs `file` with the minisign secret key at `options.secretKey` and writes `<file>.minisig`
 * (replacing an older one). The signature is prehashed, as `minisign -S` makes by default.
 */
export async function signCommand(
  file: string,
  options: { secretKey: string; trustedComment?: string; password?: string },
): Promise<SignResult> {
  let secretKeyText: string;
  try {
    secretKeyText = await readFile(options.secretKey, 'utf8');
  } catch (error) {
    throw new SignatureError(
      `Could not read the secret key ${options.secretKey} (${describeError(error)}): give the path of a .key file ` +
        'made by `overseer keygen` or `minisign -G`.',
      { cause: error },
    );
  }
  const signOptions: { password?: string; trustedComment?: string } = {};
  if (options.password !== undefined) signOptions.password = options.password;
  if (options.trustedComment !== undefined) signOptions.trustedComment = options.trustedComment;
  const signatureText = await signFile(file, secretKeyText, signOptions);
  const signaturePath = `${file}.minisig`;
  try {
    await replaceFile(signaturePath, signatureText, 0o644);
  } catch (error) {
    throw new SignatureError(`Could not write the signature ${signaturePath}: ${describeError(error)}`, { cause: error });
  }
  const { keyId, trustedComment } = parseSignature(signatureText);
  return { signaturePath, keyId, trustedComment };
}
