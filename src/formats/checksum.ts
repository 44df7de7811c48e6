/**
 * CRC-32C (Castagnoli: VHDX headers, regions, metadata, log) and CRC-32 (IEEE) from
 * @node-rs/crc32 (hardware CRC instructions). Loaded with require(): importing this CommonJS
 * package through Node's ESM loader costs ~30 ms of start-up per process, require() ~4 ms
 * (hyperfine, Node 20), and `winsnap vhdx` commands run once per disk in pipelines.
 */
import { createRequire } from 'node:module';

const crc = createRequire(import.meta.url)('@node-rs/crc32') as typeof import('@node-rs/crc32');

export const crc32c: (input: string | Uint8Array, initialState?: number) => number = crc.crc32c;
export const crc32: (input: string | Uint8Array, initialState?: number) => number = crc.crc32;

/**
 * A chunking-independent 64-bit content fingerprint of a byte stream: CRC-32 and CRC-32C of
 * all of it, and its length (~45 ms for 170 MB here, against ~150 ms for SHA-256). It seeds
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

  get bytes(): number {
    return this.n;
  }

  /** `<bytes>:<crc32 hex>:<crc32c hex>` */
  toString(): string {
    return `${this.n}:${(this.a >>> 0).toString(16).padStart(8, '0')}:${(this.b >>> 0).toString(16).padStart(8, '0')}`;
  }
}
