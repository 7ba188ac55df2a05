import { open } from 'node:fs/promises';

/**
 * How a build is started: `script` with the master's own `node` and `execArgv` (a single-file
 * bundle), `native` directly (a Node single executable application, or any program).
 */
export type BuildKind = 'script' | 'native';

const NATIVE_MAGICS: readonly Buffer[] = [
  Buffer.from([0x7f, 0x45, 0x4c, 0x46]), // ELF
  Buffer.from([0xcf, 0xfa, 0xed, 0xfe]), // Mach-O 64-bit
  Buffer.from([0xce, 0xfa, 0xed, 0xfe]), // Mach-O 32-bit
  Buffer.from([0xca, 0xfe, 0xba, 0xbe]), // Mach-O universal
  Buffer.from([0x4d, 0x5a]), // PE (MZ)
];

/**
 * Decides by content, never by file name: an executable format, or a `#!` line naming another
 * interpreter than node, is `native`; everything else is JavaScript for `node`.
 */
export function buildKindOf(head: Buffer): BuildKind {
  if (NATIVE_MAGICS.some((magic) => head.subarray(0, magic.length).equals(magic))) return 'native';
  if (head[0] === 0x23 && head[1] === 0x21) {
    const line = head.subarray(2, head.indexOf(0x0a) < 0 ? head.length : head.indexOf(0x0a)).toString('utf8');
    return /(^|[\s/])node(js)?(\s|$)/.test(line) ? 'script' : 'native';
  }
  return 'script';
}

/** Reads the start of the file at `path` and says how to start it. */
export async function detectBuildKind(path: string): Promise<BuildKind> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(256);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return buildKindOf(head.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}
