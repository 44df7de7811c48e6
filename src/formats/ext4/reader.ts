/**
 * An ext4 reader for the images our writer makes (and other non-journaled, extent-based
 * ext4 images with linear directories): superblock, group descriptors (32 or 64 bytes),
 * inodes, extent trees, directories, in-inode and block xattrs, fast and slow symlinks and
 * device numbers — enough to walk the tree and turn it back into a tar. Every offset is
 * bounds-checked: a corrupt image gives InvalidArgument naming the offset, never a read
 * outside the image. Facts: the kernel's Documentation/filesystems/ext4.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { invalidArgument, notImplemented } from '../../services/errdefs.js';
import type { TarTime } from '../tar/types.js';
import { decodeXattrEntries, XATTR_MAGIC, type Xattr } from './xattr.js';

export interface Ext4Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  atime: TarTime;
  mtime: TarTime;
  ctime: TarTime;
  flags: number;
  block: Buffer;
  xattrBlock: number;
  xattrs: Xattr[];
}

export interface Ext4DirEntry {
  name: string;
  ino: number;
  type: number;
}

const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export class Ext4Reader {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly blockSize: number,
    readonly blocks: number,
    readonly inodesPerGroup: number,
    readonly inodeSize: number,
    private readonly gdt: Buffer,
    private readonly descSize: number,
    readonly inodeCount: number,
  ) {}

  static async open(path: string, opts: { offset?: number } = {}): Promise<Ext4Reader> {
    const fh = await open(path, 'r');
    try {
      const base = opts.offset ?? 0;
      const size = (await fh.stat()).size - base;
      const sb = Buffer.alloc(1024);
      if ((await fh.read(sb, 0, 1024, base + 1024)).bytesRead !== 1024) throw invalidArgument('ext4: image too small for a superblock', { offset: 1024 });
      if (sb.readUInt16LE(56) !== 0xef53) throw invalidArgument('ext4: bad superblock magic', { offset: 1024 + 56 });
      const logBlock = sb.readUInt32LE(24);
      if (logBlock > 6) throw invalidArgument(`ext4: block size 2^${10 + logBlock} unsupported`, { offset: 1024 + 24 });
      const blockSize = 1024 << logBlock;
      const incompat = sb.readUInt32LE(96);
      if (incompat & 0x4) throw notImplemented('ext4: images that need journal recovery are not supported');
      if (incompat & ~(0x2 | 0x40 | 0x80 | 0x200 | 0x8000 | 0x10)) throw notImplemented(`ext4: incompatible features 0x${incompat.toString(16)} are not supported`);
      const is64 = (incompat & 0x80) !== 0;
      const blocks = sb.readUInt32LE(4) + (is64 ? sb.readUInt32LE(336) * 2 ** 32 : 0);
      const bpg = sb.readUInt32LE(32);
      const ipg = sb.readUInt32LE(40);
      const inodeCount = sb.readUInt32LE(0);
      const inodeSize = sb.readUInt16LE(88) || 128;
      if (bpg === 0 || ipg === 0 || inodeSize < 128 || inodeSize > blockSize) throw invalidArgument('ext4: implausible geometry', { offset: 1024 });
      if (blocks * blockSize > size) throw invalidArgument(`ext4: ${blocks} blocks of ${blockSize} bytes exceed the ${size}-byte image`, { offset: 1028 });
      const groups = Math.ceil((blocks - sb.readUInt32LE(20)) / bpg);
      const descSize = is64 ? sb.readUInt16LE(254) || 64 : 32;
      const gdtAt = (sb.readUInt32LE(20) + 1) * blockSize;
      const gdt = Buffer.alloc(groups * descSize);
      if ((await fh.read(gdt, 0, gdt.length, base + gdtAt)).bytesRead !== gdt.length) throw invalidArgument('ext4: truncated group descriptors', { offset: gdtAt });
      const r = new Ext4Reader(fh, size, blockSize, blocks, ipg, inodeSize, gdt, descSize, inodeCount);
      r.base = base;
      return r;
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  private base = 0;

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** Reads `len` bytes at byte `pos` of the filesystem, bounds-checked. */
  async readAt(pos: number, len: number, what: string): Promise<Buffer> {
    if (pos < 0 || len < 0 || pos + len > this.blocks * this.blockSize) throw invalidArgument(`ext4: ${what} at ${pos} (+${len}) lies outside the filesystem`, { offset: pos });
    const b = Buffer.alloc(len);
    const { bytesRead } = await this.fh.read(b, 0, len, this.base + pos);
    if (bytesRead !== len) throw invalidArgument(`ext4: short read of ${what} at ${pos}`, { offset: pos });
    return b;
  }

  async inode(ino: number): Promise<Ext4Inode> {
    if (ino < 1 || ino > this.inodeCount) throw invalidArgument(`ext4: inode ${ino} out of range 1..${this.inodeCount}`);
    const g = Math.floor((ino - 1) / this.inodesPerGroup);
    const d = g * this.descSize;
    const table = this.gdt.readUInt32LE(d + 8) + (this.descSize >= 64 ? this.gdt.readUInt32LE(d + 40) * 2 ** 32 : 0);
    const pos = table * this.blockSize + ((ino - 1) % this.inodesPerGroup) * this.inodeSize;
    const b = await this.readAt(pos, this.inodeSize, `inode ${ino}`);
    const extra = this.inodeSize > 128 ? b.readUInt16LE(128) : 0;
    if (128 + extra > this.inodeSize) throw invalidArgument(`ext4: inode ${ino} extra size ${extra} too large`, { offset: pos + 128 });
    const time = (at: number, extraAt: number): TarTime => {
      const lo = BigInt(b.readInt32LE(at));
      if (extraAt + 4 > 128 + extra) return { sec: lo, nsec: 0 };
      const x = b.readUInt32LE(extraAt);
      return { sec: lo + (BigInt(x & 3) << 32n), nsec: x >>> 2 };
    };
    const xattrBlock = b.readUInt32LE(104) + b.readUInt16LE(118) * 2 ** 32;
    const xattrs: Xattr[] = [];
    const ibody = 128 + extra;
    if (ibody + 4 <= this.inodeSize && b.readUInt32LE(ibody) === XATTR_MAGIC) xattrs.push(...decodeXattrEntries(b, ibody + 4, ibody + 4, this.inodeSize, `inode ${ino} xattrs`));
    if (xattrBlock) {
      const xb = await this.readAt(xattrBlock * this.blockSize, this.blockSize, `xattr block of inode ${ino}`);
      if (xb.readUInt32LE(0) !== XATTR_MAGIC) throw invalidArgument(`ext4: inode ${ino}: bad xattr block magic`, { offset: xattrBlock * this.blockSize });
      xattrs.push(...decodeXattrEntries(xb, 32, 0, this.blockSize, `xattr block ${xattrBlock}`));
    }
    return {
      ino,
      mode: b.readUInt16LE(0),
      uid: b.readUInt16LE(2) | (b.readUInt16LE(120) << 16),
      gid: b.readUInt16LE(24) | (b.readUInt16LE(122) << 16),
      size: b.readUInt32LE(4) + b.readUInt32LE(108) * 2 ** 32,
      links: b.readUInt16LE(26),
      atime: time(8, 140),
      ctime: time(12, 132),
      mtime: time(16, 136),
      flags: b.readUInt32LE(32),
      block: Buffer.from(b.subarray(40, 100)),
      xattrBlock,
      xattrs,
    };
  }

  /** The extents of an inode: [logical, length, physical], in logical order. */
  async extents(inode: Ext4Inode): Promise<[number, number, number][]> {
    if (!(inode.flags & 0x80000)) throw notImplemented(`ext4: inode ${inode.ino} does not use extents (block maps are not supported)`);
    const out: [number, number, number][] = [];
    const visit = async (node: Buffer, where: string, depthLeft: number) => {
      if (node.readUInt16LE(0) !== 0xf30a) throw invalidArgument(`ext4: inode ${inode.ino}: bad extent header in ${where}`);
      const entries = node.readUInt16LE(2);
      const depth = node.readUInt16LE(6);
      if (depth > depthLeft || 12 + entries * 12 > node.length) throw invalidArgument(`ext4: inode ${inode.ino}: corrupt extent node in ${where}`);
      for (let i = 0; i < entries; i++) {
        const at = 12 + i * 12;
        if (depth === 0) {
          let len = node.readUInt16LE(at + 4);
          if (len > 32768) len -= 32768; // uninitialized extent: reads as zeros, but we keep its place
          out.push([node.readUInt32LE(at), len, node.readUInt16LE(at + 6) * 2 ** 32 + node.readUInt32LE(at + 8)]);
        } else {
          const child = node.readUInt32LE(at + 4) + node.readUInt16LE(at + 8) * 2 ** 32;
          await visit(await this.readAt(child * this.blockSize, this.blockSize, `extent block ${child}`), `block ${child}`, depth - 1);
        }
      }
    };
    await visit(inode.block, 'the inode', 5);
    return out;
  }

  /** File data (holes read as zeros), in chunks. */
  async *read(inode: Ext4Inode): AsyncGenerator<Buffer> {
    if (inode.flags & 0x10000000) {
      // inline data: i_block, then the `system.data` xattr
      const rest = inode.xattrs.find((x) => x.name === 'system.data')?.value ?? Buffer.alloc(0);
      const all = Buffer.concat([inode.block, rest]);
      if (inode.size > 60 + rest.length) throw invalidArgument(`ext4: inline inode ${inode.ino} claims ${inode.size} bytes, holds ${60 + rest.length}`);
      yield all.subarray(0, inode.size);
      return;
    }
    const exts = await this.extents(inode);
    let pos = 0;
    const bs = this.blockSize;
    for (const [lb, len, phys] of exts) {
      const start = lb * bs;
      if (start < pos) throw invalidArgument(`ext4: inode ${inode.ino}: overlapping extents`);
      while (pos < Math.min(start, inode.size)) {
        const n = Math.min(1 << 20, Math.min(start, inode.size) - pos);
        yield Buffer.alloc(n);
        pos += n;
      }
      let done = 0;
      while (done < len * bs && pos < inode.size) {
        const n = Math.min(1 << 20, len * bs - done, inode.size - pos);
        yield await this.readAt(phys * bs + done, n, `data of inode ${inode.ino}`);
        done += n;
        pos += n;
      }
    }
    while (pos < inode.size) {
      const n = Math.min(1 << 20, inode.size - pos);
      yield Buffer.alloc(n);
      pos += n;
    }
  }

  async readAll(inode: Ext4Inode): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.read(inode)) parts.push(c);
    return Buffer.concat(parts);
  }

  async readdir(inode: Ext4Inode): Promise<Ext4DirEntry[]> {
    if ((inode.mode & S_IFMT) !== S_IFDIR) throw invalidArgument(`ext4: inode ${inode.ino} is not a directory`);
    if (inode.flags & 0x1000) throw notImplemented(`ext4: hashed (htree) directory inode ${inode.ino} is not supported`);
    const data = await this.readAll(inode);
    const out: Ext4DirEntry[] = [];
    for (let pos = 0; pos < data.length; ) {
      if (pos + 8 > data.length) throw invalidArgument(`ext4: directory inode ${inode.ino}: truncated entry at ${pos}`);
      const ino = data.readUInt32LE(pos);
      const rec = data.readUInt16LE(pos + 4);
      const nameLen = data.readUInt8(pos + 6);
      if (rec < 8 || pos + rec > data.length || 8 + nameLen > rec) throw invalidArgument(`ext4: directory inode ${inode.ino}: bad entry at ${pos}`);
      if (ino !== 0) {
        const name = data.toString('utf8', pos + 8, pos + 8 + nameLen);
        if (name !== '.' && name !== '..') out.push({ name, ino, type: data.readUInt8(pos + 7) });
      }
      pos += rec;
    }
    return out;
  }

  async symlinkTarget(inode: Ext4Inode): Promise<string> {
    if (inode.flags & 0x80000) return (await this.readAll(inode)).toString('utf8');
    if (inode.size > 60) throw invalidArgument(`ext4: fast symlink inode ${inode.ino} claims ${inode.size} bytes`);
    return inode.block.toString('utf8', 0, inode.size);
  }

  device(inode: Ext4Inode): { major: number; minor: number } {
    const old = inode.block.readUInt32LE(0);
    if (old !== 0) return { major: (old >>> 8) & 0xff, minor: old & 0xff };
    const n = inode.block.readUInt32LE(4);
    return { major: (n >>> 8) & 0xfff, minor: (n & 0xff) | ((n >>> 12) & 0xfff00) };
  }

  /** Pre-order walk from the root (an entry, then its contents), children in directory order; paths without a leading '/'. */
  async *walk(): AsyncGenerator<{ path: string; inode: Ext4Inode }> {
    const seen = new Set<number>();
    const self = this;
    async function* dir(path: string, ino: number, depth: number): AsyncGenerator<{ path: string; inode: Ext4Inode }> {
      if (seen.has(ino)) throw invalidArgument(`ext4: directory inode ${ino} is reachable twice`);
      if (depth > 4096) throw invalidArgument('ext4: directories nested deeper than 4096 levels');
      seen.add(ino);
      for (const e of await self.readdir(await self.inode(ino))) {
        const p = path ? `${path}/${e.name}` : e.name;
        const inode = await self.inode(e.ino);
        yield { path: p, inode };
        if ((inode.mode & S_IFMT) === S_IFDIR) yield* dir(p, e.ino, depth + 1);
      }
    }
    yield* dir('', 2, 0);
  }
}

export const fileType = (mode: number) => mode & S_IFMT;
