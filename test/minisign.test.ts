import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempMarker } from './helpers/processes.js';
import { afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { keygenCommand, signCommand } from '../src/cli/signing.js';
import { SignatureError } from '../src/errors.js';
import { blake2b } from '../src/master/upgrade/blake2b.js';
import { scryptParameters } from '../src/master/upgrade/minisign-secret-key.js';
import {
  generateKeyPair,
  loadPublicKey,
  parsePublicKey,
  parseSignature,
  signFile,
  verifyFile,
} from '../src/master/upgrade/minisign.js';

const MINISIGN = '/usr/bin/minisign';
const PASSWORD = 'correct horse battery staple';
/** Deriving a minisign scrypt key takes ~1 GiB and several seconds; a test may do a few. */
const SCRYPT_TEST_TIMEOUT = 180_000;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
let dir = '';

function runMinisign(args: string[], input = '', timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(MINISIGN, args, { cwd: dir, stdio: [input === '' ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`minisign ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      // minisign may exit before reading a password it turned out not to need.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

async function minisignOk(args: string[], input = ''): Promise<RunResult> {
  const result = await runMinisign(args, input);
  expect(result.code, `minisign ${args.join(' ')} failed: ${result.stderr}${result.stdout}`).toBe(0);
  return result;
}

/** A key pair made by `minisign -G -W` (unencrypted secret key). */
async function minisignKeyPair(name: string): Promise<{ pub: string; key: string }> {
  const pub = join(dir, `${name}.pub`);
  const key = join(dir, `${name}.key`);
  await minisignOk(['-G', '-W', '-p', pub, '-s', key]);
  return { pub, key };
}

function writeData(name: string, contents: Buffer | string = randomBytes(300_000)): string {
  const path = join(dir, name);
  writeFileSync(path, contents);
  return path;
}

async function expectSignatureError(action: Promise<unknown> | (() => unknown), message: RegExp | string): Promise<SignatureError> {
  let thrown: unknown;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected a SignatureError, nothing was thrown').toBeInstanceOf(SignatureError);
  const error = thrown as SignatureError;
  expect(error.code).toBe('ERR_OVERSEER_SIGNATURE');
  if (typeof message === 'string') expect(error.message).toContain(message);
  else expect(error.message).toMatch(message);
  return error;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), tempMarker()));
  try {
    const version = await runMinisign(['-v']);
    expect(version.stdout + version.stderr, 'the minisign binary is needed as the reference implementation').toMatch(/minisign \d/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), tempMarker()));
});

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  rmSync(dir, { recursive: true, force: true });
});

describe('BLAKE2b', () => {
  test('matches the RFC 7693 test vector for BLAKE2b-512("abc")', () => {
    expect(blake2b(Buffer.from('abc')).toString('hex')).toBe(
      'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1' +
        '7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923',
    );
  });

  test('gives the known 256-bit digests (coreutils `b2sum -l 256`), which are not truncated 512-bit ones', () => {
    expect(blake2b(Buffer.from('abc'), 32).toString('hex')).toBe('bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
    expect(blake2b(Buffer.alloc(0), 32).toString('hex')).toBe('0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8');
  });

  test('agrees with OpenSSL blake2b512 around block boundaries', () => {
    for (const length of [0, 1, 127, 128, 129, 255, 256, 257, 1000]) {
      const data = randomBytes(length);
      expect(blake2b(data).toString('hex'), `length ${length}`).toBe(createHash('blake2b512').update(data).digest('hex'));
    }
  });

  test('rejects output lengths outside 1..64', () => {
    expect(() => blake2b(Buffer.alloc(1), 0)).toThrow(RangeError);
    expect(() => blake2b(Buffer.alloc(1), 65)).toThrow(RangeError);
  });
});

describe('scrypt parameters from libsodium limits', () => {
  test("minisign's sensitive limits give N = 2^20, r = 8, p = 1; libsodium's interactive ones N = 2^14", () => {
    expect(scryptParameters(33_554_432n, 1_073_741_824n)).toEqual({ N: 2 ** 20, r: 8, p: 1 });
    expect(scryptParameters(524_288n, 16_777_216n)).toEqual({ N: 2 ** 14, r: 8, p: 1 });
  });
});

describe('verifying what minisign signed', () => {
  test('a prehashed signature by `minisign -S` verifies and yields its trusted comment', async () => {
    const { pub, key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    await minisignOk(['-S', '-s', key, '-m', file, '-t', 'release 1.2.3']);
    const signatureText = readFileSync(`${file}.minisig`, 'utf8');
    expect(parseSignature(signatureText).algorithm).toBe('ED');
    const result = await verifyFile(file, signatureText, await loadPublicKey(pub));
    expect(result.trustedComment).toBe('release 1.2.3');
  });

  test("minisign's default trusted comment is the one signFile writes", async () => {
    const { key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    await minisignOk(['-S', '-s', key, '-m', file]);
    const theirs = parseSignature(readFileSync(`${file}.minisig`, 'utf8')).trustedComment;
    const ours = parseSignature(await signFile(file, readFileSync(key, 'utf8'))).trustedComment;
    const shape = /^timestamp:\d+\tfile:app\.mjs\thashed$/;
    expect(theirs).toMatch(shape);
    expect(ours).toMatch(shape);
  });

  test('a legacy signature (`minisign -S -l`) verifies', async () => {
    const { pub, key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    await minisignOk(['-S', '-l', '-s', key, '-m', file, '-t', 'legacy build']);
    const signatureText = readFileSync(`${file}.minisig`, 'utf8');
    expect(parseSignature(signatureText).algorithm).toBe('Ed');
    expect(await verifyFile(file, signatureText, await loadPublicKey(pub))).toEqual({ trustedComment: 'legacy build' });
  });
});

describe('minisign verifying what we signed', () => {
  test('generateKeyPair + signFile: `minisign -V` accepts, and so does verifyFile', async () => {
    const pair = generateKeyPair();
    const pub = writeData('ours.pub', pair.publicKey);
    const file = writeData('app.mjs');
    const signatureText = await signFile(file, pair.secretKey, { trustedComment: 'version 7' });
    writeData('app.mjs.minisig', signatureText);
    const result = await minisignOk(['-V', '-p', pub, '-m', file]);
    expect(result.stdout).toContain('Trusted comment: version 7');
    expect(readFileSync(pub, 'utf8')).toContain(`minisign public key ${pair.keyId}`);
    expect(await verifyFile(file, signatureText, parsePublicKey(pair.publicKey))).toEqual({ trustedComment: 'version 7' });
  });

  test('signFile with a secret key from `minisign -G -W`: `minisign -V` accepts', async () => {
    const { pub, key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    writeData('app.mjs.minisig', await signFile(file, readFileSync(key, 'utf8')));
    await minisignOk(['-V', '-p', pub, '-m', file]);
  });

  test('minisign signs with an unencrypted secret key from generateKeyPair', async () => {
    const pair = generateKeyPair();
    const key = writeData('ours.key', pair.secretKey);
    const pub = writeData('ours.pub', pair.publicKey);
    const file = writeData('app.mjs');
    await minisignOk(['-S', '-W', '-s', key, '-m', file, '-t', 'signed by minisign']);
    await minisignOk(['-V', '-p', pub, '-m', file]);
    const verified = await verifyFile(file, readFileSync(`${file}.minisig`, 'utf8'), parsePublicKey(pair.publicKey));
    expect(verified.trustedComment).toBe('signed by minisign');
  });
});

describe('password-encrypted secret keys (scrypt, ~1 GiB each derivation)', () => {
  test(
    'a key from `minisign -G` with a password signs with the password, and is refused without it or with a wrong one',
    async () => {
      const pub = join(dir, 'encrypted.pub');
      const key = join(dir, 'encrypted.key');
      await minisignOk(['-G', '-p', pub, '-s', key], `${PASSWORD}\n${PASSWORD}\n`);
      const secretKeyText = readFileSync(key, 'utf8');
      const file = writeData('app.mjs');

      await expectSignatureError(signFile(file, secretKeyText), 'encrypted with a password, and none was given');
      await expectSignatureError(signFile(file, secretKeyText, { password: 'not it' }), 'Wrong password');

      writeData('app.mjs.minisig', await signFile(file, secretKeyText, { password: PASSWORD }));
      await minisignOk(['-V', '-p', pub, '-m', file]);
    },
    SCRYPT_TEST_TIMEOUT,
  );

  test(
    'a key from generateKeyPair with a password is usable by `minisign -S` with that password',
    async () => {
      const pair = generateKeyPair({ password: PASSWORD });
      expect(pair.secretKey).toContain('encrypted secret key');
      const key = writeData('ours.key', pair.secretKey);
      const pub = writeData('ours.pub', pair.publicKey);
      const file = writeData('app.mjs');
      await minisignOk(['-S', '-s', key, '-m', file, '-t', 'from an encrypted key'], `${PASSWORD}\n`);
      await minisignOk(['-V', '-p', pub, '-m', file]);
      const wrong = await runMinisign(['-S', '-s', key, '-m', file, '-x', join(dir, 'wrong.minisig')], 'not it\n');
      expect(wrong.code, 'minisign must refuse the wrong password for our key').not.toBe(0);
    },
    SCRYPT_TEST_TIMEOUT,
  );
});

describe('rejections', () => {
  async function signedByMinisign(): Promise<{ pub: string; key: string; file: string; signatureText: string }> {
    const { pub, key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    await minisignOk(['-S', '-s', key, '-m', file, '-t', 'release 1']);
    return { pub, key, file, signatureText: readFileSync(`${file}.minisig`, 'utf8') };
  }

  test('a tampered file does not verify', async () => {
    const { pub, file, signatureText } = await signedByMinisign();
    const bytes = readFileSync(file);
    bytes[1000] = (bytes[1000] as number) ^ 1;
    writeFileSync(file, bytes);
    await expectSignatureError(verifyFile(file, signatureText, await loadPublicKey(pub)), `${file} does not match its signature`);
  });

  test('a tampered trusted comment does not verify', async () => {
    const { pub, file, signatureText } = await signedByMinisign();
    const altered = signatureText.replace('trusted comment: release 1', 'trusted comment: release 2');
    expect(altered).not.toBe(signatureText);
    await expectSignatureError(verifyFile(file, altered, await loadPublicKey(pub)), /trusted comment .* was altered after signing/);
  });

  test('a signature by another key is refused, naming both key ids', async () => {
    const { file, signatureText } = await signedByMinisign();
    const other = generateKeyPair();
    const signer = parseSignature(signatureText).keyId;
    await expectSignatureError(
      verifyFile(file, signatureText, parsePublicKey(other.publicKey)),
      `signed with key ${signer} but the configured public key is ${other.keyId}`,
    );
  });

  test('a public key claiming the signer’s id with other key bytes does not verify (nor in minisign)', async () => {
    const { pub, file, signatureText } = await signedByMinisign();
    const genuine = Buffer.from(readFileSync(pub, 'utf8').trim().split('\n')[1] as string, 'base64');
    const otherKey = Buffer.from(generateKeyPair().publicKey.trim().split('\n')[1] as string, 'base64');
    const forgedLine = Buffer.concat([genuine.subarray(0, 10), otherKey.subarray(10)]).toString('base64');
    const forged = parsePublicKey(forgedLine);
    expect(forged.keyId).toBe(parseSignature(signatureText).keyId);
    await expectSignatureError(verifyFile(file, signatureText, forged), 'does not match its signature');
    const reference = await runMinisign(['-V', '-P', forgedLine, '-m', file]);
    expect(reference.code).not.toBe(0);
  });

  test('garbage, an empty signature and an unknown algorithm are refused with distinct messages', async () => {
    const { pub, file, signatureText } = await signedByMinisign();
    const key = await loadPublicKey(pub);
    await expectSignatureError(verifyFile(file, 'this is not a signature', key), 'Not a minisign signature');
    await expectSignatureError(verifyFile(file, signatureText.replace(/^(.*\n)(.*)\n/, '$1AAAA\n'), key), 'line 2 is not base64');
    await expectSignatureError(verifyFile(file, '', key), 'No minisign signature was given');

    const lines = signatureText.split('\n');
    const signatureBytes = Buffer.from(lines[1] as string, 'base64');
    signatureBytes.write('Ex', 0, 'latin1');
    lines[1] = signatureBytes.toString('base64');
    await expectSignatureError(verifyFile(file, lines.join('\n'), key), 'Unsupported minisign signature algorithm "Ex"');
  });

  test('a text that is not a public key is refused, and a secret key is called out as one', async () => {
    expect(() => parsePublicKey('hello')).toThrow(SignatureError);
    await expectSignatureError(() => parsePublicKey('hello'), 'Not a minisign public key');
    await expectSignatureError(() => parsePublicKey(''), 'Not a minisign public key');
    await expectSignatureError(() => parsePublicKey(generateKeyPair().secretKey), 'This is a minisign secret key, not a public key');
    await expectSignatureError(loadPublicKey(join(dir, 'missing.pub')), 'neither a minisign key line');
  });
});

describe('signing options', () => {
  test('comments that would break the .minisig lines are refused before signing', async () => {
    const pair = generateKeyPair();
    const file = writeData('app.mjs');
    await expectSignatureError(signFile(file, pair.secretKey, { trustedComment: 'one\ntwo' }), 'trusted comment must be a single line');
    await expectSignatureError(signFile(file, pair.secretKey, { untrustedComment: 'x'.repeat(2000) }), 'untrusted comment is longer');
    const signatureText = await signFile(file, pair.secretKey, { untrustedComment: 'release notes at example.org' });
    expect(parseSignature(signatureText).untrustedComment).toBe('release notes at example.org');
    expect(signatureText.split('\n')[0]).toBe('untrusted comment: release notes at example.org');
  });

  test('the default untrusted comment names overseer', async () => {
    const pair = generateKeyPair();
    const signatureText = await signFile(writeData('app.mjs'), pair.secretKey);
    expect(parseSignature(signatureText).untrustedComment).toBe('signature from overseer secret key');
  });
});

describe('public keys', () => {
  test('the bare base64 line and the whole .pub text give the same key, with the id minisign prints', async () => {
    const { pub } = await minisignKeyPair('reference');
    const text = readFileSync(pub, 'utf8');
    // minisign 0.11 prints the id without leading zeros; ours is always 16 digits.
    const printedId = /minisign public key ([0-9A-F]{1,16})\n/.exec(text)?.[1]?.padStart(16, '0');
    expect(printedId).toMatch(/^[0-9A-F]{16}$/);
    const keyLine = text.trim().split('\n')[1] as string;
    const fromText = parsePublicKey(text);
    const fromLine = parsePublicKey(keyLine);
    expect(fromText.keyId).toBe(printedId);
    expect(fromLine.keyId).toBe(printedId);
    expect(fromLine.publicKey.equals(fromText.publicKey)).toBe(true);

    const fromPath = await loadPublicKey(pub);
    const fromKeyArgument = await loadPublicKey(keyLine);
    expect(fromPath.keyId).toBe(printedId);
    expect(fromKeyArgument.publicKey.equals(fromText.publicKey)).toBe(true);
  });
});

describe('overseer keygen and sign', () => {
  test('keygen writes a key pair (secret key mode 0600) that sign uses, and minisign verifies the result', async () => {
    const prefix = join(dir, 'keys', 'release');
    const generated = await keygenCommand({ output: prefix });
    expect(generated.publicKeyPath).toBe(`${prefix}.pub`);
    expect(generated.secretKeyPath).toBe(`${prefix}.key`);
    expect(statSync(generated.secretKeyPath).mode & 0o777).toBe(0o600);
    expect(parsePublicKey(generated.publicKey).keyId).toBe(generated.keyId);

    const file = writeData('app.mjs');
    const signed = await signCommand(file, { secretKey: generated.secretKeyPath, trustedComment: 'cli build' });
    expect(signed).toEqual({ signaturePath: `${file}.minisig`, keyId: generated.keyId, trustedComment: 'cli build' });
    const result = await minisignOk(['-V', '-p', generated.publicKeyPath, '-m', file]);
    expect(result.stdout).toContain('Trusted comment: cli build');
  });

  test('keygen refuses to overwrite a key pair unless forced', async () => {
    const prefix = join(dir, 'release');
    const first = await keygenCommand({ output: prefix });
    const before = readFileSync(`${prefix}.key`, 'utf8');
    await expectSignatureError(keygenCommand({ output: prefix }), `Refusing to overwrite ${prefix}.pub and ${prefix}.key`);
    expect(readFileSync(`${prefix}.key`, 'utf8')).toBe(before);

    const second = await keygenCommand({ output: prefix, force: true });
    expect(second.keyId).not.toBe(first.keyId);
    expect(parsePublicKey(readFileSync(`${prefix}.pub`, 'utf8')).keyId).toBe(second.keyId);
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
  });

  test('sign signs with a minisign-made key, and says what to do when the secret key is missing', async () => {
    const { pub, key } = await minisignKeyPair('reference');
    const file = writeData('app.mjs');
    const signed = await signCommand(file, { secretKey: key });
    expect(signed.trustedComment).toMatch(/^timestamp:\d+\tfile:app\.mjs\thashed$/);
    await minisignOk(['-V', '-p', pub, '-m', file]);
    await expectSignatureError(signCommand(file, { secretKey: join(dir, 'nope.key') }), `Could not read the secret key ${join(dir, 'nope.key')}`);
  });
});
