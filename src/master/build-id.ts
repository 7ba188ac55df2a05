import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Bytes read at a time. */
const CHUNK = 64 * 1024;

/**
 * Hex SHA-256 of a file. One buffer is read into over and over: a stream would allocate a buffer
 * per chunk, and hashing a 200 MB build that way grows the master's memory by tens of megabytes
 * before the garbage collector catches up.
 */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}
