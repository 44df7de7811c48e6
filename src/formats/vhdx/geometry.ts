/**
 * BAT geometry (MS-VHDX §2.4 blocks, §2.5 BAT): chunk ratio, payload and sector-bitmap block
 * counts, and where each block's entry sits in the interleaved table. The sector bitmap entry
 * of chunk c follows that chunk's ChunkRatio payload entries, so payload block i is entry
 * i + floor(i / ChunkRatio) and sector bitmap block c is entry c * (ChunkRatio + 1) + ChunkRatio.
 */
import { invalidArgument } from '../../services/errdefs.js';
import {
  BLOCK_SIZE_MAX,
  BLOCK_SIZE_MIN,
  MAX_VIRTUAL_DISK_SIZE,
  MiB,
  SECTORS_PER_BITMAP_BLOCK,
} from './constants.js';

export interface Geometry {
  virtualSize: number;
  blockSize: number;
  logicalSectorSize: number;
  chunkRatio: number;
  payloadBlocks: number;
  bitmapBlocks: number;
  /** Entries needed so every payload entry and every chunk's sector bitmap entry exists. */
  batEntries: number;
}

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

export function validateParameters(p: { virtualSize: number; blockSize: number; logicalSectorSize: number; physicalSectorSize: number }): void {
  const { virtualSize, blockSize, logicalSectorSize, physicalSectorSize } = p;
  if (!Number.isSafeInteger(blockSize) || !isPow2(blockSize) || blockSize < BLOCK_SIZE_MIN || blockSize > BLOCK_SIZE_MAX) {
    throw invalidArgument(`block size ${blockSize} must be a power of two between 1 MiB and 256 MiB`);
  }
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) {
    throw invalidArgument(`logical sector size ${logicalSectorSize} must be 512 or 4096`);
  }
  if (physicalSectorSize !== 512 && physicalSectorSize !== 4096) {
    throw invalidArgument(`physical sector size ${physicalSectorSize} must be 512 or 4096`);
  }
  if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0 || virtualSize > MAX_VIRTUAL_DISK_SIZE) {
    throw invalidArgument(`virtual size ${virtualSize} must be between 1 byte and 64 TiB`);
  }
  if (virtualSize % logicalSectorSize !== 0) {
    throw invalidArgument(`virtual size ${virtualSize} is not a multiple of the logical sector size ${logicalSectorSize}`);
  }
}

export function geometry(virtualSize: number, blockSize: number, logicalSectorSize: number): Geometry {
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(virtualSize / blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  return {
    virtualSize,
    blockSize,
    logicalSectorSize,
    chunkRatio,
    payloadBlocks,
    bitmapBlocks,
    batEntries: bitmapBlocks * (chunkRatio + 1),
  };
}

export const payloadEntryIndex = (g: Geometry, block: number): number => block + Math.floor(block / g.chunkRatio);
export const bitmapEntryIndex = (g: Geometry, chunk: number): number => chunk * (g.chunkRatio + 1) + g.chunkRatio;

/** Highest entry index a reader touches, +1 (payload entries for all; bitmap entries too when differencing). */
export function entriesRequired(g: Geometry, differencing: boolean): number {
  if (g.payloadBlocks === 0) return 0;
  return differencing ? bitmapEntryIndex(g, g.bitmapBlocks - 1) + 1 : payloadEntryIndex(g, g.payloadBlocks - 1) + 1;
}

/** BAT region length for a geometry: every entry of every chunk, rounded up to 1 MiB. */
export function batRegionLength(g: Geometry): number {
  return Math.max(MiB, Math.ceil((g.batEntries * 8) / MiB) * MiB);
}

export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** BAT entry bit fields (§2.5.1): State in bits 0-2, FileOffsetMB in bits 20-63. */
export function batState(entry: bigint): number {
  return Number(entry & 7n);
}
export function batOffset(entry: bigint): number {
  return Number(entry >> 20n) * MiB;
}
export function makeBatEntry(state: number, fileOffset: number): bigint {
  if (fileOffset % MiB !== 0) throw new Error(`BAT offset ${fileOffset} is not MiB-aligned`);
  return (BigInt(fileOffset / MiB) << 20n) | BigInt(state);
}
