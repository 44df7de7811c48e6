/**
 * tar → ext4, streaming ("compact ext4", as hcsshim's tar2ext4 lays it out; facts:
 * windows-layer-formats.md §4.2–4.3 and the kernel's ext4 on-disk documentation; the code
 * and its fixes are ours):
 *
 * - 4 KiB blocks, 32768 blocks per group, 256-byte inodes (extra_isize 32), 32-byte group
 *   descriptors; no journal, no resize inode, no checksums, linear directories;
 *   `sparse_super2` with no backups, `flex_bg` covering every group, `readonly`;
 * - layout: block 0 (superblock, written last), the group descriptor area sized for the
 *   maximum disk size, then file data in tar order (each file's non-zero blocks contiguous;
 *   all-zero blocks stay holes, so sparse files cost nothing), then directories, extent tree
 *   blocks, xattr blocks and long symlink targets, then inode tables and bitmaps;
 * - tar semantics: a later entry replaces an earlier one at the same path (a directory over a
 *   directory keeps its children), missing parents are created (mode 0755, owner 0, zero
 *   times — deterministic), hard links may point to any earlier entry (symlinks too);
 * - inode numbers follow creation order (2 root, 11 lost+found, 12…); unreachable inodes and
 *   their blocks are dropped, so every bitmap is exact;
 * - xattrs from PAX `SCHILY.xattr.*` (binary values), in the inode first, then one block;
 * - optional whiteout conversion (`.wh.X` → 0/0 character device, `.wh..wh..opq` →
 *   `trusted.overlay.opaque=y`), and a maximum size.
 * Memory: metadata of every inode (no file data). Deterministic: the UUID is derived from a
 * caller-supplied seed (the tar digest), nothing depends on the clock.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { invalidArgument } from '../../services/errdefs.js';
import type { TarEntry } from '../tar/reader.js';
import type { TarTime } from '../tar/types.js';
import { encodeXattrBlock, placeXattrs, writeInInodeXattrs, type Xattr } from './xattr.js';

export const BLOCK = 4096;
const BLOCKS_PER_GROUP = 32768;
const INODE_SIZE = 256;
const EXTRA_ISIZE = 32;
const INODES_PER_BLOCK = BLOCK / INODE_SIZE;
const MAX_EXTENT_LEN = 32768;
const EXTENTS_PER_BLOCK = (BLOCK - 12) / 12;
const FIRST_INO = 11;
const GiB = 1024 ** 3;
export const DEFAULT_MAX_DISK_SIZE = 16 * GiB;
export const MAX_DISK_SIZE = 16 * 1024 * GiB;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

const S_IFMT = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 } as const;
const FILE_TYPE = { file: 1, dir: 2, char: 3, block: 4, fifo: 5, symlink: 7 } as const;
type Kind = keyof typeof S_IFMT;

export interface Ext4WriterOptions {
  /** convert overlay whiteouts (`.wh.X`, `.wh..wh..opq`) */
  convertWhiteouts?: boolean;
  /** maximum image size in bytes (default 16 GiB, as tar2ext4's CLI; LCOW uses 128 GiB) */
  maxDiskSize?: number;
  /** store small regular files inside their inodes (inline_data: i_block + `system.data`) */
  inlineData?: boolean;
}

/** Largest file inline data can hold: 60 bytes of i_block + a `system.data` value in the inode. */
export const INLINE_MAX = 60 + 68;
const INLINE_DATA_FL = 0x10000000;

interface Node {
  kind: Kind;
  perm: number;
  uid: number;
  gid: number;
  atime: TarTime;
  mtime: TarTime;
  ctime: TarTime;
  size: number;
  /** [logical block, length, physical block] */
  extents: [number, number, number][];
  dataBlocks: number;
  target?: Buffer;
  devMajor: number;
  devMinor: number;
  xattrs: Map<string, Buffer>;
  children?: Map<string, Node>;
  seq: number;
  ino: number;
  /** inline data (a small file, kept until close) */
  inline?: Buffer;
}

const ZERO_TIME: TarTime = { sec: 0n, nsec: 0 };

export interface Ext4Result {
  /** bytes of the filesystem image */
  size: number;
  blocks: number;
  inodes: number;
  uuid: Buffer;
}

/** Splits a tar name into path components (leading "./" and "/" ignored; ".." refused). */
export function tarPathParts(name: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw invalidArgument(`tar entry "${name}": ".." is not allowed in an ext4 layer`, { entry: name });
    if (Buffer.byteLength(p) > 255) throw invalidArgument(`tar entry "${name}": name component longer than 255 bytes`, { entry: name });
  }
  return parts;
}

export class Ext4Writer {
  private readonly fd: number;
  private readonly maxBlocks: number;
  private readonly gdtReserved: number;
  private next: number;
  private seq = 0;
  private readonly root: Node;
  private buf = Buffer.allocUnsafe(1 << 20);
  private bufLen = 0;
  private bufStart = 0;

  constructor(
    private readonly path: string,
    private readonly opts: Ext4WriterOptions = {},
  ) {
    let max = opts.maxDiskSize ?? DEFAULT_MAX_DISK_SIZE;
    if (max <= 0 || max > MAX_DISK_SIZE) max = MAX_DISK_SIZE;
    this.maxBlocks = Math.ceil(max / BLOCK);
    this.gdtReserved = Math.ceil(Math.ceil(this.maxBlocks / BLOCKS_PER_GROUP) / (BLOCK / 32));
    this.next = 1 + this.gdtReserved;
    this.bufStart = this.next;
    this.fd = openSync(path, 'w');
    this.root = this.newNode('dir', 0o755, 0, 0, ZERO_TIME, ZERO_TIME, ZERO_TIME);
    const lpf = this.newNode('dir', 0o700, 0, 0, ZERO_TIME, ZERO_TIME, ZERO_TIME);
    this.root.children!.set('lost+found', lpf);
  }

  private newNode(kind: Kind, perm: number, uid: number, gid: number, atime: TarTime, mtime: TarTime, ctime: TarTime): Node {
    return {
      kind,
      perm: perm & 0o7777,
      uid,
      gid,
      atime,
      mtime,
      ctime,
      size: 0,
      extents: [],
      dataBlocks: 0,
      devMajor: 0,
      devMinor: 0,
      xattrs: new Map(),
      children: kind === 'dir' ? new Map() : undefined,
      seq: this.seq++,
      ino: 0,
    };
  }

  // ---- sequential block output --------------------------------------------------------------

  private checkSize(blocks: number): void {
    if (blocks > this.maxBlocks) {
      throw invalidArgument(`ext4 image exceeds the maximum disk size of ${this.maxBlocks * BLOCK} bytes`, { size: blocks * BLOCK });
    }
  }

  /** Appends whole blocks at `this.next` (the output is written strictly in block order). */
  private append(data: Buffer): number {
    const first = this.next;
    const blocks = Math.ceil(data.length / BLOCK);
    this.checkSize(first + blocks);
    if (this.bufLen + blocks * BLOCK > this.buf.length) this.flush();
    if (blocks * BLOCK > this.buf.length) {
      this.writeAt(data, first * BLOCK);
      this.bufStart = first + blocks;
    } else {
      data.copy(this.buf, this.bufLen);
      this.buf.fill(0, this.bufLen + data.length, this.bufLen + blocks * BLOCK);
      this.bufLen += blocks * BLOCK;
    }
    this.next += blocks;
    return first;
  }

  private flush(): void {
    if (this.bufLen > 0) this.writeAt(this.buf.subarray(0, this.bufLen), this.bufStart * BLOCK);
    this.bufStart = this.next;
    this.bufLen = 0;
  }

  private writeAt(data: Buffer, pos: number): void {
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off, pos + off);
  }

  // ---- the tree -------------------------------------------------------------------------------

  private lookup(parts: string[]): Node | undefined {
    let n: Node | undefined = this.root;
    for (const p of parts) {
      n = n?.children?.get(p);
      if (!n) return undefined;
    }
    return n;
  }

  /** The directory for `parts` (all but the last), created as tar extraction would. */
  private parentOf(parts: string[], entry: string): Node {
    let n = this.root;
    for (const p of parts.slice(0, -1)) {
      let c = n.children!.get(p);
      if (!c || c.kind !== 'dir') {
        if (c) throw invalidArgument(`tar entry "${entry}": "${p}" is not a directory`, { entry });
        c = this.newNode('dir', 0o755, 0, 0, ZERO_TIME, ZERO_TIME, ZERO_TIME);
        n.children!.set(p, c);
      }
      n = c;
    }
    return n;
  }

  /** Links `node` at `parts`, replacing what was there (a directory over a directory keeps its children). */
  private place(parts: string[], node: Node, entry: string): void {
    if (parts.length === 0) {
      if (node.kind !== 'dir') throw invalidArgument(`tar entry "${entry}": the root must be a directory`, { entry });
      node.children = this.root.children;
      Object.assign(this.root, { ...node, children: this.root.children, seq: this.root.seq });
      return;
    }
    const dir = this.parentOf(parts, entry);
    const name = parts[parts.length - 1]!;
    const old = dir.children!.get(name);
    if (old && old.kind === 'dir' && node.kind === 'dir') {
      Object.assign(old, { ...node, children: old.children, seq: old.seq });
      return;
    }
    dir.children!.set(name, node);
  }

  private xattrsOf(e: TarEntry): Map<string, Buffer> {
    const m = new Map<string, Buffer>();
    for (const r of [...e.header.globalPax, ...e.header.pax]) {
      if (r.key.startsWith('SCHILY.xattr.')) m.set(r.key.slice('SCHILY.xattr.'.length), r.value);
    }
    return m;
  }

  /** Adds one tar entry (its body is consumed for regular files). */
  async add(e: TarEntry): Promise<void> {
    const h = e.header;
    const name = h.name;
    let parts = tarPathParts(name);
    const atime = h.atime ?? h.mtime;
    const ctime = h.ctime ?? h.mtime;
    const last = parts[parts.length - 1] ?? '';
    if (this.opts.convertWhiteouts && last.startsWith('.wh.')) {
      if (last === '.wh..wh..opq') {
        const dir = this.parentOf(parts, name);
        dir.xattrs.set('trusted.overlay.opaque', Buffer.from('y'));
        return;
      }
      parts = [...parts.slice(0, -1), last.slice('.wh.'.length)];
      const n = this.newNode('char', 0, 0, 0, ZERO_TIME, ZERO_TIME, ZERO_TIME);
      this.place(parts, n, name);
      return;
    }
    switch (h.type) {
      case 'dir': {
        const n = this.newNode('dir', h.mode, h.uid, h.gid, atime, h.mtime, ctime);
        n.xattrs = this.xattrsOf(e);
        this.place(parts, n, name);
        return;
      }
      case 'link': {
        const target = this.lookup(tarPathParts(h.linkname));
        if (!target) throw invalidArgument(`tar entry "${name}": hard link target "${h.linkname}" does not exist`, { entry: name });
        if (target.kind === 'dir') throw invalidArgument(`tar entry "${name}": hard link to a directory`, { entry: name });
        if (parts.length === 0) throw invalidArgument(`tar entry "${name}": cannot link over the root`, { entry: name });
        const dir = this.parentOf(parts, name);
        const old = dir.children!.get(parts[parts.length - 1]!);
        if (old?.kind === 'dir') throw invalidArgument(`tar entry "${name}": a hard link cannot replace a directory`, { entry: name });
        dir.children!.set(parts[parts.length - 1]!, target);
        return;
      }
      case 'symlink': {
        const n = this.newNode('symlink', 0o777, h.uid, h.gid, atime, h.mtime, ctime);
        n.target = Buffer.from(h.linkname, 'utf8');
        if (n.target.length === 0 || n.target.length >= BLOCK) throw invalidArgument(`tar entry "${name}": symlink target length ${n.target.length}`, { entry: name });
        n.size = n.target.length;
        n.xattrs = this.xattrsOf(e);
        this.place(parts, n, name);
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        const n = this.newNode(h.type, h.mode, h.uid, h.gid, atime, h.mtime, ctime);
        n.devMajor = h.devmajor;
        n.devMinor = h.devminor;
        n.xattrs = this.xattrsOf(e);
        this.place(parts, n, name);
        return;
      }
      case 'file':
      case 'contiguous':
      case 'unknown': {
        const n = this.newNode('file', h.mode, h.uid, h.gid, atime, h.mtime, ctime);
        n.xattrs = this.xattrsOf(e);
        await this.writeData(n, e);
        this.place(parts, n, name);
        return;
      }
      default:
        throw invalidArgument(`tar entry "${name}": type ${h.type} cannot be stored in ext4`, { entry: name });
    }
  }

  /** Streams a regular file's body: non-zero blocks appended contiguously, zero blocks left as holes. */
  private async writeData(n: Node, e: TarEntry): Promise<void> {
    if (this.opts.inlineData && e.header.size <= INLINE_MAX) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(Buffer.from(c));
      n.inline = Buffer.concat(parts);
      n.size = n.inline.length;
      if (n.size !== e.header.size) throw invalidArgument(`tar entry "${e.header.name}": body has ${n.size} of ${e.header.size} bytes`, { entry: e.header.name });
      return;
    }
    let logical = 0;
    let partial = Buffer.alloc(0);
    const addBlock = (b: Buffer) => {
      if (!b.equals(ZERO_BLOCK)) {
        const phys = this.append(b);
        const lastExt = n.extents[n.extents.length - 1];
        if (lastExt && lastExt[0] + lastExt[1] === logical && lastExt[2] + lastExt[1] === phys && lastExt[1] < MAX_EXTENT_LEN) lastExt[1]++;
        else n.extents.push([logical, 1, phys]);
        n.dataBlocks++;
      }
      logical++;
    };
    for await (const chunk of e.body) {
      let c = chunk;
      n.size += c.length;
      if (partial.length > 0) {
        const need = BLOCK - partial.length;
        partial = Buffer.concat([partial, c.subarray(0, need)]);
        c = c.subarray(need);
        if (partial.length < BLOCK) continue;
        addBlock(partial);
        partial = Buffer.alloc(0);
      }
      let off = 0;
      for (; off + BLOCK <= c.length; off += BLOCK) addBlock(c.subarray(off, off + BLOCK));
      if (off < c.length) partial = Buffer.from(c.subarray(off));
    }
    if (partial.length > 0) {
      const b = Buffer.alloc(BLOCK);
      partial.copy(b);
      addBlock(b);
    }
    if (n.size !== e.header.size) throw invalidArgument(`tar entry "${e.header.name}": body has ${n.size} of ${e.header.size} bytes`, { entry: e.header.name });
  }

  // ---- close: metadata, inode tables, bitmaps, descriptors, superblock --------------------------

  /** Writes the metadata and closes the file. `uuidSeed` makes the UUID (e.g. the tar digest). */
  close(uuidSeed = ''): Ext4Result {
    try {
      return this.finish(uuidSeed);
    } finally {
      closeSync(this.fd);
    }
  }

  /** Closes the file without finishing the filesystem (on error). */
  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  private finish(uuidSeed: string): Ext4Result {
    // live nodes, their link counts and parents; inode numbers in creation order
    const live = new Map<Node, { links: number; parent: Node }>();
    const walk = (dir: Node, parent: Node) => {
      live.set(dir, { links: 0, parent });
      for (const c of dir.children!.values()) {
        if (c.kind === 'dir') walk(c, dir);
        else {
          const l = live.get(c);
          if (l) l.links++;
          else live.set(c, { links: 1, parent: dir });
        }
      }
    };
    walk(this.root, this.root);
    const lpf = this.root.children!.get('lost+found');
    const ordered = [...live.keys()].filter((n) => n !== this.root && n !== lpf).sort((a, b) => a.seq - b.seq);
    this.root.ino = 2;
    let ino = FIRST_INO;
    if (lpf && lpf.kind === 'dir') lpf.ino = ino++;
    else ino++; // 11 stays reserved when the tar replaced lost+found by a non-directory
    for (const n of ordered) n.ino = ino++;
    const inodeCount = ino - 1;
    const byIno: Node[] = [this.root, ...(lpf && lpf.kind === 'dir' ? [lpf] : []), ...ordered];
    for (const n of byIno) {
      if (n.kind === 'dir') {
        let subdirs = 0;
        for (const c of n.children!.values()) if (c.kind === 'dir') subdirs++;
        live.get(n)!.links = 2 + subdirs;
      }
    }

    // directory blocks, extent trees, xattr blocks, long symlinks: appended in inode order
    const meta = new Map<Node, { treeBlocks: number[]; root: Buffer; xattrBlock: number; inInode: ReturnType<typeof placeXattrs>['inInode']; extraBlocks: number }>();
    for (const n of byIno) {
      let extraBlocks = 0;
      if (n.kind === 'dir') {
        const blocks = this.encodeDir(n, live.get(n)!.parent);
        const first = this.append(blocks);
        const count = blocks.length / BLOCK;
        n.size = blocks.length;
        n.dataBlocks = count;
        n.extents = [];
        for (let i = 0; i < count; i += MAX_EXTENT_LEN) n.extents.push([i, Math.min(MAX_EXTENT_LEN, count - i), first + i]);
      } else if (n.kind === 'symlink' && n.target!.length >= 60) {
        n.extents = [[0, 1, this.append(n.target!)]];
        n.dataBlocks = 1;
      }
      let root: Buffer = Buffer.alloc(60);
      const treeBlocks: number[] = [];
      if ((n.kind === 'file' && !n.inline) || n.kind === 'dir' || (n.kind === 'symlink' && n.target!.length >= 60)) {
        const t = this.extentTree(n.extents);
        root = t.root;
        treeBlocks.push(...t.blocks);
        extraBlocks += t.blocks.length;
      } else if (n.kind === 'symlink') {
        n.target!.copy(root);
      } else if (n.kind === 'char' || n.kind === 'block') {
        if (n.devMajor < 256 && n.devMinor < 256) root.writeUInt32LE((n.devMajor << 8) | n.devMinor, 0);
        else root.writeUInt32LE(((n.devMinor & 0xff) | (n.devMajor << 8) | ((n.devMinor & ~0xff) << 12)) >>> 0, 4);
      }
      const xs: Xattr[] = [...n.xattrs].map(([name, value]) => ({ name, value }));
      let placed;
      if (n.inline) {
        try {
          placed = placeXattrs(xs, undefined, { name: 'system.data', value: n.inline.subarray(Math.min(60, n.inline.length)) });
          root = Buffer.alloc(60);
          n.inline.copy(root, 0, 0, Math.min(60, n.inline.length));
        } catch {
          // other xattrs leave no room: store the file in a block after all
          const data = n.inline;
          n.inline = undefined;
          if (data.length > 0 && !data.equals(Buffer.alloc(data.length))) {
            const b = Buffer.alloc(BLOCK);
            data.copy(b);
            n.extents = [[0, 1, this.append(b)]];
            n.dataBlocks = 1;
          }
          const t = this.extentTree(n.extents);
          root = t.root;
        }
      }
      try {
        placed ??= placeXattrs(xs);
      } catch (err) {
        throw invalidArgument(`inode ${n.ino}: ${(err as Error).message}`);
      }
      let xattrBlock = 0;
      if (placed.block.length > 0) {
        xattrBlock = this.append(encodeXattrBlock(placed.block));
        extraBlocks++;
      }
      meta.set(n, { treeBlocks, root, xattrBlock, inInode: placed.inInode, extraBlocks });
    }
    this.flush();

    // groups and inode tables
    const M = this.next;
    let groups = Math.max(1, Math.ceil(M / BLOCKS_PER_GROUP));
    let ipg = 0;
    let itb = 0;
    for (;;) {
      ipg = Math.max(INODES_PER_BLOCK, Math.ceil(Math.ceil(inodeCount / groups) / INODES_PER_BLOCK) * INODES_PER_BLOCK);
      if (ipg > BLOCK * 8) {
        groups++;
        continue;
      }
      itb = ipg / INODES_PER_BLOCK;
      const need = Math.ceil((M + groups * (itb + 2)) / BLOCKS_PER_GROUP);
      if (need > groups) {
        groups = need;
        continue;
      }
      break;
    }
    const gdtBlocks = Math.ceil((groups * 32) / BLOCK);
    if (gdtBlocks > this.gdtReserved) throw invalidArgument(`ext4 image exceeds the maximum disk size of ${this.maxBlocks * BLOCK} bytes`);
    const itStart = M;
    const bbStart = itStart + groups * itb;
    const ibStart = bbStart + groups;
    let total = ibStart + groups;
    total = Math.max(total, (groups - 1) * BLOCKS_PER_GROUP + 1);
    this.checkSize(total);

    // inode tables
    const table = Buffer.alloc(groups * itb * BLOCK);
    for (const n of byIno) {
      const m = meta.get(n)!;
      const at = (n.ino - 1) * INODE_SIZE;
      this.encodeInode(n, live.get(n)!.links, m).copy(table, at);
    }
    // used blocks
    const used = new Uint8Array(groups * BLOCK);
    const mark = (first: number, count: number) => {
      for (let b = first; b < first + count; b++) used[b >> 3]! |= 1 << (b & 7);
    };
    mark(0, 1 + gdtBlocks);
    for (const n of byIno) {
      const m = meta.get(n)!;
      for (const [, len, phys] of n.extents) mark(phys, len);
      for (const b of m.treeBlocks) mark(b, 1);
      if (m.xattrBlock) mark(m.xattrBlock, 1);
    }
    mark(itStart, groups * (itb + 2));
    for (let b = total; b < groups * BLOCKS_PER_GROUP; b++) used[b >> 3]! |= 1 << (b & 7); // past the end
    const usedInodes = new Uint8Array(groups * BLOCK);
    for (let i = 0; i < inodeCount; i++) {
      const g = Math.floor(i / ipg);
      const bit = g * BLOCK * 8 + (i % ipg);
      usedInodes[bit >> 3]! |= 1 << (bit & 7);
    }
    for (let g = 0; g < groups; g++) for (let i = ipg; i < BLOCK * 8; i++) usedInodes[g * BLOCK + (i >> 3)]! |= 1 << (i & 7);

    const gdt = Buffer.alloc(gdtBlocks * BLOCK);
    let freeBlocks = 0;
    let freeInodes = 0;
    const dirsByGroup = new Array<number>(groups).fill(0);
    for (const n of byIno) if (n.kind === 'dir') dirsByGroup[Math.floor((n.ino - 1) / ipg)]!++;
    const popcount = (arr: Uint8Array, from: number, bits: number) => {
      let c = 0;
      for (let i = 0; i < bits; i++) if (arr[(from + i) >> 3]! & (1 << ((from + i) & 7))) c++;
      return c;
    };
    for (let g = 0; g < groups; g++) {
      const blocksInGroup = Math.min(BLOCKS_PER_GROUP, total - g * BLOCKS_PER_GROUP);
      const fb = blocksInGroup - popcount(used, g * BLOCKS_PER_GROUP, blocksInGroup);
      const fi = ipg - popcount(usedInodes, g * BLOCK * 8, ipg);
      freeBlocks += fb;
      freeInodes += fi;
      const o = g * 32;
      gdt.writeUInt32LE(bbStart + g, o);
      gdt.writeUInt32LE(ibStart + g, o + 4);
      gdt.writeUInt32LE(itStart + g * itb, o + 8);
      gdt.writeUInt16LE(fb, o + 12);
      gdt.writeUInt16LE(fi, o + 14);
      gdt.writeUInt16LE(dirsByGroup[g]!, o + 16);
    }

    // bitmaps are per group, 4 KiB each: group g covers blocks [g*32768, (g+1)*32768)
    const bitmaps = Buffer.alloc(groups * 2 * BLOCK);
    Buffer.from(used.buffer, used.byteOffset, used.byteLength).copy(bitmaps, 0);
    Buffer.from(usedInodes.buffer, usedInodes.byteOffset, usedInodes.byteLength).copy(bitmaps, groups * BLOCK);
    this.writeAt(table, itStart * BLOCK);
    this.writeAt(bitmaps, bbStart * BLOCK);
    this.writeAt(gdt, BLOCK);

    const uuid = createHash('sha256').update(`winsnap ext4\0${uuidSeed}\0${total}`).digest().subarray(0, 16);
    uuid[6] = (uuid[6]! & 0x0f) | 0x40;
    uuid[8] = (uuid[8]! & 0x3f) | 0x80;
    const sb = this.superblock({ total, groups, ipg, freeBlocks, freeInodes, uuid });
    this.writeAt(sb, 1024);
    ftruncateSync(this.fd, total * BLOCK);
    return { size: total * BLOCK, blocks: total, inodes: inodeCount, uuid };
  }

  private encodeDir(dir: Node, parent: Node): Buffer {
    const entries: [number, number, Buffer][] = [
      [dir.ino, FILE_TYPE.dir, Buffer.from('.')],
      [parent.ino, FILE_TYPE.dir, Buffer.from('..')],
    ];
    for (const [name, c] of dir.children!) entries.push([c.ino, FILE_TYPE[c.kind], Buffer.from(name, 'utf8')]);
    const blocks: Buffer[] = [];
    let cur = Buffer.alloc(BLOCK);
    let pos = 0;
    let lastAt = -1;
    const closeBlock = () => {
      if (lastAt >= 0) cur.writeUInt16LE(BLOCK - lastAt, lastAt + 4);
      blocks.push(cur);
      cur = Buffer.alloc(BLOCK);
      pos = 0;
      lastAt = -1;
    };
    for (const [ino, type, name] of entries) {
      const len = (8 + name.length + 3) & ~3;
      if (pos + len > BLOCK) closeBlock();
      cur.writeUInt32LE(ino, pos);
      cur.writeUInt16LE(len, pos + 4);
      cur.writeUInt8(name.length, pos + 6);
      cur.writeUInt8(type, pos + 7);
      name.copy(cur, pos + 8);
      lastAt = pos;
      pos += len;
    }
    closeBlock();
    return Buffer.concat(blocks);
  }

  /** The in-inode extent root and the tree blocks (appended now) for a list of extents. */
  private extentTree(extents: [number, number, number][]): { root: Buffer; blocks: number[] } {
    const header = (buf: Buffer, at: number, entries: number, max: number, depth: number) => {
      buf.writeUInt16LE(0xf30a, at);
      buf.writeUInt16LE(entries, at + 2);
      buf.writeUInt16LE(max, at + 4);
      buf.writeUInt16LE(depth, at + 6);
      buf.writeUInt32LE(0, at + 8);
    };
    const leafEntry = (buf: Buffer, at: number, [lb, len, phys]: [number, number, number]) => {
      buf.writeUInt32LE(lb, at);
      buf.writeUInt16LE(len, at + 4);
      buf.writeUInt16LE(Math.floor(phys / 2 ** 32), at + 6);
      buf.writeUInt32LE(phys % 2 ** 32, at + 8);
    };
    const indexEntry = (buf: Buffer, at: number, lb: number, block: number) => {
      buf.writeUInt32LE(lb, at);
      buf.writeUInt32LE(block % 2 ** 32, at + 4);
      buf.writeUInt16LE(Math.floor(block / 2 ** 32), at + 8);
      buf.writeUInt16LE(0, at + 10);
    };
    const root = Buffer.alloc(60);
    if (extents.length <= 4) {
      header(root, 0, extents.length, 4, 0);
      extents.forEach((e, i) => leafEntry(root, 12 + i * 12, e));
      return { root, blocks: [] };
    }
    // build levels bottom-up: each level is a list of [first logical block, block number]
    const blocks: number[] = [];
    let level: [number, number][] = [];
    for (let i = 0; i < extents.length; i += EXTENTS_PER_BLOCK) {
      const chunk = extents.slice(i, i + EXTENTS_PER_BLOCK);
      const b = Buffer.alloc(BLOCK);
      header(b, 0, chunk.length, EXTENTS_PER_BLOCK, 0);
      chunk.forEach((e, j) => leafEntry(b, 12 + j * 12, e));
      const at = this.append(b);
      blocks.push(at);
      level.push([chunk[0]![0], at]);
    }
    let depth = 1;
    while (level.length > 4) {
      const up: [number, number][] = [];
      for (let i = 0; i < level.length; i += EXTENTS_PER_BLOCK) {
        const chunk = level.slice(i, i + EXTENTS_PER_BLOCK);
        const b = Buffer.alloc(BLOCK);
        header(b, 0, chunk.length, EXTENTS_PER_BLOCK, depth);
        chunk.forEach(([lb, blk], j) => indexEntry(b, 12 + j * 12, lb, blk));
        const at = this.append(b);
        blocks.push(at);
        up.push([chunk[0]![0], at]);
      }
      level = up;
      depth++;
    }
    header(root, 0, level.length, 4, depth);
    level.forEach(([lb, blk], i) => indexEntry(root, 12 + i * 12, lb, blk));
    return { root, blocks };
  }

  private encodeInode(n: Node, links: number, m: { root: Buffer; xattrBlock: number; inInode: ReturnType<typeof placeXattrs>['inInode']; extraBlocks: number }): Buffer {
    const b = Buffer.alloc(INODE_SIZE);
    b.writeUInt16LE(S_IFMT[n.kind] | n.perm, 0);
    b.writeUInt16LE(n.uid & 0xffff, 2);
    b.writeUInt32LE(n.size % 2 ** 32, 4);
    const time = (t: TarTime, at: number, extraAt: number) => {
      let sec = t.sec;
      const min = -(2n ** 31n);
      const max = 2n ** 34n + 2n ** 31n - 1n;
      let nsec = t.nsec;
      if (sec < min) [sec, nsec] = [min, 0];
      if (sec > max) [sec, nsec] = [max, 999_999_999];
      const lo = BigInt.asIntN(32, sec);
      const epoch = Number((sec - lo) >> 32n) & 3;
      b.writeInt32LE(Number(lo), at);
      b.writeUInt32LE(((nsec << 2) | epoch) >>> 0, extraAt);
    };
    time(n.atime, 8, 140);
    time(n.ctime, 12, 132);
    time(n.mtime, 16, 136);
    time(n.mtime, 144, 148); // crtime = mtime, as tar2ext4
    b.writeUInt16LE(n.gid & 0xffff, 24);
    b.writeUInt16LE(Math.min(links, 0xffff) > 65000 ? 1 : links, 26);
    const sectors = (n.dataBlocks + m.extraBlocks) * (BLOCK / 512);
    b.writeUInt32LE(sectors % 2 ** 32, 28);
    b.writeUInt16LE(Math.floor(sectors / 2 ** 32), 116);
    const usesExtents = (n.kind === 'file' && !n.inline) || n.kind === 'dir' || (n.kind === 'symlink' && n.target!.length >= 60);
    b.writeUInt32LE(n.inline ? INLINE_DATA_FL : usesExtents ? 0x80000 : 0, 32);
    m.root.copy(b, 40);
    b.writeUInt32LE(m.xattrBlock % 2 ** 32, 104);
    b.writeUInt16LE(Math.floor(m.xattrBlock / 2 ** 32), 118);
    b.writeUInt32LE(Math.floor(n.size / 2 ** 32), 108);
    b.writeUInt16LE(n.uid >>> 16, 120);
    b.writeUInt16LE(n.gid >>> 16, 122);
    b.writeUInt16LE(EXTRA_ISIZE, 128);
    writeInInodeXattrs(b, 128 + EXTRA_ISIZE, m.inInode);
    return b;
  }

  private superblock(p: { total: number; groups: number; ipg: number; freeBlocks: number; freeInodes: number; uuid: Buffer }): Buffer {
    const s = Buffer.alloc(1024);
    s.writeUInt32LE(p.groups * p.ipg, 0);
    s.writeUInt32LE(p.total, 4);
    s.writeUInt32LE(p.freeBlocks, 12);
    s.writeUInt32LE(p.freeInodes, 16);
    s.writeUInt32LE(0, 20);
    s.writeUInt32LE(2, 24);
    s.writeUInt32LE(2, 28);
    s.writeUInt32LE(BLOCKS_PER_GROUP, 32);
    s.writeUInt32LE(BLOCKS_PER_GROUP, 36);
    s.writeUInt32LE(p.ipg, 40);
    s.writeUInt16LE(0xffff, 54);
    s.writeUInt16LE(0xef53, 56);
    s.writeUInt16LE(1, 58);
    s.writeUInt16LE(1, 60);
    s.writeUInt32LE(1, 76);
    s.writeUInt32LE(FIRST_INO, 84);
    s.writeUInt16LE(INODE_SIZE, 88);
    s.writeUInt32LE(0x8 | 0x200, 92); // ext_attr, sparse_super2
    s.writeUInt32LE(0x2 | 0x40 | 0x200 | (this.opts.inlineData ? 0x8000 : 0), 96); // filetype, extents, flex_bg, [inline_data]
    s.writeUInt32LE(0x2 | 0x8 | 0x20 | 0x40 | 0x1000, 100); // large_file, huge_file, dir_nlink, extra_isize, readonly
    p.uuid.copy(s, 104);
    s.writeUInt16LE(EXTRA_ISIZE, 348);
    s.writeUInt16LE(EXTRA_ISIZE, 350);
    s.writeUInt8(31, 372); // one flex group spans every group
    s.writeUInt32LE(FIRST_INO, 616); // lost+found inode
    return s;
  }
}

/** Converts a tar (as entries) to an ext4 image at `path`. */
export async function tarToExt4(entries: AsyncIterable<TarEntry>, path: string, opts: Ext4WriterOptions & { uuidSeed?: () => string } = {}): Promise<Ext4Result> {
  const w = new Ext4Writer(path, opts);
  try {
    for await (const e of entries) await w.add(e);
  } catch (err) {
    w.abort();
    throw err;
  }
  return w.close(opts.uuidSeed?.() ?? '');
}
