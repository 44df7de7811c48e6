/**
 * dm-verity hash trees as veritysetup and the kernel read them (cryptsetup's
 * "dm-verity on-disk format", version 1; hcsshim ext4/dmverity; windows-layer-formats.md
 * §4.4): SHA-256 over 4 KiB data blocks with the salt first, 128 hashes per 4 KiB hash
 * block, levels zero-padded, stored top level first; root = sha256(salt ‖ top block).
 * The 512-byte superblock ("verity\0\0", version 1, hash type 1, algorithm "sha256")
 * precedes the tree. Defaults as hcsshim: 32 zero bytes of salt; the UUID is derived from the
 * root hash (hcsshim's is random). Data is streamed; only the tree is kept in memory, or
 * with Level0File only the levels above level 0 (1/16384 of the data: 64 KiB a GiB), level 0
 * (1/128 of the data) waiting in a temporary file.
 */
import { createHash } from 'node:crypto';
import { closeSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { invalidArgument } from '../../services/errdefs.js';
import { openTempFile } from '../../services/fsutil/spill.js';

export const VERITY_BLOCK = 4096;
const HASH = 32;
const PER_BLOCK = VERITY_BLOCK / HASH;
export const VERITY_SUPERBLOCK_SIZE = 512;
export const DEFAULT_SALT = Buffer.alloc(32);

export interface VerityTree {
  rootHash: Buffer;
  /** the hash blocks, top level first (what follows the superblock) */
  tree: Buffer;
  dataBlocks: number;
  salt: Buffer;
}

const hashBlock = (salt: Buffer, block: Buffer) => createHash('sha256').update(salt).update(block).digest();

/** Builds the tree over `dataBlocks` 4 KiB blocks read from `path` starting at `offset`. */
export async function buildVerityTree(path: string, dataBytes: number, opts: { salt?: Buffer; offset?: number; zeroFrom?: number } = {}): Promise<VerityTree> {
  if (dataBytes <= 0 || dataBytes % VERITY_BLOCK !== 0) throw invalidArgument(`verity data size ${dataBytes} must be a positive multiple of 4096`);
  const salt = opts.salt ?? DEFAULT_SALT;
  if (salt.length > 256) throw invalidArgument('verity salt is longer than 256 bytes');
  const dataBlocks = dataBytes / VERITY_BLOCK;
  const level0 = Buffer.alloc(Math.ceil(dataBlocks / PER_BLOCK) * VERITY_BLOCK);
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let done = 0;
    const base = opts.offset ?? 0;
    // blocks from zeroFrom on are known to be zero: one hash for all of them, nothing read
    const readBlocks = Math.min(dataBlocks, Math.max(0, opts.zeroFrom ?? dataBlocks));
    if (readBlocks < dataBlocks) {
      const zero = hashBlock(salt, Buffer.alloc(VERITY_BLOCK));
      for (let b = readBlocks; b < dataBlocks; b++) zero.copy(level0, b * HASH);
    }
    while (done < readBlocks) {
      const want = Math.min(buf.length / VERITY_BLOCK, readBlocks - done) * VERITY_BLOCK;
      const { bytesRead } = await fh.read(buf, 0, want, base + done * VERITY_BLOCK);
      if (bytesRead !== want) throw invalidArgument(`verity: ${path} is shorter than ${base + dataBytes} bytes`);
      for (let o = 0; o < want; o += VERITY_BLOCK) hashBlock(salt, buf.subarray(o, o + VERITY_BLOCK)).copy(level0, (done + o / VERITY_BLOCK) * HASH);
      done += want / VERITY_BLOCK;
    }
  } finally {
    await fh.close();
  }
  return verityTreeFromLevel0(level0, dataBlocks, salt);
}

/**
 * The tree from the level-0 hashes (32 bytes per data block, in block order; e.g. computed
 * elsewhere while the data was written): the upper levels, the root hash.
 */
export function verityTreeFromLevel0(hashes: Buffer, dataBlocks: number, salt: Buffer = DEFAULT_SALT): VerityTree {
  if (hashes.length < dataBlocks * HASH) throw invalidArgument(`verity: ${hashes.length / HASH} level-0 hashes for ${dataBlocks} data blocks`);
  let level0 = hashes;
  const padded = Math.ceil(dataBlocks / PER_BLOCK) * VERITY_BLOCK;
  if (level0.length !== padded) {
    level0 = Buffer.alloc(padded);
    hashes.copy(level0, 0, 0, dataBlocks * HASH);
  }
  const levels = [level0];
  while (levels[levels.length - 1]!.length > VERITY_BLOCK) {
    const below = levels[levels.length - 1]!;
    const n = below.length / VERITY_BLOCK;
    const up = Buffer.alloc(Math.ceil(n / PER_BLOCK) * VERITY_BLOCK);
    for (let i = 0; i < n; i++) hashBlock(salt, below.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK)).copy(up, i * HASH);
    levels.push(up);
  }
  const top = levels[levels.length - 1]!;
  return { rootHash: hashBlock(salt, top), tree: Buffer.concat(levels.reverse()), dataBlocks, salt };
}

/** pread of up to `want` bytes into `buf` from `pos`, fewer only at the end of the file; returns how many. */
function readUpTo(fd: number, buf: Buffer, want: number, pos: number): number {
  let got = 0;
  for (let r; got < want && (r = readSync(fd, buf, got, want - got, pos + got)) > 0; ) got += r;
  return got;
}

/** pwrite of all of `data` at `pos`. */
function writeAll(fd: number, data: Uint8Array, pos: number): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, pos + off);
}

/**
 * Level-0 hashes kept in an unlinked temporary file rather than in memory, for big images:
 * `put` stores hashes computed elsewhere (e.g. on a worker, in any order) at their blocks'
 * place; `finish` builds the levels above from the file and `writeTree` writes the whole tree,
 * top level first, level 0 copied from the file. Gives the same tree as verityTreeFromLevel0.
 */
export class Level0File {
  /** the temporary file (for writers on other threads: hashes of block b at byte b * 32) */
  readonly fd: number;
  private closed = false;

  /** `dir`: where the temporary file goes (the output's directory: it takes 1/128 of the image). */
  constructor(dir: string) {
    this.fd = openTempFile(dir);
  }

  /** Stores the level-0 hashes (32 bytes each) of the data blocks from `fromBlock`. */
  put(fromBlock: number, hashes: Uint8Array): void {
    if (this.closed) throw invalidArgument('verity: level-0 hashes put after the file was closed');
    writeAll(this.fd, hashes, fromBlock * HASH);
  }

  /**
   * The root hash and the levels above level 0 (top level first; empty when level 0 is a
   * single block) of the tree over `dataBlocks` blocks, whose hashes must all have been put.
   */
  finish(dataBlocks: number, salt: Buffer = DEFAULT_SALT): { rootHash: Buffer; upper: Buffer; level0Bytes: number } {
    if (dataBlocks <= 0) throw invalidArgument(`verity: ${dataBlocks} data blocks`);
    const hashBlocks = Math.ceil(dataBlocks / PER_BLOCK);
    const level0Bytes = hashBlocks * VERITY_BLOCK;
    const hashBytes = dataBlocks * HASH;
    // level 1: the hashes of level 0's blocks (its last block zero-padded), read back in 1 MiB runs
    const level1 = Buffer.alloc(hashBlocks * HASH);
    const buf = Buffer.alloc(1 << 20);
    for (let b = 0; b < hashBlocks; ) {
      const n = Math.min(buf.length / VERITY_BLOCK, hashBlocks - b);
      const start = b * VERITY_BLOCK;
      const want = Math.min(n * VERITY_BLOCK, hashBytes - start);
      const got = readUpTo(this.fd, buf, want, start);
      if (got < want) throw invalidArgument(`verity: level-0 hashes end at byte ${start + got} of ${hashBytes}`);
      buf.fill(0, want, n * VERITY_BLOCK);
      for (let i = 0; i < n; i++) hashBlock(salt, buf.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK)).copy(level1, (b + i) * HASH);
      b += n;
    }
    if (hashBlocks === 1) return { rootHash: level1.subarray(0, HASH), upper: Buffer.alloc(0), level0Bytes };
    const above = verityTreeFromLevel0(level1, hashBlocks, salt);
    return { rootHash: above.rootHash, upper: above.tree, level0Bytes };
  }

  /** Writes `head`, the levels above level 0, then level 0 (zero-padded to `level0Bytes`) to `fd` at `pos`; returns the end. */
  writeTree(fd: number, pos: number, head: Buffer, upper: Buffer, level0Bytes: number): number {
    writeAll(fd, head, pos);
    pos += head.length;
    writeAll(fd, upper, pos);
    pos += upper.length;
    const buf = Buffer.alloc(1 << 20);
    for (let off = 0; off < level0Bytes; ) {
      const want = Math.min(buf.length, level0Bytes - off);
      buf.fill(0, readUpTo(this.fd, buf, want, off), want); // past the hashes: the padding
      writeAll(fd, buf.subarray(0, want), pos);
      pos += want;
      off += want;
    }
    return pos;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** The verity superblock (512 bytes). */
export function encodeVeritySuperblock(t: Pick<VerityTree, 'dataBlocks' | 'salt' | 'rootHash'>, uuid?: Buffer): Buffer {
  const b = Buffer.alloc(VERITY_SUPERBLOCK_SIZE);
  b.write('verity', 0, 'latin1');
  b.writeUInt32LE(1, 8); // version
  b.writeUInt32LE(1, 12); // hash type: normal (salt first)
  const id = uuid ?? createHash('sha256').update('winsnap verity uuid\0').update(t.rootHash).digest().subarray(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  id.copy(b, 16);
  b.write('sha256', 32, 'latin1');
  b.writeUInt32LE(VERITY_BLOCK, 64);
  b.writeUInt32LE(VERITY_BLOCK, 68);
  b.writeBigUInt64LE(BigInt(t.dataBlocks), 72);
  b.writeUInt16LE(t.salt.length, 80);
  t.salt.copy(b, 88);
  return b;
}

/** Parses a verity superblock. */
export function decodeVeritySuperblock(b: Buffer): { dataBlocks: number; salt: Buffer; uuid: Buffer; algorithm: string } {
  if (b.length < VERITY_SUPERBLOCK_SIZE || b.toString('latin1', 0, 8) !== 'verity\0\0') throw invalidArgument('not a dm-verity superblock', { offset: 0 });
  if (b.readUInt32LE(8) !== 1) throw invalidArgument(`verity superblock version ${b.readUInt32LE(8)} (expected 1)`, { offset: 8 });
  const saltSize = b.readUInt16LE(80);
  if (saltSize > 256) throw invalidArgument(`verity salt size ${saltSize} > 256`, { offset: 80 });
  return {
    dataBlocks: Number(b.readBigUInt64LE(72)),
    salt: Buffer.from(b.subarray(88, 88 + saltSize)),
    uuid: Buffer.from(b.subarray(16, 32)),
    algorithm: b.toString('latin1', 32, 64).replace(/\0+$/, ''),
  };
}
