/**
 * An empty, writable ext4 filesystem of a given size: what LCOW's scratch disk holds
 * (upstream runs `mkfs.ext4` without a journal inside a utility VM; we lay the filesystem
 * out ourselves so any host can make it). Facts: the ext4 on-disk layout as documented in
 * the kernel's Documentation/filesystems/ext4 (superblock, group descriptors, bitmaps,
 * inode table, extents, linear directories) and e2fsprogs' mke2fs defaults.
 *
 * Layout: 4 KiB blocks, 32768 blocks per group, 256-byte inodes, one inode per 16 KiB,
 * `sparse_super` backups (groups 0, 1 and powers of 3, 5, 7), no resize inode, no journal,
 * `flex_bg` with 16 groups per flex group (bitmaps and inode tables of a flex group packed
 * at its start), extents, `dir_index`, `filetype`, `ext_attr`, `large_file`, `huge_file`,
 * `dir_nlink`, `extra_isize`. The root directory and a 16 KiB `lost+found`, as mke2fs makes.
 * No checksums (no `metadata_csum`/`uninit_bg`): every bitmap is exact, so the image is
 * valid for any ext4 driver, and the non-zero metadata lives in a few clusters — an
 * image written into a dynamic VHDX allocates only those.
 *
 * The result is a list of non-zero extents (offset, bytes); everything else is zero.
 * Deterministic: UUID and hash seed are derived from the size and label unless given.
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../../services/errdefs.js';

export const EXT4_BLOCK_SIZE = 4096;
const BLOCKS_PER_GROUP = 32768;
const INODE_SIZE = 256;
const INODE_RATIO = 16384;
const FLEX_GROUPS = 16;
const FIRST_INO = 11;
const ROOT_INO = 2;
const LOST_FOUND_INO = 11;
const LOST_FOUND_BLOCKS = 4;
const GDT_ENTRY_SIZE = 32;
/** Without the 64bit feature block numbers are 32-bit. */
export const MKFS_MAX_SIZE = 2 ** 32 * EXT4_BLOCK_SIZE - EXT4_BLOCK_SIZE;
/** Smallest filesystem we make: one group holding its metadata and a little room. */
export const MKFS_MIN_SIZE = 2 * 1024 * 1024;

const COMPAT_EXT_ATTR = 0x8;
const COMPAT_DIR_INDEX = 0x20;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_EXTENTS = 0x40;
const INCOMPAT_FLEX_BG = 0x200;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_LARGE_FILE = 0x2;
const RO_COMPAT_HUGE_FILE = 0x8;
const RO_COMPAT_DIR_NLINK = 0x20;
const RO_COMPAT_EXTRA_ISIZE = 0x40;
const INODE_FLAG_EXTENTS = 0x80000;
const FT_DIR = 2;

export interface MkfsOptions {
  /** volume label (≤ 16 bytes) */
  label?: string;
  /** 16-byte UUID; default derived from size and label */
  uuid?: Buffer;
  /** inode and superblock times, seconds since the epoch (default 0: deterministic) */
  time?: number;
}

export interface Ext4Extent {
  offset: number;
  data: Buffer;
}

export interface EmptyExt4 {
  /** filesystem size in bytes (a multiple of 4 KiB, ≤ the size asked for) */
  size: number;
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  freeBlocks: number;
  freeInodes: number;
  uuid: Buffer;
  /** the non-zero parts of the image, sorted by offset, not overlapping */
  extents: Ext4Extent[];
}

interface GroupLayout {
  start: number;
  blocks: number;
  hasSuper: boolean;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  used: Set<number> | undefined;
  usedCount: number;
}

function isPowerOf(n: number, b: number): boolean {
  while (n > 1 && n % b === 0) n /= b;
  return n === 1;
}

/** sparse_super: superblock backups in groups 0, 1 and powers of 3, 5 and 7. */
export function groupHasSuperblock(g: number): boolean {
  return g <= 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

function plan(blocks: number) {
  const groups = Math.ceil(blocks / BLOCKS_PER_GROUP);
  const inodesPerGroup = Math.min(
    BLOCKS_PER_GROUP,
    Math.max(16, Math.ceil((Math.min(blocks, BLOCKS_PER_GROUP) * EXT4_BLOCK_SIZE) / INODE_RATIO / 16) * 16),
  );
  const inodeTableBlocks = (inodesPerGroup * INODE_SIZE) / EXT4_BLOCK_SIZE;
  const gdtBlocks = Math.ceil((groups * GDT_ENTRY_SIZE) / EXT4_BLOCK_SIZE);
  const layout: GroupLayout[] = [];
  for (let g = 0; g < groups; g++) {
    const start = g * BLOCKS_PER_GROUP;
    layout.push({
      start,
      blocks: Math.min(BLOCKS_PER_GROUP, blocks - start),
      hasSuper: groupHasSuperblock(g),
      blockBitmap: 0,
      inodeBitmap: 0,
      inodeTable: 0,
      used: undefined,
      usedCount: 0,
    });
  }
  // flex_bg: the leader of each flex group holds the bitmaps and inode tables of its members
  for (let leader = 0; leader < groups; leader += FLEX_GROUPS) {
    const members = Math.min(FLEX_GROUPS, groups - leader);
    let next = layout[leader]!.start + (layout[leader]!.hasSuper ? 1 + gdtBlocks : 0);
    for (let i = 0; i < members; i++) layout[leader + i]!.blockBitmap = next++;
    for (let i = 0; i < members; i++) layout[leader + i]!.inodeBitmap = next++;
    for (let i = 0; i < members; i++) {
      layout[leader + i]!.inodeTable = next;
      next += inodeTableBlocks;
    }
  }
  return { groups, inodesPerGroup, inodeTableBlocks, gdtBlocks, layout };
}

/** Lays out an empty ext4 filesystem of (at most) `size` bytes. */
export function makeEmptyExt4(size: number, opts: MkfsOptions = {}): EmptyExt4 {
  if (!Number.isSafeInteger(size) || size < MKFS_MIN_SIZE) {
    throw invalidArgument(`ext4: filesystem size ${size} is below the minimum ${MKFS_MIN_SIZE} bytes`, { size });
  }
  if (size > MKFS_MAX_SIZE) {
    throw invalidArgument(`ext4: filesystem size ${size} exceeds ${MKFS_MAX_SIZE} bytes (16 TiB without the 64bit feature)`, { size });
  }
  const label = Buffer.from(opts.label ?? '', 'utf8');
  if (label.length > 16) throw invalidArgument(`ext4: label "${opts.label}" is longer than 16 bytes`, { label: opts.label });
  const time = opts.time ?? 0;

  let blocks = Math.floor(size / EXT4_BLOCK_SIZE);
  let p = plan(blocks);
  // metadata of the flex groups must lie inside the filesystem, and the last group must
  // keep some room of its own (mke2fs drops a last group smaller than its overhead + 50)
  for (;;) {
    const last = p.layout[p.groups - 1]!;
    const metaEnd = Math.max(...p.layout.map((g) => g.inodeTable + p.inodeTableBlocks));
    const lastOverhead = (last.hasSuper ? 1 + p.gdtBlocks : 0) + 50;
    if (metaEnd <= blocks && (p.groups === 1 || last.blocks >= lastOverhead)) break;
    if (p.groups === 1) throw invalidArgument(`ext4: ${size} bytes cannot hold the filesystem metadata`, { size });
    blocks = (p.groups - 1) * BLOCKS_PER_GROUP;
    p = plan(blocks);
  }
  const { groups, inodesPerGroup, inodeTableBlocks, gdtBlocks, layout } = p;

  // which blocks are used, group by group
  const markUsed = (b: number) => {
    const g = layout[Math.floor(b / BLOCKS_PER_GROUP)]!;
    (g.used ??= new Set()).add(b - g.start);
  };
  for (const g of layout) {
    if (g.hasSuper) for (let b = 0; b < 1 + gdtBlocks; b++) markUsed(g.start + b);
    markUsed(g.blockBitmap);
    markUsed(g.inodeBitmap);
    for (let b = 0; b < inodeTableBlocks; b++) markUsed(g.inodeTable + b);
  }
  const firstData = layout[0]!.inodeTable + Math.min(groups, FLEX_GROUPS) * inodeTableBlocks;
  const rootBlock = firstData;
  const lostFoundBlock = firstData + 1;
  markUsed(rootBlock);
  for (let i = 0; i < LOST_FOUND_BLOCKS; i++) markUsed(lostFoundBlock + i);
  for (const g of layout) g.usedCount = g.used?.size ?? 0;

  const totalInodes = inodesPerGroup * groups;
  const usedInodes = FIRST_INO; // 1..10 reserved, 11 lost+found
  const freeBlocks = layout.reduce((n, g) => n + g.blocks - g.usedCount, 0);
  const freeInodes = totalInodes - usedInodes;
  const uuid =
    opts.uuid ?? createHash('sha256').update(`winsnap ext4 uuid\0${blocks}\0${label.toString('hex')}`).digest().subarray(0, 16);
  if (uuid.length !== 16) throw invalidArgument('ext4: uuid must be 16 bytes');
  const uuidV4 = Buffer.from(uuid);
  uuidV4[6] = (uuidV4[6]! & 0x0f) | 0x40;
  uuidV4[8] = (uuidV4[8]! & 0x3f) | 0x80;
  const hashSeed = createHash('sha256').update('winsnap ext4 hash seed\0').update(uuidV4).digest().subarray(0, 16);

  // superblock (1024 bytes)
  const superblock = (groupNr: number): Buffer => {
    const s = Buffer.alloc(1024);
    s.writeUInt32LE(totalInodes, 0);
    s.writeUInt32LE(blocks, 4);
    s.writeUInt32LE(0, 8); // reserved blocks: none (a scratch belongs to the container)
    s.writeUInt32LE(freeBlocks, 12);
    s.writeUInt32LE(freeInodes, 16);
    s.writeUInt32LE(0, 20); // first data block (4 KiB blocks)
    s.writeUInt32LE(2, 24); // log2(block size) - 10
    s.writeUInt32LE(2, 28); // cluster size = block size
    s.writeUInt32LE(BLOCKS_PER_GROUP, 32);
    s.writeUInt32LE(BLOCKS_PER_GROUP, 36);
    s.writeUInt32LE(inodesPerGroup, 40);
    s.writeUInt32LE(0, 44); // mount time
    s.writeUInt32LE(time, 48); // write time
    s.writeUInt16LE(0, 52);
    s.writeUInt16LE(0xffff, 54); // max mount count: -1 (no forced checks)
    s.writeUInt16LE(0xef53, 56);
    s.writeUInt16LE(1, 58); // state: clean
    s.writeUInt16LE(1, 60); // errors: continue
    s.writeUInt32LE(time, 64); // last check
    s.writeUInt32LE(0, 72); // creator OS: Linux
    s.writeUInt32LE(1, 76); // dynamic revision
    s.writeUInt32LE(FIRST_INO, 84);
    s.writeUInt16LE(INODE_SIZE, 88);
    s.writeUInt16LE(groupNr, 90);
    s.writeUInt32LE(COMPAT_EXT_ATTR | COMPAT_DIR_INDEX, 92);
    s.writeUInt32LE(INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_FLEX_BG, 96);
    s.writeUInt32LE(RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_HUGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE, 100);
    uuidV4.copy(s, 104);
    label.copy(s, 120);
    hashSeed.copy(s, 236);
    s.writeUInt8(1, 252); // default hash: half_md4
    s.writeUInt32LE(time, 264); // mkfs time
    s.writeUInt16LE(32, 348); // min extra isize
    s.writeUInt16LE(32, 350); // want extra isize
    s.writeUInt32LE(0x1, 352); // signed directory hash (as mke2fs on x86)
    s.writeUInt8(Math.log2(FLEX_GROUPS), 372);
    return s;
  };

  const gdt = Buffer.alloc(gdtBlocks * EXT4_BLOCK_SIZE);
  layout.forEach((g, i) => {
    const o = i * GDT_ENTRY_SIZE;
    gdt.writeUInt32LE(g.blockBitmap, o);
    gdt.writeUInt32LE(g.inodeBitmap, o + 4);
    gdt.writeUInt32LE(g.inodeTable, o + 8);
    gdt.writeUInt16LE(g.blocks - g.usedCount, o + 12);
    gdt.writeUInt16LE(inodesPerGroup - (i === 0 ? usedInodes : 0), o + 14);
    gdt.writeUInt16LE(i === 0 ? 2 : 0, o + 16); // directories: root and lost+found
  });

  const extents: Ext4Extent[] = [];
  const put = (block: number, data: Buffer, within = 0) => extents.push({ offset: block * EXT4_BLOCK_SIZE + within, data });

  for (let g = 0; g < groups; g++) {
    const lg = layout[g]!;
    if (!lg.hasSuper) continue;
    if (g === 0) put(0, superblock(0), 1024);
    else put(lg.start, superblock(g));
    put(lg.start + 1, gdt);
  }

  // bitmaps: a flex group's bitmaps are consecutive blocks, so each run is one extent
  for (let leader = 0; leader < groups; leader += FLEX_GROUPS) {
    const members = layout.slice(leader, leader + FLEX_GROUPS);
    const bb = Buffer.alloc(members.length * EXT4_BLOCK_SIZE);
    const ib = Buffer.alloc(members.length * EXT4_BLOCK_SIZE);
    members.forEach((g, i) => {
      const base = i * EXT4_BLOCK_SIZE;
      for (const b of g.used ?? []) bb[base + (b >> 3)]! |= 1 << (b & 7);
      for (let b = g.blocks; b < EXT4_BLOCK_SIZE * 8; b++) bb[base + (b >> 3)]! |= 1 << (b & 7); // padding
      if (leader + i === 0) for (let n = 0; n < usedInodes; n++) ib[base + (n >> 3)]! |= 1 << (n & 7);
      for (let n = inodesPerGroup; n < EXT4_BLOCK_SIZE * 8; n++) ib[base + (n >> 3)]! |= 1 << (n & 7); // padding
    });
    put(members[0]!.blockBitmap, bb);
    put(members[0]!.inodeBitmap, ib);
  }

  // inodes 2 (root) and 11 (lost+found) in group 0's inode table
  const dirInode = (mode: number, links: number, dataBlock: number, nBlocks: number): Buffer => {
    const n = Buffer.alloc(INODE_SIZE);
    n.writeUInt16LE(0o040000 | mode, 0);
    n.writeUInt32LE(nBlocks * EXT4_BLOCK_SIZE, 4);
    for (const o of [8, 12, 16]) n.writeUInt32LE(time, o); // atime, ctime, mtime
    n.writeUInt16LE(links, 26);
    n.writeUInt32LE((nBlocks * EXT4_BLOCK_SIZE) / 512, 28);
    n.writeUInt32LE(INODE_FLAG_EXTENTS, 32);
    n.writeUInt16LE(0xf30a, 40); // extent header: magic, entries, max, depth
    n.writeUInt16LE(1, 42);
    n.writeUInt16LE(4, 44);
    n.writeUInt16LE(0, 46);
    n.writeUInt32LE(0, 52); // extent: logical 0, length, start
    n.writeUInt16LE(nBlocks, 56);
    n.writeUInt16LE(0, 58);
    n.writeUInt32LE(dataBlock, 60);
    n.writeUInt16LE(32, 128); // extra isize
    n.writeUInt32LE(time, 144); // crtime
    return n;
  };
  const table = Buffer.alloc(LOST_FOUND_INO * INODE_SIZE);
  dirInode(0o755, 3, rootBlock, 1).copy(table, (ROOT_INO - 1) * INODE_SIZE);
  dirInode(0o700, 2, lostFoundBlock, LOST_FOUND_BLOCKS).copy(table, (LOST_FOUND_INO - 1) * INODE_SIZE);
  put(layout[0]!.inodeTable, table);

  // directory blocks
  const dirent = (buf: Buffer, o: number, ino: number, recLen: number, name: string): number => {
    buf.writeUInt32LE(ino, o);
    buf.writeUInt16LE(recLen, o + 4);
    buf.writeUInt8(name.length, o + 6);
    buf.writeUInt8(name.length ? FT_DIR : 0, o + 7);
    buf.write(name, o + 8, 'latin1');
    return o + recLen;
  };
  const root = Buffer.alloc(EXT4_BLOCK_SIZE);
  let o = dirent(root, 0, ROOT_INO, 12, '.');
  o = dirent(root, o, ROOT_INO, 12, '..');
  dirent(root, o, LOST_FOUND_INO, EXT4_BLOCK_SIZE - o, 'lost+found');
  const lf = Buffer.alloc(LOST_FOUND_BLOCKS * EXT4_BLOCK_SIZE);
  o = dirent(lf, 0, LOST_FOUND_INO, 12, '.');
  dirent(lf, o, ROOT_INO, EXT4_BLOCK_SIZE - o, '..');
  for (let b = 1; b < LOST_FOUND_BLOCKS; b++) dirent(lf, b * EXT4_BLOCK_SIZE, 0, EXT4_BLOCK_SIZE, '');
  put(rootBlock, root);
  put(lostFoundBlock, lf);

  extents.sort((a, b) => a.offset - b.offset);
  return {
    size: blocks * EXT4_BLOCK_SIZE,
    blocks,
    groups,
    inodesPerGroup,
    freeBlocks,
    freeInodes,
    uuid: uuidV4,
    extents,
  };
}
