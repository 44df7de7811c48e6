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
