import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OVERSEER_BIN = fileURLToPath(new URL('../../bin/overseer.js', import.meta.url));

/** A minisign key pair made in `dir` by the real minisign tool, unencrypted (-W). */
export function minisignKeys(dir: string, name: string) {
  const pub = join(dir, `${name}.pub`);
  const key = join(dir, `${name}.key`);
  execFileSync('minisign', ['-G', '-W', '-p', pub, '-s', key], { stdio: 'ignore' });
  return {
    pub,
    /** Signs `file` with the real minisign tool; returns the signature's path, `<file>.minisig`. */
    sign(file: string): string {
      execFileSync('minisign', ['-S', '-W', '-s', key, '-m', file], { stdio: 'ignore' });
      return `${file}.minisig`;
    },
    /** Signs `file` with `overseer sign`, the same key; returns the signature's path. */
    signWithOverseer(file: string): string {
      execFileSync(process.execPath, [OVERSEER_BIN, 'sign', '-s', key, file], { stdio: 'ignore' });
      return `${file}.minisig`;
    },
    /** Signs `file` and returns the signature's text. */
    signatureOf(file: string): string {
      return readFileSync(this.sign(file), 'utf8');
    },
  };
}
