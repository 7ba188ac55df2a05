/**
 * BLAKE2b (RFC 7693) with any output length from 1 to 64 bytes, unkeyed.
 *
 * Node's OpenSSL only offers BLAKE2b with a 64-byte output (`blake2b512`). A shorter BLAKE2b is
 * not a truncation of it: the output length is mixed into the initial state. minisign's secret
 * key checksum is a 32-byte BLAKE2b, hence this module. It uses BigInt arithmetic, which is slow
 * (a few MB/s): use it for short inputs such as key checksums, and `createHash('blake2b512')` for
 * files.
 */

const BLOCK_BYTES = 128;
const ROUNDS = 12;

const INITIALIZATION_VECTOR: readonly bigint[] = [
  0x6a09e667f3bcc908n,
  0xbb67ae8584caa73bn,
  0x3c6ef372fe94f82bn,
  0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n,
  0x9b05688c2b3e6c1fn,
  0x1f83d9abfb41bd6bn,
  0x5be0cd19137e2179n,
];

/** Message word schedule per round (RFC 7693 section 2.7); rounds 10 and 11 reuse rows 0 and 1. */
const MESSAGE_SCHEDULE: readonly (readonly number[])[] = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

/** Column then diagonal positions of the work vector mixed by each G call of a round. */
const MIX_POSITIONS: readonly (readonly [number, number, number, number])[] = [
  [0, 4, 8, 12],
  [1, 5, 9, 13],
  [2, 6, 10, 14],
  [3, 7, 11, 15],
  [0, 5, 10, 15],
  [1, 6, 11, 12],
  [2, 7, 8, 13],
  [3, 4, 9, 14],
];

const UINT64_MASK = 0xffff_ffff_ffff_ffffn;

function rotateRight(value: bigint, bits: bigint): bigint {
  return ((value >> bits) | (value << (64n - bits))) & UINT64_MASK;
}

/** Reads a 64-bit word; the index is always in range, the typed array just cannot say so. */
function word(words: BigUint64Array, index: number): bigint {
  return words[index] as bigint;
}

function mix(work: BigUint64Array, positions: readonly [number, number, number, number], x: bigint, y: bigint): void {
  const [a, b, c, d] = positions;
  // A BigUint64Array stores values modulo 2^64, which is the addition BLAKE2b wants.
  work[a] = word(work, a) + word(work, b) + x;
  work[d] = rotateRight(word(work, d) ^ word(work, a), 32n);
  work[c] = word(work, c) + word(work, d);
  work[b] = rotateRight(word(work, b) ^ word(work, c), 24n);
  work[a] = word(work, a) + word(work, b) + y;
  work[d] = rotateRight(word(work, d) ^ word(work, a), 16n);
  work[c] = word(work, c) + word(work, d);
  work[b] = rotateRight(word(work, b) ^ word(work, c), 63n);
}

function compress(state: BigUint64Array, block: Buffer, bytesSoFar: bigint, isLastBlock: boolean): void {
  const message = new BigUint64Array(16);
  for (let i = 0; i < 16; i += 1) message[i] = block.readBigUInt64LE(i * 8);
  const work = new BigUint64Array(16);
  work.set(state, 0);
  work.set(INITIALIZATION_VECTOR, 8);
  work[12] = word(work, 12) ^ bytesSoFar;
  work[13] = word(work, 13) ^ (bytesSoFar >> 64n);
  if (isLastBlock) work[14] = word(work, 14) ^ UINT64_MASK;
  for (let round = 0; round < ROUNDS; round += 1) {
    const schedule = MESSAGE_SCHEDULE[round % 10] as readonly number[];
    MIX_POSITIONS.forEach((positions, call) => {
      mix(work, positions, word(message, schedule[call * 2] as number), word(message, schedule[call * 2 + 1] as number));
    });
  }
  for (let i = 0; i < 8; i += 1) state[i] = word(state, i) ^ word(work, i) ^ word(work, i + 8);
}

/** The BLAKE2b hash of `data`, `outputLength` bytes long (1 to 64). */
export function blake2b(data: Uint8Array, outputLength = 64): Buffer {
  if (!Number.isInteger(outputLength) || outputLength < 1 || outputLength > 64) {
    throw new RangeError(`BLAKE2b output length must be an integer from 1 to 64, not ${outputLength}`);
  }
  const state = BigUint64Array.from(INITIALIZATION_VECTOR);
  // Parameter block: digest length, key length 0, fanout 1, depth 1; everything else zero.
  state[0] = word(state, 0) ^ 0x01010000n ^ BigInt(outputLength);

  const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const fullBlocksBeforeLast = input.length === 0 ? 0 : Math.ceil(input.length / BLOCK_BYTES) - 1;
  for (let index = 0; index < fullBlocksBeforeLast; index += 1) {
    const offset = index * BLOCK_BYTES;
    compress(state, input.subarray(offset, offset + BLOCK_BYTES), BigInt(offset + BLOCK_BYTES), false);
  }
  const lastBlock = Buffer.alloc(BLOCK_BYTES);
  input.copy(lastBlock, 0, fullBlocksBeforeLast * BLOCK_BYTES);
  compress(state, lastBlock, BigInt(input.length), true);

  const output = Buffer.alloc(64);
  for (let i = 0; i < 8; i += 1) output.writeBigUInt64LE(word(state, i), i * 8);
  return output.subarray(0, outputLength);
}
