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
 * Memory: the metadata of every inode and directory entry, in typed-array tables (nodes.ts,
 * dirents.ts; ~125 bytes an entry), no file data. Deterministic: the UUID is derived from a
 * caller-supplied seed (tar2vhd: a CRC fingerprint of the tar), nothing depends on the clock.
 * Where the native helper is built (services/fsutil/native.ts), the common inodes and the
 * directories that fit the write buffer are encoded by it from these tables, the same bytes
 * as the code here writes (WINSNAP_NO_NATIVE_INODES=1 turns it off; tests compare), and each
 * write allocates its blocks first.
 */
import { close, closeSync, ftruncateSync, lstatSync, openSync, unlinkSync, write, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { invalidArgument } from '../../services/errdefs.js';
import { TRIM_EVERY, trimResident } from '../../services/fsutil/spill.js';
import type { IoMode } from '../../services/fsutil/io-mode.js';
import { allocateCall, ext4NativeCalls } from '../../services/fsutil/native.js';
import type { TarEntry } from '../tar/reader.js';
import type { TarTime } from '../tar/types.js';
import { encodeXattrBlock, placeXattrs, writeInInodeXattrs, type PlacedXattrs, type Xattr } from './xattr.js';
import { KIND, MAX_EXTENT_LEN, NodeTable, type Kind } from './nodes.js';
import { DirectoryEntries } from './dirents.js';
import { countBits, setBits } from './bitmap.js';

export const BLOCK = 4096;
const BLOCKS_PER_GROUP = 32768;
const INODE_SIZE = 256;
const EXTRA_ISIZE = 32;
const INODES_PER_BLOCK = BLOCK / INODE_SIZE;
const EXTENTS_PER_BLOCK = (BLOCK - 12) / 12;
const FIRST_INO = 11;
const GiB = 1024 ** 3;
export const DEFAULT_MAX_DISK_SIZE = 16 * GiB;
export const MAX_DISK_SIZE = 16 * 1024 * GiB;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
/** tar types stored as regular files */
const REGULAR: ReadonlySet<string> = new Set(['file', 'contiguous', 'unknown']);
const WRITE_BUFFER = 1 << 20;

/** by node kind (nodes.ts KIND order: file, dir, symlink, char, block, fifo): i_mode type bits, directory entry type */
const S_IFMT = [0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000] as const;
const FILE_TYPE = [1, 2, 7, 3, 4, 5] as const;
const FILE = KIND.file;
const DIR = KIND.dir;
const SYMLINK = KIND.symlink;
/** node id of the root */
const ROOT = 0;
/** "." and ".." */
const DOTS = new Uint8Array([0x2e, 0x2e]);

export interface Ext4WriterOptions {
  /** convert overlay whiteouts (`.wh.X`, `.wh..wh..opq`) */
  convertWhiteouts?: boolean;
  /** maximum image size in bytes (default 16 GiB, as tar2ext4's CLI; LCOW uses 128 GiB) */
  maxDiskSize?: number;
  /** store small regular files inside their inodes (inline_data: i_block + `system.data`) */
  inlineData?: boolean;
  /**
   * Where the inode and directory-entry tables spill once the layer has more than
   * `spillAfterRows` entries (default SPILL_AFTER_ROWS), so that memory stays bounded whatever
   * the layer's size: unlinked temporary files in this directory (default: the output's),
   * mapped into memory (columns.ts, services/fsutil/spill.ts). Set `spillAfterRows` to
   * Infinity to keep them in memory.
   */
  spillDir?: string;
  spillAfterRows?: number;
  /**
   * How the image is written while tar data streams in: 'pool' (default), each filled 1 MiB
   * buffer written on libuv's thread pool while the next fills; 'sync', written at once on the
   * calling thread (faster on two cores, see fsutil/io-mode.ts).
   */
  io?: IoMode;
}

/**
 * Entries after which the writer's tables spill to files: 2^17, where they hold ~14 MiB and
 * the conversion's resident set is ~85 MiB (docs/lcow.md, "Speed and memory of `convert tar2vhd`").
 */
export const SPILL_AFTER_ROWS = 2 ** 17;

/** Largest file inline data can hold: 60 bytes of i_block + a `system.data` value in the inode. */
export const INLINE_MAX = 60 + 68;
const INLINE_DATA_FL = 0x10000000;
/** Placements of xattr sets remembered while finishing (most inodes of a layer share a few sets). */
const RECENT_PLACEMENTS = 256;

export interface Ext4Result {
  /** bytes of the filesystem image */
  size: number;
  blocks: number;
  inodes: number;
  uuid: Buffer;
  /**
   * The first block of the image's zero tail: the blocks from here to `blocks` were never
   * written (the free space after the last bitmap, up to the end of the last group; most of a
   * layer of many small files, whose inodes need groups of 128 MiB each). They read as zeros.
   */
  zeroFrom: number;
}

/** Splits a tar name into path components (leading "./" and "/" ignored; ".." refused). */
export function tarPathParts(name: string): string[] {
  const parts: string[] = [];
  for (let start = 0; start <= name.length; ) {
    let end = name.indexOf('/', start);
    if (end < 0) end = name.length;
    if (end > start) {
      const p = name.slice(start, end);
      if (p === '..') throw invalidArgument(`tar entry "${name}": ".." is not allowed in an ext4 layer`, { entry: name });
      // a UTF-16 code unit is at most 3 UTF-8 bytes: only long components need counting
      if (p.length > 85 && Buffer.byteLength(p) > 255) throw invalidArgument(`tar entry "${name}": name component longer than 255 bytes`, { entry: name });
      if (p !== '.') parts.push(p);
    }
    start = end + 1;
  }
  return parts;
}

/** Whether the 4 KiB block at `src[off]` is all zero (the first and last byte decide most blocks without a memcmp). */
function isZeroBlock(src: Buffer, off: number): boolean {
  if (src[off] !== 0 || src[off + BLOCK - 1] !== 0) return false;
  return src.compare(ZERO_BLOCK, 0, BLOCK, off, off + BLOCK) === 0;
}

/** The length of a directory entry with a name of `nameBytes` bytes (8 bytes of header, 4-aligned). */
function recLen(nameBytes: number): number {
  return (nameBytes + 11) & ~3;
}

/**
 * Zeroes b[from, to) with TypedArray's own fill (a builtin; Buffer's fill validates its
 * arguments in JavaScript first: ~6 ms of the bench conversion's ~30,000 calls, cold).
 */
const typedArrayFill = Uint8Array.prototype.fill;
function zeroFill(b: Uint8Array, from: number, to: number): void {
  typedArrayFill.call(b, 0, from, to);
}

/** Whether src[from, to) (at most a block) is all zero. */
function isZeroRange(src: Buffer, from: number, to: number): boolean {
  if (src[from] !== 0 || src[to - 1] !== 0) return false;
  return src.compare(ZERO_BLOCK, 0, to - from, from, to) === 0;
}

/**
 * The blocks a write is about to fill, allocated first (fsutil/native allocate: ext4 then skips
 * its per-page delayed allocation in the write; the image's zero tail, never written, stays a
 * hole), where the native helper is built.
 */
const allocate = allocateCall();

/** pwrite of all of `data` at `pos`, on the thread pool. */
function writeFully(fd: number, data: Buffer, pos: number): Promise<void> {
  if (data.length > 0) allocate?.(fd, pos, data.length);
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      if (off >= data.length) return resolve();
      write(fd, data, off, data.length - off, pos + off, (err, n) => (err ? reject(err) : step(off + n)));
    };
    step(0);
  });
}

/** Sets `x` in `xs`: in place of the xattr of the same name (a later record replaces the value), else last. */
function putXattr(xs: Xattr[], x: Xattr): void {
  const i = xs.findIndex((y) => y.name === x.name);
  if (i >= 0) xs[i] = x;
  else xs.push(x);
}

/** Regular files (not inline), directories and long symlinks map their data with extents. */
function usesExtents(t: NodeTable, n: number): boolean {
  const kind = t.kind[n]!;
  return (kind === FILE && t.inlineAt[n] === 0) || kind === DIR || (kind === SYMLINK && t.size[n]! >= 60);
}

// Inodes, directory blocks and extent leaves are encoded through DataViews: one built-in call
// per field, which the interpreter runs several times faster than Buffer's write methods (JS
// functions with range checks). These loops run once per inode at the end of a conversion,
// mostly before the JIT has optimized them.

/** An extent leaf entry from the flat triple at `x[i]`. */
function writeLeafEntry(v: DataView, at: number, x: readonly number[], i: number): void {
  writeLeaf(v, at, x[i]!, x[i + 1]!, x[i + 2]!);
}

function writeLeaf(v: DataView, at: number, logical: number, length: number, phys: number): void {
  v.setUint32(at, logical, true);
  v.setUint16(at + 4, length, true);
  v.setUint16(at + 6, Math.floor(phys / 2 ** 32), true);
  v.setUint32(at + 8, phys % 2 ** 32, true);
}

function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const MIN_TIME = -(2 ** 31);
const MAX_TIME = 2 ** 34 + 2 ** 31 - 1;

/** An ext4 timestamp: low 32 bits of seconds, and (nanoseconds << 2 | epoch bits) in the extra field. */
function writeTime(v: DataView, sec: number, nsec: number, at: number, extraAt: number): void {
  if (sec < MIN_TIME) [sec, nsec] = [MIN_TIME, 0];
  if (sec > MAX_TIME) [sec, nsec] = [MAX_TIME, 999_999_999];
  const lo = sec | 0; // low 32 bits, signed
  const epoch = ((sec - lo) / 2 ** 32) & 3;
  v.setInt32(at, lo, true);
  v.setUint32(extraAt, ((nsec << 2) | epoch) >>> 0, true);
}

export class Ext4Writer {
  private readonly fd: number;
  private readonly maxBlocks: number;
  private readonly gdtReserved: number;
  private next: number;
  /** every inode made so far; ids are creation order */
  private readonly nodes: NodeTable;
  /** every directory's entries */
  private readonly entries: DirectoryEntries;
  /** xattr set number → where its xattrs go (placedXattrs) */
  private readonly placements = new Map<number, PlacedXattrs>();
  /** parentOf's cache: the directory path (all but the last part) of the last entry, and its node */
  private lastDirParts: string[] = [];
  private lastDir = ROOT;
  private buf: Buffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private bufLen = 0;
  private bufStart = 0;
  /** data buffers handed to the background writer come back here */
  /** buffers to swap in while a full one is written on the thread pool (none: written at once) */
  private readonly spare: Buffer[];
  /** the background writes, one after another (so completions arrive in block order) */
  private writing: Promise<void> = Promise.resolve();
  /** the replaced output file's descriptor being closed in the background (see the constructor) */
  private releasingOld: Promise<void> = Promise.resolve();
  private inflight = 0;
  private writeError: unknown;
  /** set once finishing: every write is synchronous from then on */
  private finishing = false;
  /** the tail of a file body that does not fill a block yet */
  private readonly partial = Buffer.alloc(BLOCK);
  /** called with the block number up to which the image is written (for streaming consumers) */
  onFlush: ((writtenBlocks: number) => void) | undefined;

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
    this.spare = opts.io === 'sync' ? [] : [Buffer.allocUnsafe(WRITE_BUFFER), Buffer.allocUnsafe(WRITE_BUFFER)];
    const spill = { dir: opts.spillDir ?? dirname(resolve(path)), afterRows: opts.spillAfterRows ?? SPILL_AFTER_ROWS };
    this.nodes = new NodeTable(undefined, undefined, spill);
    this.entries = new DirectoryEntries(undefined, undefined, spill);
    // an existing regular file is replaced by a new one rather than truncated: ext4 (auto_da_alloc)
    // flushes a truncated-and-rewritten file on close, which stalls for the whole image. It is
    // held open while unlinked, so freeing its blocks happens when that descriptor is closed on
    // the thread pool (~15 ms for a 200 MB image), not here; a crash leaves no stray file (the
    // kernel frees an unlinked inode once nothing holds it).
    if (lstatSync(path, { throwIfNoEntry: false })?.isFile()) {
      let old: number | undefined;
      try {
        old = openSync(path, 'r');
      } catch {
        // unreadable (unlinking needs only the directory): freed here, then
      }
      unlinkSync(path);
      if (old !== undefined) {
        const fd = old;
        this.releasingOld = new Promise((resolve) => close(fd, () => resolve()));
      }
    }
    this.fd = openSync(path, 'w');
    const root = this.newNode('dir', 0o755, 0, 0);
    const lpf = this.newNode('dir', 0o700, 0, 0);
    this.entries.set(root, 'lost+found', lpf);
  }

  /** First block of file data: block 0 and the group descriptor area are written last. */
  get firstDataBlock(): number {
    return 1 + this.gdtReserved;
  }

  private newNode(kind: Kind, perm: number, uid: number, gid: number, atime?: TarTime, mtime?: TarTime, ctime?: TarTime): number {
    return this.nodes.add(kind, perm, uid, gid, atime, mtime, ctime);
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
      this.next += blocks;
      this.reportWritten(this.next);
      return first;
    }
    data.copy(this.buf, this.bufLen);
    zeroFill(this.buf, this.bufLen + data.length, this.bufLen + blocks * BLOCK);
    this.bufLen += blocks * BLOCK;
    this.next += blocks;
    return first;
  }

  /**
   * Appends the whole blocks `src[from, to)` (no allocation: the data path; one copy per
   * stretch of the write buffer, not per block); returns the first block's number.
   */
  private appendBlocksFrom(src: Buffer, from: number, to: number): number {
    const first = this.next;
    const blocks = (to - from) / BLOCK;
    this.checkSize(first + blocks);
    for (let at = from; at < to; ) {
      if (this.bufLen === this.buf.length) this.flush();
      const take = Math.min(to - at, this.buf.length - this.bufLen);
      src.copy(this.buf, this.bufLen, at, at + take);
      this.bufLen += take;
      this.next += take / BLOCK; // flush() writes the buffer as the blocks before this.next
      at += take;
    }
    return first;
  }

  /**
   * Writes the buffered blocks. While tar data streams in, the write runs on libuv's thread
   * pool (the buffer is swapped for a spare one) so the copy into the page cache overlaps
   * parsing; `onFlush` reports progress only once the bytes are in the file.
   */
  private flush(): void {
    if (this.writeError) throw this.writeError;
    trimResident();
    const data = this.buf.subarray(0, this.bufLen);
    const pos = this.bufStart * BLOCK;
    const end = this.next;
    this.bufStart = this.next;
    this.bufLen = 0;
    const spare = this.finishing ? undefined : this.spare.pop();
    if (!spare) {
      // no spare buffer (or finishing): write now
      if (data.length > 0) this.writeAt(data, pos);
      this.reportWritten(end);
      return;
    }
    const full = this.buf;
    this.buf = spare;
    this.inflight++;
    this.writing = this.writing
      .then(() => writeFully(this.fd, data, pos))
      .then(
        () => this.onFlush?.(end),
        (err: unknown) => {
          this.writeError ??= err;
        },
      )
      .finally(() => {
        this.inflight--;
        this.spare.push(full);
      });
  }

  /** Tells `onFlush` that blocks before `end` are in the file (after the background writes before them). */
  private reportWritten(end: number): void {
    if (!this.onFlush) return;
    if (this.inflight === 0) this.onFlush(end);
    else this.writing = this.writing.then(() => this.onFlush?.(end));
  }

  /** Waits until at most `max` background writes are pending; rethrows a write error. */
  private async settle(max: number): Promise<void> {
    while (this.inflight > max) await this.writing;
    if (this.writeError) throw this.writeError;
  }

  private writeAt(data: Buffer, pos: number): void {
    trimResident();
    if (data.length > 0) allocate?.(this.fd, pos, data.length);
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off, pos + off);
  }

  // ---- the tree -------------------------------------------------------------------------------

  /** The node at `parts`, or -1. */
  private lookup(parts: string[]): number {
    let n = ROOT;
    for (const p of parts) {
      n = this.entries.get(n, p);
      if (n < 0) return -1;
    }
    return n;
  }

  /** The directory for `parts` (all but the last), created as tar extraction would. */
  private parentOf(parts: string[], entry: string): number {
    const t = this.nodes;
    const d = this.entries;
    const depth = parts.length - 1;
    if (depth <= 0) return ROOT;
    // most entries are in the directory of the entry before them
    const cached = this.lastDirParts;
    if (cached.length === depth) {
      let i = 0;
      while (i < depth && cached[i] === parts[i]) i++;
      if (i === depth) return this.lastDir;
    }
    let n = ROOT;
    for (let i = 0; i < depth; i++) {
      const p = parts[i]!;
      const e = d.find(n, p);
      let c = e === 0 ? -1 : d.node(e);
      if (c < 0 || t.kind[c] !== DIR) {
        if (c >= 0) throw invalidArgument(`tar entry "${entry}": "${p}" is not a directory`, { entry });
        c = this.newNode('dir', 0o755, 0, 0);
        d.add(n, c);
      }
      n = c;
    }
    this.lastDirParts = parts.slice(0, depth);
    this.lastDir = n;
    return n;
  }

  /** Links `node` at `parts`, replacing what was there (a directory over a directory keeps its children). */
  private place(parts: string[], node: number, entry: string): void {
    const t = this.nodes;
    if (parts.length === 0) {
      if (t.kind[node] !== DIR) throw invalidArgument(`tar entry "${entry}": the root must be a directory`, { entry });
      t.copyAttributes(node, ROOT);
      return;
    }
    const dir = this.parentOf(parts, entry);
    const d = this.entries;
    const e = d.find(dir, parts[parts.length - 1]!);
    if (e === 0) {
      d.add(dir, node);
      return;
    }
    const old = d.node(e);
    if (t.kind[old] === DIR) {
      if (t.kind[node] === DIR) {
        t.copyAttributes(node, old);
        return;
      }
      // a directory replaced: the cached parent may have been in it
      this.lastDirParts = [];
      this.lastDir = ROOT;
    }
    d.setNode(e, node);
  }

  /**
   * The entry's `SCHILY.xattr.*` records (global ones first; a later record of a name replaces
   * the value in its place), or undefined when it has none. The values are views of the input.
   */
  private xattrsOf(e: TarEntry): Xattr[] | undefined {
    const h = e.header;
    // most entries have no PAX records at all: no array made, no iterator run (each entry's
    // `for…of` over two lists cost ~7 ms of a cold conversion of the bench tar)
    if (h.globalPax.length === 0 && h.pax.length === 0) return undefined;
    let xs: Xattr[] | undefined;
    for (let l = 0; l < 2; l++) {
      const list = l === 0 ? h.globalPax : h.pax;
      for (let i = 0; i < list.length; i++) {
        const r = list[i]!;
        if (!r.key.startsWith('SCHILY.xattr.')) continue;
        putXattr((xs ??= []), { name: r.key.slice('SCHILY.xattr.'.length), value: r.value });
      }
    }
    return xs;
  }

  /** Adds one tar entry (its body is consumed for regular files). */
  async add(e: TarEntry): Promise<void> {
    if (this.inflight > 1) await this.settle(1);
    if (!this.tryAdd(e)) await this.addStreamed(e);
  }

  /**
   * Adds `e` without waiting, when that is possible: no backlog of output writes and, for a
   * regular file, its whole body already buffered by the reader (`bufferedBody`). Returns
   * false, having changed nothing, otherwise: then call add().
   */
  tryAdd(e: TarEntry): boolean {
    if (this.inflight > 1) return false;
    if (this.writeError) throw this.writeError;
    const parts = tarPathParts(e.header.name);
    let body: Buffer | undefined;
    if (REGULAR.has(e.header.type) && !this.isWhiteout(parts)) {
      body = e.bufferedBody?.();
      if (body === undefined) return false;
    }
    this.addEntry(e, parts, body);
    return true;
  }

  /** Whether the entry at `parts` is an overlay whiteout to convert (`.wh.X`, `.wh..wh..opq`). */
  private isWhiteout(parts: string[]): boolean {
    return this.opts.convertWhiteouts === true && (parts[parts.length - 1] ?? '').startsWith('.wh.');
  }

  /** A regular file (not a whiteout) whose body has to be streamed: tryAdd() could not add it. */
  private async addStreamed(e: TarEntry): Promise<void> {
    const n = this.fileNode(e);
    await this.writeData(n, e);
    this.place(tarPathParts(e.header.name), n, e.header.name);
  }

  /** A regular-file node for `e` (mode, owner, times, xattrs; no data yet). */
  private fileNode(e: TarEntry): number {
    const h = e.header;
    const n = this.newNode('file', h.mode, h.uid, h.gid, h.atime ?? h.mtime, h.mtime, h.ctime ?? h.mtime);
    this.setXattrs(n, e);
    return n;
  }

  /** Gives node `n` the entry's `SCHILY.xattr.*` records, if it has any. */
  private setXattrs(n: number, e: TarEntry): void {
    const xattrs = this.xattrsOf(e);
    if (xattrs) this.nodes.setXattrs(n, xattrs);
  }

  /** Adds `e` (path `parts`); `body` is the whole body of a regular file (not used for other types). */
  private addEntry(e: TarEntry, parts: string[], body: Buffer | undefined): void {
    const h = e.header;
    const name = h.name;
    const atime = h.atime ?? h.mtime;
    const ctime = h.ctime ?? h.mtime;
    const last = parts[parts.length - 1] ?? '';
    const t = this.nodes;
    if (this.isWhiteout(parts)) {
      if (last === '.wh..wh..opq') {
        const dir = this.parentOf(parts, name);
        const xs = t.xattrs(dir);
        putXattr(xs, { name: 'trusted.overlay.opaque', value: Buffer.from('y') });
        t.setXattrs(dir, xs);
        return;
      }
      parts = [...parts.slice(0, -1), last.slice('.wh.'.length)];
      const n = this.newNode('char', 0, 0, 0);
      this.place(parts, n, name);
      return;
    }
    switch (h.type) {
      case 'dir': {
        const n = this.newNode('dir', h.mode, h.uid, h.gid, atime, h.mtime, ctime);
        this.setXattrs(n, e);
        this.place(parts, n, name);
        return;
      }
      case 'link': {
        const target = this.lookup(tarPathParts(h.linkname));
        if (target < 0) throw invalidArgument(`tar entry "${name}": hard link target "${h.linkname}" does not exist`, { entry: name });
        if (t.kind[target] === DIR) throw invalidArgument(`tar entry "${name}": hard link to a directory`, { entry: name });
        if (parts.length === 0) throw invalidArgument(`tar entry "${name}": cannot link over the root`, { entry: name });
        const dir = this.parentOf(parts, name);
        const old = this.entries.get(dir, parts[parts.length - 1]!);
        if (old >= 0 && t.kind[old] === DIR) throw invalidArgument(`tar entry "${name}": a hard link cannot replace a directory`, { entry: name });
        this.entries.set(dir, parts[parts.length - 1]!, target);
        return;
      }
      case 'symlink': {
        const n = this.newNode('symlink', 0o777, h.uid, h.gid, atime, h.mtime, ctime);
        const len = Buffer.byteLength(h.linkname, 'utf8');
        if (len === 0 || len >= BLOCK) throw invalidArgument(`tar entry "${name}": symlink target length ${len}`, { entry: name });
        t.setTarget(n, h.linkname);
        this.setXattrs(n, e);
        this.place(parts, n, name);
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        const n = this.newNode(h.type, h.mode, h.uid, h.gid, atime, h.mtime, ctime);
        if (h.devmajor !== 0 || h.devminor !== 0) {
          const x = t.more(n);
          x.devMajor = h.devmajor;
          x.devMinor = h.devminor;
        }
        this.setXattrs(n, e);
        this.place(parts, n, name);
        return;
      }
      case 'file':
      case 'contiguous':
      case 'unknown': {
        const n = this.fileNode(e);
        this.writeBuffered(n, e, body!);
        this.place(parts, n, name);
        return;
      }
      default:
        throw invalidArgument(`tar entry "${name}": type ${h.type} cannot be stored in ext4`, { entry: name });
    }
  }

  /**
   * The whole blocks `src[from, to)` of `n`, the first at logical block `logical`: runs of
   * non-zero blocks appended, all-zero blocks left as holes. Returns the next logical block.
   */
  private addBlocks(n: number, logical: number, src: Buffer, from: number, to: number): number {
    const t = this.nodes;
    for (let off = from; off < to; ) {
      if (isZeroBlock(src, off)) {
        off += BLOCK;
        logical++;
        continue;
      }
      let end = off + BLOCK;
      while (end < to && !isZeroBlock(src, end)) end += BLOCK;
      const phys = this.appendBlocksFrom(src, off, end);
      const blocks = (end - off) / BLOCK;
      t.addBlock(n, logical, phys, blocks);
      logical += blocks;
      off = end;
    }
    return logical;
  }

  /** A regular file's whole body: non-zero blocks appended contiguously, zero blocks left as holes. */
  private writeBuffered(n: number, e: TarEntry, body: Buffer): void {
    const size = e.header.size;
    if (this.opts.inlineData && size <= INLINE_MAX) this.nodes.setInline(n, body);
    else this.writeWhole(n, body);
    if (this.nodes.size[n] !== size) throw invalidArgument(`tar entry "${e.header.name}": body has ${this.nodes.size[n]} of ${size} bytes`, { entry: e.header.name });
  }

  /**
   * A body that is all in memory (most files): its whole blocks as addBlocks appends them, and
   * its last, partial block copied once, straight into the write buffer and zero-padded there
   * (writeChunk + endData copy it through the partial-block buffer first). The same blocks.
   */
  private writeWhole(n: number, body: Buffer): void {
    const t = this.nodes;
    t.size[n] += body.length;
    const whole = body.length - (body.length % BLOCK);
    const logical = this.addBlocks(n, 0, body, 0, whole);
    if (whole === body.length || isZeroRange(body, whole, body.length)) return; // no tail, or a hole
    const first = this.next;
    this.checkSize(first + 1);
    if (this.bufLen === this.buf.length) this.flush();
    body.copy(this.buf, this.bufLen, whole);
    zeroFill(this.buf, this.bufLen + body.length - whole, this.bufLen + BLOCK);
    this.bufLen += BLOCK;
    this.next++;
    t.addBlock(n, logical, first, 1);
  }

  /** Streams a regular file's body: non-zero blocks appended contiguously, zero blocks left as holes. */
  private async writeData(n: number, e: TarEntry): Promise<void> {
    const size = e.header.size;
    if (this.opts.inlineData && size <= INLINE_MAX) {
      const data = Buffer.allocUnsafe(size);
      let got = 0;
      for await (const c of e.body) got += c.copy(data, got);
      this.nodes.setInline(n, data.subarray(0, got));
    } else {
      let partialLen = 0;
      for await (const c of e.body) {
        if (this.inflight > 1) await this.settle(1);
        partialLen = this.writeChunk(n, c, partialLen, this.nodes.size[n]!);
      }
      this.endData(n, partialLen);
    }
    if (this.nodes.size[n] !== size) throw invalidArgument(`tar entry "${e.header.name}": body has ${this.nodes.size[n]} of ${size} bytes`, { entry: e.header.name });
  }

  /**
   * Adds the body bytes `c` that follow `before` bytes of the file, of which the last
   * `partialLen` wait in `this.partial`; returns the new count of waiting bytes.
   */
  private writeChunk(n: number, c: Buffer, partialLen: number, before: number): number {
    const partial = this.partial;
    let logical = Math.floor(before / BLOCK);
    this.nodes.size[n] += c.length;
    let off = 0;
    if (partialLen > 0) {
      const k = Math.min(BLOCK - partialLen, c.length);
      c.copy(partial, partialLen, 0, k);
      partialLen += k;
      off = k;
      if (partialLen < BLOCK) return partialLen;
      logical = this.addBlocks(n, logical, partial, 0, BLOCK);
      partialLen = 0;
    }
    const whole = off + Math.floor((c.length - off) / BLOCK) * BLOCK;
    this.addBlocks(n, logical, c, off, whole);
    off = whole;
    return off < c.length ? c.copy(partial, 0, off) : 0;
  }

  /** The file's last, partial block (zero-padded). */
  private endData(n: number, partialLen: number): void {
    if (partialLen === 0) return;
    this.partial.fill(0, partialLen);
    this.addBlocks(n, Math.floor(this.nodes.size[n]! / BLOCK), this.partial, 0, BLOCK);
  }

  // ---- close: metadata, inode tables, bitmaps, descriptors, superblock --------------------------

  /** Writes the metadata and closes the file. `uuidSeed` makes the UUID (tar2vhd: a CRC fingerprint of the tar). */
  async close(uuidSeed = ''): Promise<Ext4Result> {
    try {
      this.flush();
      await this.settle(0);
      this.finishing = true;
      return this.finish(uuidSeed);
    } finally {
      this.closeTables();
      closeSync(this.fd);
      await this.releasingOld;
    }
  }

  /** Closes the file without finishing the filesystem (on error). */
  async abort(): Promise<void> {
    await this.writing;
    await this.releasingOld;
    this.closeTables();
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /** Releases the tables' spill files, if they spilled. */
  private closeTables(): void {
    this.nodes.close();
    this.entries.close();
  }

  /** Live inodes in inode-number order, with link counts and parents set. */
  private numberInodes(): Uint32Array {
    const t = this.nodes;
    // a node is live once the walk gives it a link count (every column starts at zero)
    let liveCount = 0;
    let visited = 0;
    const walk = (dir: number, parent: number) => {
      t.parent[dir] = parent;
      liveCount++;
      let subdirs = 0;
      const d = this.entries;
      for (let e = d.first(dir); e !== 0; e = d.next(e)) {
        const c = d.node(e);
        if ((++visited & TRIM_EVERY) === 0) trimResident();
        if (t.kind[c] === DIR) {
          subdirs++;
          walk(c, dir);
        } else if (t.links[c]++ === 0) liveCount++;
      }
      t.links[dir] = 2 + subdirs;
    };
    walk(ROOT, ROOT);
    const found0 = this.entries.get(ROOT, 'lost+found');
    const lpf = found0 >= 0 && t.kind[found0] === DIR ? found0 : -1;
    // root, lost+found, then every other live node in creation order (= id order)
    const byIno = t.newOrder(liveCount);
    let at = 0;
    byIno[at++] = ROOT;
    if (lpf >= 0) byIno[at++] = lpf;
    for (let n = 0; n < t.count; n++) {
      if ((n & TRIM_EVERY) === 0) trimResident();
      if (t.links[n] !== 0 && n !== ROOT && n !== lpf) byIno[at++] = n;
    }
    t.ino[ROOT] = 2;
    let ino = FIRST_INO;
    for (let i = 1; i < byIno.length; i++) {
      if (i === 1 && lpf < 0) ino++; // 11 stays reserved when the tar replaced lost+found by a non-directory
      t.ino[byIno[i]!] = ino++;
    }
    return byIno;
  }

  /** Appends what an inode needs besides file data: directory blocks, long symlink, extent tree, xattr block. */
  private appendInodeMetadata(n: number): void {
    const t = this.nodes;
    const kind = t.kind[n]!;
    if (kind === DIR) {
      const { first, count } = this.appendDir(n, t.parent[n]!);
      t.size[n] = count * BLOCK;
      const x: number[] = [];
      for (let i = 0; i < count; i += MAX_EXTENT_LEN) x.push(i, Math.min(MAX_EXTENT_LEN, count - i), first + i);
      t.setExtents(n, x);
    } else if (kind === SYMLINK && t.size[n]! >= 60) {
      t.setExtents(n, [0, 1, this.append(t.target(n))]);
    }
    const ext = t.ext.get(n);
    const set = t.xattrSet[n]!;
    const inline = t.inline(n);
    if (!ext && !inline && set === 0 && t.firstLength[n] === 0) return; // no xattrs, no inline data, no extent tree: nothing to append
    let inlinePlaced: PlacedXattrs | undefined;
    if (inline) {
      inlinePlaced = this.inlinePlacement(n, inline);
      if (!inlinePlaced) {
        // other xattrs leave no room: store the file in a block after all
        t.dropInline(n);
        if (inline.length > 0 && !inline.equals(Buffer.alloc(inline.length))) {
          const b = Buffer.alloc(BLOCK);
          inline.copy(b);
          t.setExtents(n, [0, 1, this.append(b)]);
        }
      }
    }
    if (usesExtents(t, n) && t.extentCount(n) > 4) {
      const tree = this.extentTree(t.extents(n));
      const x = t.more(n);
      x.iblock = tree.root;
      x.extraBlocks = (x.extraBlocks ?? 0) + tree.blocks;
    }
    if (!inlinePlaced && (set === 0 || t.xattrInInodeArea(n))) return; // no xattr block
    const placed = inlinePlaced ?? this.placedXattrs(n);
    if (placed && placed.block.length > 0) t.xattrBlock[n] = this.append(encodeXattrBlock(placed.block));
  }

  /**
   * Where an inline-data file's xattrs go: `system.data` (the bytes past the 60 in i_block)
   * first in the inode, then the others; undefined when they do not all fit.
   */
  private inlinePlacement(n: number, data: Buffer): PlacedXattrs | undefined {
    try {
      return placeXattrs(this.nodes.xattrs(n), undefined, { name: 'system.data', value: data.subarray(Math.min(60, data.length)) });
    } catch {
      return undefined;
    }
  }

  /** Where node `n`'s xattrs go (inode, block), or undefined when it has none. */
  private placedXattrs(n: number): PlacedXattrs | undefined {
    const t = this.nodes;
    const inline = t.inline(n);
    if (inline) return this.inlinePlacement(n, inline); // fits: finishing dropped the inline data otherwise
    const set = t.xattrSet[n]!;
    if (set === 0) return undefined;
    let placed = this.placements.get(set);
    if (!placed) {
      try {
        placed = placeXattrs(t.xattrs(n));
      } catch (err) {
        throw invalidArgument(`inode ${t.ino[n]}: ${(err as Error).message}`);
      }
      if (this.placements.size === RECENT_PLACEMENTS) this.placements.clear();
      this.placements.set(set, placed);
    }
    return placed;
  }

  private finish(uuidSeed: string): Ext4Result {
    const t = this.nodes;
    const byIno = this.numberInodes();
    const inodeCount = Math.max(FIRST_INO, t.ino[byIno[byIno.length - 1]!]!);

    // directory blocks, extent trees, xattr blocks, long symlinks: appended in inode order;
    // every block from here to M belongs to a live inode
    this.flush();
    const metaStart = this.next;
    const natives = ext4NativeCalls();
    // nodes kept in the writer's side records (more extents, device numbers; extent trees from
    // here on): the native helper leaves them to the code here
    const special = new Uint8Array(natives ? t.count : 0);
    const markSpecial = () => {
      for (const n of t.moreExtents.keys()) special[n] = 1;
      for (const n of t.ext.keys()) special[n] = 1;
    };
    if (natives) {
      markSpecial();
      // only the nodes that may append something, in the same order (the others append nothing)
      const positions = new Int32Array(byIno.length);
      const count = natives.metadataNodes(t.kind, t.size, t.xattrSet, t.inlineAt, special, byIno, positions);
      for (let i = 0; i < count; i++) {
        if ((i & TRIM_EVERY) === 0) trimResident();
        this.appendInodeMetadata(byIno[positions[i]!]!);
      }
    } else {
      for (let i = 0; i < byIno.length; i++) {
        if ((i & TRIM_EVERY) === 0) trimResident();
        this.appendInodeMetadata(byIno[i]!);
      }
    }
    this.flush();
    if (natives) markSpecial();

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

    // used blocks: block 0 + descriptors, file data of live inodes, all metadata, the tables;
    // the data of files, and the directories per group, are counted in the inode-table pass
    // below (one pass over the inodes instead of three: this end runs mostly unoptimized)
    const used = new Uint8Array(groups * BLOCK);
    const dirsByGroup = new Array<number>(groups).fill(0);

    // inode tables, in pieces of at most WRITE_BUFFER bytes (a group's table of a big layer is
    // megabytes: 7.3 MiB for 300k inodes in 10 groups); every slot is written, unused ones zero
    const piece = Buffer.alloc(Math.min(itb * BLOCK, WRITE_BUFFER));
    const pieceView = viewOf(piece);
    const pieceInodes = piece.length / INODE_SIZE;
    // an inode into the piece, and its data blocks (below the metadata) and kind counted
    const tableEntry = (n: number, firstIno: number, g: number): void => {
      this.encodeInode(n, piece, pieceView, (t.ino[n]! - firstIno) * INODE_SIZE);
      const kind = t.kind[n];
      if (kind === DIR) dirsByGroup[g]!++;
      else if (kind === FILE && t.firstLength[n] !== 0) {
        if (t.firstPhysical[n]! < metaStart) setBits(used, t.firstPhysical[n]!, t.firstLength[n]!);
        const x = t.moreExtents.get(n);
        if (x) for (let j = 0; j < x.length; j += 3) if (x[j + 2]! < metaStart) setBits(used, x[j + 2]!, x[j + 1]!);
      }
    };
    // the native helper encodes the common inodes (fsx.c encodeInodes: the same bytes), this
    // code the rest: those with side records (more extents, an extent tree, device numbers),
    // xattrs or inline data
    const native = natives && {
      columns: [t.kind, t.perm, t.uid, t.gid, t.mSec, t.mNsec, t.aSec, t.aNsec, t.cSec, t.cNsec, t.size, t.firstLogical, t.firstLength, t.firstPhysical, t.xattrSet, t.inlineAt, t.xattrBlock, t.ino, t.links, t.targetAt, t.targetArena()],
      special,
      specials: new Int32Array(pieceInodes),
      out: new Float64Array(3),
    };
    let at = 0;
    for (let g = 0; g < groups; g++) {
      for (let slot = 0; slot < ipg; slot += pieceInodes) {
        const count = Math.min(pieceInodes, ipg - slot);
        const firstIno = g * ipg + 1 + slot;
        piece.fill(0);
        if (native) {
          trimResident();
          natives.encodeInodes(native.columns, native.special, byIno, at, firstIno, count, piece, used, metaStart, native.specials, native.out);
          at = native.out[0]!;
          dirsByGroup[g]! += native.out[1]!;
          for (let i = 0; i < native.out[2]!; i++) tableEntry(byIno[native.specials[i]!]!, firstIno, g);
        } else {
          for (; at < byIno.length && t.ino[byIno[at]!]! < firstIno + count; at++) {
            if ((at & TRIM_EVERY) === 0) trimResident();
            tableEntry(byIno[at]!, firstIno, g);
          }
        }
        this.writeAt(piece.subarray(0, count * INODE_SIZE), (itStart + g * itb) * BLOCK + slot * INODE_SIZE);
      }
    }

    setBits(used, 0, 1 + gdtBlocks);
    setBits(used, metaStart, M - metaStart);
    setBits(used, itStart, groups * (itb + 2));
    setBits(used, total, groups * BLOCKS_PER_GROUP - total); // past the end
    const usedInodes = new Uint8Array(groups * BLOCK);
    for (let g = 0; g < groups; g++) {
      // the group's inodes that exist, and the bitmap's bits past the group's inodes
      const inGroup = Math.max(0, Math.min(ipg, inodeCount - g * ipg));
      setBits(usedInodes, g * BLOCK * 8, inGroup);
      setBits(usedInodes, g * BLOCK * 8 + ipg, BLOCK * 8 - ipg);
    }
    if (!byIno.some((n) => t.ino[n] === FIRST_INO)) usedInodes[(FIRST_INO - 1) >> 3]! &= ~(1 << ((FIRST_INO - 1) & 7)); // lost+found was replaced

    const gdt = Buffer.alloc(gdtBlocks * BLOCK);
    let freeBlocks = 0;
    let freeInodes = 0;
    for (let g = 0; g < groups; g++) {
      const blocksInGroup = Math.min(BLOCKS_PER_GROUP, total - g * BLOCKS_PER_GROUP);
      const fb = blocksInGroup - countBits(used, g * BLOCKS_PER_GROUP, blocksInGroup);
      const fi = ipg - countBits(usedInodes, g * BLOCK * 8, ipg);
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
    this.writeAt(bitmaps, bbStart * BLOCK);
    this.writeAt(gdt, BLOCK);

    const uuid = createHash('sha256').update(`winsnap ext4\0${uuidSeed}\0${total}`).digest().subarray(0, 16);
    uuid[6] = (uuid[6]! & 0x0f) | 0x40;
    uuid[8] = (uuid[8]! & 0x3f) | 0x80;
    const sb = this.superblock({ total, groups, ipg, freeBlocks, freeInodes, uuid });
    this.writeAt(sb, 1024);
    ftruncateSync(this.fd, total * BLOCK);
    return { size: total * BLOCK, blocks: total, inodes: inodeCount, uuid, zeroFrom: ibStart + groups };
  }

  /**
   * Appends the directory's blocks (linear entries: ".", "..", then children in insertion
   * order), up to WRITE_BUFFER bytes at a time, so a directory of millions of entries needs no
   * buffer of its size; returns its first block and block count.
   */
  private appendDir(dir: number, parent: number): { first: number; count: number } {
    const t = this.nodes;
    const d = this.entries;
    const native = ext4NativeCalls()?.dirBlocks;
    if (native) {
      // the native helper builds a directory that fits the write buffer in place (the same bytes)
      const columns = [...d.linkArrays(), t.ino, t.kind];
      const blocks = native(columns, dir, parent, null, 0);
      if (blocks * BLOCK <= this.buf.length) {
        this.checkSize(this.next + blocks);
        if (this.bufLen + blocks * BLOCK > this.buf.length) this.flush();
        native(columns, dir, parent, this.buf, this.bufLen);
        const first = this.next;
        this.bufLen += blocks * BLOCK;
        this.next += blocks;
        return { first, count: blocks };
      }
    }
    // count the blocks first: a directory that fits the write buffer is then built in place
    let blocks = 1;
    let pos = recLen(1) + recLen(2);
    let seen = 0;
    for (let e = d.first(dir); e !== 0; e = d.next(e)) {
      if ((++seen & TRIM_EVERY) === 0) trimResident();
      const len = recLen(d.nameLength(e));
      if (pos + len > BLOCK) {
        blocks++;
        pos = 0;
      }
      pos += len;
    }
    // a directory that fits the write buffer is built in place there (most: one block); a
    // bigger one in a piece of WRITE_BUFFER bytes appended each time it is full
    const size = blocks * BLOCK;
    const inPlace = size <= this.buf.length;
    let piece: Buffer;
    let origin = 0; // where the directory's blocks start in `piece`
    let first = -1;
    if (inPlace) {
      this.checkSize(this.next + blocks);
      if (this.bufLen + size > this.buf.length) this.flush();
      piece = this.buf;
      origin = this.bufLen;
      zeroFill(piece, origin, origin + size);
      first = this.next;
    } else piece = Buffer.alloc(WRITE_BUFFER);
    const v = this.viewOfBuffer(piece);
    const appendPiece = (bytes: number) => {
      const at = this.append(bytes === piece.length ? piece : piece.subarray(0, bytes));
      if (first < 0) first = at;
    };
    let base = 0;
    pos = 0;
    let lastAt = -1;
    // the name is `nameBytes` bytes of `names` from `nameAt`; offsets relative to `origin`
    const put = (ino: number, type: number, names: Uint8Array, nameAt: number, nameBytes: number) => {
      const len = recLen(nameBytes);
      if (pos + len > BLOCK) {
        v.setUint16(origin + lastAt + 4, BLOCK - (lastAt - base), true); // the block's last entry takes its rest
        base += BLOCK;
        pos = 0;
        if (!inPlace && base === piece.length) {
          appendPiece(base);
          piece.fill(0);
          base = 0;
        }
      }
      const at = origin + base + pos;
      v.setUint32(at, ino, true);
      v.setUint16(at + 4, len, true);
      piece[at + 6] = nameBytes;
      piece[at + 7] = type;
      piece.set(names.subarray(nameAt, nameAt + nameBytes), at + 8);
      lastAt = base + pos;
      pos += len;
    };
    put(t.ino[dir]!, FILE_TYPE[DIR], DOTS, 0, 1);
    put(t.ino[parent]!, FILE_TYPE[DIR], DOTS, 0, 2);
    seen = 0;
    for (let e = d.first(dir); e !== 0; e = d.next(e)) {
      if ((++seen & TRIM_EVERY) === 0) trimResident();
      const c = d.node(e);
      put(t.ino[c]!, FILE_TYPE[t.kind[c]!]!, d.names, d.nameOffset(e), d.nameLength(e));
    }
    v.setUint16(origin + lastAt + 4, BLOCK - (lastAt - base), true);
    if (inPlace) {
      this.bufLen += size;
      this.next += blocks;
    } else appendPiece(base + BLOCK);
    return { first, count: blocks };
  }

  /** A DataView of `b`, kept for the last buffer asked about (the write buffer, while finishing). */
  private viewOfBuffer(b: Buffer): DataView {
    if (this.lastView?.buffer !== b) this.lastView = { buffer: b, view: viewOf(b) };
    return this.lastView.view;
  }
  private lastView: { buffer: Buffer; view: DataView } | undefined;

  /** The in-inode extent index root for more than four extents; the tree blocks are appended now. */
  private extentTree(extents: number[]): { root: Buffer; blocks: number } {
    const header = (buf: Buffer, at: number, entries: number, max: number, depth: number) => {
      buf.writeUInt16LE(0xf30a, at);
      buf.writeUInt16LE(entries, at + 2);
      buf.writeUInt16LE(max, at + 4);
      buf.writeUInt16LE(depth, at + 6);
      buf.writeUInt32LE(0, at + 8);
    };
    const indexEntry = (buf: Buffer, at: number, lb: number, block: number) => {
      buf.writeUInt32LE(lb, at);
      buf.writeUInt32LE(block % 2 ** 32, at + 4);
      buf.writeUInt16LE(Math.floor(block / 2 ** 32), at + 8);
      buf.writeUInt16LE(0, at + 10);
    };
    // build levels bottom-up: each level is a list of [first logical block, block number]
    let blocks = 0;
    let level: [number, number][] = [];
    const count = extents.length / 3;
    for (let i = 0; i < count; i += EXTENTS_PER_BLOCK) {
      const n = Math.min(EXTENTS_PER_BLOCK, count - i);
      const b = Buffer.alloc(BLOCK);
      header(b, 0, n, EXTENTS_PER_BLOCK, 0);
      const v = viewOf(b);
      for (let j = 0; j < n; j++) writeLeafEntry(v, 12 + j * 12, extents, (i + j) * 3);
      level.push([extents[i * 3]!, this.append(b)]);
      blocks++;
    }
    let depth = 1;
    while (level.length > 4) {
      const up: [number, number][] = [];
      for (let i = 0; i < level.length; i += EXTENTS_PER_BLOCK) {
        const chunk = level.slice(i, i + EXTENTS_PER_BLOCK);
        const b = Buffer.alloc(BLOCK);
        header(b, 0, chunk.length, EXTENTS_PER_BLOCK, depth);
        chunk.forEach(([lb, blk], j) => indexEntry(b, 12 + j * 12, lb, blk));
        up.push([chunk[0]![0], this.append(b)]);
        blocks++;
      }
      level = up;
      depth++;
    }
    const root = Buffer.alloc(60);
    header(root, 0, level.length, 4, depth);
    level.forEach(([lb, blk], i) => indexEntry(root, 12 + i * 12, lb, blk));
    return { root, blocks };
  }

  /** Encodes inode `n` into the 256 bytes of `b` (viewed by `v`) at `at`, which are zero. */
  private encodeInode(n: number, b: Buffer, v: DataView, at: number): void {
    const t = this.nodes;
    const kind = t.kind[n]!;
    const ext = t.ext.get(n);
    const size = t.size[n]!;
    const uid = t.uid[n]!;
    const gid = t.gid[n]!;
    const links = t.links[n]!;
    const mSec = t.mSec[n]!;
    const mNsec = t.mNsec[n]!;
    v.setUint16(at, S_IFMT[kind]! | t.perm[n]!, true);
    v.setUint16(at + 2, uid & 0xffff, true);
    v.setUint32(at + 4, size % 2 ** 32, true);
    writeTime(v, t.aSec[n]!, t.aNsec[n]!, at + 8, at + 140);
    writeTime(v, t.cSec[n]!, t.cNsec[n]!, at + 12, at + 132);
    writeTime(v, mSec, mNsec, at + 16, at + 136);
    writeTime(v, mSec, mNsec, at + 144, at + 148); // crtime = mtime, as tar2ext4
    v.setUint16(at + 24, gid & 0xffff, true);
    v.setUint16(at + 26, links > 65000 ? 1 : links, true);
    const xattrBlock = t.xattrBlock[n]!;
    const sectors = (t.dataBlocks(n) + (ext?.extraBlocks ?? 0) + (xattrBlock !== 0 ? 1 : 0)) * (BLOCK / 512);
    v.setUint32(at + 28, sectors % 2 ** 32, true);
    v.setUint16(at + 116, Math.floor(sectors / 2 ** 32), true);
    const extents = usesExtents(t, n);
    const inline = t.inline(n);
    v.setUint32(at + 32, inline ? INLINE_DATA_FL : extents ? 0x80000 : 0, true);
    // i_block (60 bytes at 40)
    if (inline) inline.copy(b, at + 40, 0, Math.min(60, inline.length));
    else if (ext?.iblock) ext.iblock.copy(b, at + 40);
    else if (extents) {
      const count = t.extentCount(n);
      v.setUint16(at + 40, 0xf30a, true);
      v.setUint16(at + 42, count, true);
      v.setUint16(at + 44, 4, true);
      if (count > 0) writeLeaf(v, at + 52, t.firstLogical[n]!, t.firstLength[n]!, t.firstPhysical[n]!);
      const more = t.moreExtents.get(n);
      for (let i = 1; i < count; i++) writeLeafEntry(v, at + 52 + i * 12, more!, (i - 1) * 3);
    } else if (kind === SYMLINK) {
      t.copyTarget(n, b, at + 40); // under 60 bytes (longer ones have a block)
    } else if (kind === KIND.char || kind === KIND.block) {
      const major = ext?.devMajor ?? 0;
      const minor = ext?.devMinor ?? 0;
      if (major < 256 && minor < 256) v.setUint32(at + 40, (major << 8) | minor, true);
      else v.setUint32(at + 44, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
    }
    v.setUint32(at + 104, xattrBlock % 2 ** 32, true);
    v.setUint16(at + 118, Math.floor(xattrBlock / 2 ** 32), true);
    v.setUint32(at + 108, Math.floor(size / 2 ** 32), true);
    v.setUint16(at + 120, uid >>> 16, true);
    v.setUint16(at + 122, gid >>> 16, true);
    v.setUint16(at + 128, EXTRA_ISIZE, true);
    const area = inline ? undefined : t.xattrInInodeArea(n);
    if (area) area.copy(b, at + 128 + EXTRA_ISIZE);
    else {
      const placed = this.placedXattrs(n);
      if (placed) writeInInodeXattrs(b.subarray(at, at + INODE_SIZE), 128 + EXTRA_ISIZE, placed.inInode);
    }
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
