/**
 * CRC-32C (Castagnoli: VHDX headers, regions, metadata, log) and CRC-32 (IEEE), both as zlib's
 * crc32(input, previous): the native helper's carry-less-multiply CRC (fsutil/native `crc`)
 * where it is built and the CPU has it, else @node-rs/crc32 (hardware CRC instructions), loaded
 * on first use with require(). Loading that package took ~8 ms of a `winsnap vhdx convert`
 * (its dlopen alone ~5 ms; through Node's ESM loader ~30 ms), and a layer conversion whose reads
 * compute their CRCs natively (readChecksum) needs neither.
 */
import { createRequire } from 'node:module';
import { CRC32_BIT, CRC32C_BIT, crcCall } from '../services/fsutil/native.js';

type Crc = (input: string | Uint8Array, previous?: number) => number;
let impl: { crc32: Crc; crc32c: Crc } | undefined;

function crcs(): { crc32: Crc; crc32c: Crc } {
  if (impl) return impl;
  const native = crcCall();
  if (native) {
    const bytes = (input: string | Uint8Array) => (typeof input === 'string' ? Buffer.from(input) : input);
    impl = { crc32: (input, previous) => native(CRC32_BIT, bytes(input), previous ?? 0), crc32c: (input, previous) => native(CRC32C_BIT, bytes(input), previous ?? 0) };
  } else impl = createRequire(import.meta.url)('@node-rs/crc32') as typeof import('@node-rs/crc32');
  return impl;
}

export const crc32c: Crc = (input, previous) => crcs().crc32c(input, previous);
export const crc32: Crc = (input, previous) => crcs().crc32(input, previous);

/** The reflected generator polynomials (x^32 implied): CRC-32 (IEEE 802.3) and CRC-32C. */
export const CRC32_POLY = 0xedb88320;
export const CRC32C_POLY = 0x82f63b78;

/**
 * a(x) b(x) mod P(x), both in the reflected order of CRC registers (bit 31 is x^0, bit 0 is
 * x^31): shift-and-add, one bit of `a` at a time.
 */
function multiplyModP(a: number, b: number, poly: number): number {
  let product = 0;
  for (let bit = 0x80000000; bit !== 0 && a !== 0; bit >>>= 1) {
    if (a & bit) {
      product ^= b;
      a = (a & ~bit) >>> 0;
    }
    b = b & 1 ? (b >>> 1) ^ poly : b >>> 1;
  }
  return product >>> 0;
}

/**
 * Per polynomial: x^(2^k) mod P for k = 0..63 (by repeated squaring; x^1 is 1 << 30 reflected),
 * and the shift of the last length asked for (a reader's chunks are all one size).
 */
const shifts = new Map<number, { squares: Uint32Array; length: number; shift: number }>();

/** x^(8·length) mod P */
function shiftFor(length: number, poly: number): number {
  let s = shifts.get(poly);
  if (!s) {
    const squares = new Uint32Array(64);
    squares[0] = 0x40000000;
    for (let k = 1; k < 64; k++) squares[k] = multiplyModP(squares[k - 1]!, squares[k - 1]!, poly);
    shifts.set(poly, (s = { squares, length: -1, shift: 0 }));
  }
  if (s.length !== length) {
    let shift = 0x80000000; // x^0
    for (let n = length, k = 3; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) shift = multiplyModP(s.squares[k]!, shift, poly);
    s.length = length;
    s.shift = shift;
  }
  return s.shift;
}

/**
 * The CRC of A ‖ B from crcA = CRC(A), crcB = CRC(B) and B's length: crcA's register moved
 * past 8·lengthB zero bits (times x^(8·lengthB) mod P), plus crcB. Linear algebra of CRCs
 * (the pre- and post-inversions cancel, as in zlib's crc32_combine); `poly` reflected.
 */
export function combineCrc(crcA: number, crcB: number, lengthB: number, poly: number): number {
  return (multiplyModP(shiftFor(lengthB, poly), crcA >>> 0, poly) ^ crcB) >>> 0;
}

/**
 * A chunking-independent 64-bit content fingerprint of a byte stream: CRC-32 and CRC-32C of
 * all of it, and its length (~14 ms for 170 MB here with the native CRC, ~45 ms with
 * @node-rs/crc32, against ~150 ms for SHA-256). It seeds
 * deterministic identifiers (ext4 and VHD UUIDs) where no cryptographic digest is needed:
 * two different inputs of the same length get the same identifiers with probability ~2^-64.
 * Not an integrity check against an adversary.
 */
export class StreamFingerprint {
  private a = 0;
  private b = 0;
  private n = 0;

  update(chunk: Uint8Array): void {
    this.a = crc32(chunk, this.a);
    this.b = crc32c(chunk, this.b);
    this.n += chunk.length;
  }

  /**
   * Appends `length` bytes whose CRC-32 and CRC-32C (each from the initial state) were computed
   * elsewhere (a read on the thread pool: fsutil/ring-reader.ts): the same as update() of them.
   */
  append(length: number, crc32Of: number, crc32cOf: number): void {
    this.a = combineCrc(this.a, crc32Of, length, CRC32_POLY);
    this.b = combineCrc(this.b, crc32cOf, length, CRC32C_POLY);
    this.n += length;
  }

  get bytes(): number {
    return this.n;
  }

  /** `<bytes>:<crc32 hex>:<crc32c hex>` */
  toString(): string {
    return `${this.n}:${(this.a >>> 0).toString(16).padStart(8, '0')}:${(this.b >>> 0).toString(16).padStart(8, '0')}`;
  }
}
