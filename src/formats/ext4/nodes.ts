/**
 * The inodes of an ext4 image while the writer builds it, stored as columns (one typed array per
 * field) indexed by a node id that is also the node's creation order. A node costs 89 bytes of
 * typed arrays, where an object per node cost ~380 bytes of heap (object header, boxed fields,
 * an extents array): a layer of 300k entries keeps ~90 MB less resident, and the garbage
 * collector has no per-node objects to trace or move. What only a few inodes have (device
 * numbers, more than one extent, extent trees) lives in a side map of records. Access and
 * change times are columns, not side records (GNU tar's pax format gives them for every
 * entry); symlink targets and inline data (`--inline`) are bytes in byte arenas; extended
 * attributes are numbered sets (xattr-sets.ts; an SELinux layer labels every file). All of
 * these are tables that spill: a record or a string per entry would grow the heap with the
 * layer where the columns spill to files (columns.ts).
 *
 * Facts about the fields (ext4 inode layout) are in writer.ts, which encodes them.
 */
import type { Xattr } from './xattr.js';
import { XattrSets } from './xattr-sets.js';
import type { TarTime } from '../tar/types.js';
import { ByteArena, Columns, RESERVED_ROWS, type Column } from './columns.js';
import { TRIM_EVERY, trimResident, type SpillPolicy } from '../../services/fsutil/spill.js';

/** Node kinds, as stored in the `kind` column. */
export const KIND = { file: 0, dir: 1, symlink: 2, char: 3, block: 4, fifo: 5 } as const;
export type Kind = keyof typeof KIND;

/** What only some inodes have (see the module comment). */
export interface NodeExt {
  devMajor?: number;
  devMinor?: number;
  // set while finishing
  /** blocks beyond the data counted in i_blocks (extent tree; the xattr block is counted apart) */
  extraBlocks?: number;
  /** the i_block area when it is an extent tree's root rather than a plain extent leaf */
  iblock?: Buffer;
}

/** Longest extent ext4 stores (initialized extents: 2^15 blocks). */
export const MAX_EXTENT_LEN = 32768;

const INITIAL_CAPACITY = 4096;
/** Address space reserved for the symlink targets and for inline data at first (columns.ts). */
const TARGETS_RESERVED = 2 ** 26;
const INLINE_RESERVED = 2 ** 24;
/** The columns, one row per node: field name → element type (the table's fields, see rebind()). */
const COLUMNS = {
  kind: Uint8Array,
  /** permission bits (mode & 07777) */
  perm: Uint16Array,
  /** owner ids, modulo 2^32 as ext4 stores them */
  uid: Uint32Array,
  gid: Uint32Array,
  mSec: Float64Array,
  mNsec: Uint32Array,
  /** access and change times (the modification time when the tar gives none) */
  aSec: Float64Array,
  aNsec: Uint32Array,
  cSec: Float64Array,
  cNsec: Uint32Array,
  size: Float64Array,
  /** a symlink's target: where its UTF-8 starts in the targets arena (its length is `size`) */
  targetAt: Uint32Array,
  /** the first extent: logical block, length (0: the node has no extent), physical block */
  firstLogical: Uint32Array,
  firstLength: Uint16Array,
  firstPhysical: Uint32Array,
  /** the node's extended attributes: a set number in `xattrSets` (0: none) */
  xattrSet: Uint32Array,
  /** a file's inline data (`--inline`): 1 + where its bytes start in the inline arena (0: none; its length is `size`) */
  inlineAt: Uint32Array,
  // set while finishing
  /** the block holding the xattrs that do not fit in the inode (0: none) */
  xattrBlock: Uint32Array,
  ino: Uint32Array,
  links: Uint32Array,
  /** a directory's parent directory (directories only) */
  parent: Uint32Array,
} as const;
const COLUMN_NAMES = Object.keys(COLUMNS) as (keyof typeof COLUMNS)[];
type NodeColumns = { [K in keyof typeof COLUMNS]: InstanceType<(typeof COLUMNS)[K]> };

/**
 * Most nodes a table holds: 16.7 million, far past any container layer (whose names alone
 * would then take gigabytes); a Float64 column of that many rows is 128 MiB.
 */
export const MAX_NODES = 2 ** 24;

// the columns are the table's fields: declared here, assigned by rebind()
export interface NodeTable extends NodeColumns {}
export class NodeTable {
  /** nodes created so far (ids 0 … count-1) */
  count = 0;
  private readonly columns: Columns;

  /**
   * `maxNodes`: the most nodes this table takes (MAX_NODES; lower only in tests), and
   * `reservedRows` the rows reserved at first (see columns.ts; lower only in tests), and
   * `spill` where and when the columns move to files (columns.ts; none: they stay in memory).
   */
  constructor(
    private readonly maxNodes = MAX_NODES,
    reservedRows = RESERVED_ROWS,
    spill?: SpillPolicy,
  ) {
    this.columns = new Columns(INITIAL_CAPACITY, MAX_NODES, 'inodes', reservedRows, spill);
    for (const name of COLUMN_NAMES) this.columns.add<Column>(COLUMNS[name]);
    this.rebind();
    this.targets = new ByteArena('bytes of symlink targets', TARGETS_RESERVED, spill);
    this.xattrSets = new XattrSets(spill);
    this.inlineBytes = new ByteArena('bytes of inline data', INLINE_RESERVED, spill);
  }

  /** inline data of small files, back to back */
  private readonly inlineBytes: ByteArena;

  /** Keeps `data` (copied) as the file's inline data, and its length as its size. */
  setInline(id: number, data: Uint8Array): void {
    const at = this.inlineBytes.take(data.length);
    this.inlineBytes.bytes.set(data, at);
    this.inlineAt[id] = at + 1;
    this.size[id] = data.length;
  }

  /** The file's inline data (a view: use it before the next setInline), or undefined when it has none. */
  inline(id: number): Buffer | undefined {
    const at = this.inlineAt[id]!;
    if (at === 0) return undefined;
    const bytes = this.inlineBytes.bytes;
    return Buffer.from(bytes.buffer, bytes.byteOffset + at - 1, this.size[id]!);
  }

  /** Forgets the file's inline data (it is stored in a block after all). */
  dropInline(id: number): void {
    this.inlineAt[id] = 0;
  }

  /** the sets of extended attributes the nodes refer to (`xattrSet`) */
  private readonly xattrSets: XattrSets;

  /** Gives the node the extended attributes `xattrs` (names distinct), or none when empty. */
  setXattrs(id: number, xattrs: readonly Xattr[]): void {
    this.xattrSet[id] = xattrs.length > 0 ? this.xattrSets.add(xattrs) : 0;
  }

  /**
   * The node's in-inode xattr area (xattr.ts IN_INODE_AREA bytes, see xattr-sets.ts) when it has xattrs and
   * they all fit in the inode; undefined otherwise. A view: use it before the next setXattrs().
   */
  xattrInInodeArea(id: number): Buffer | undefined {
    const set = this.xattrSet[id]!;
    return set === 0 ? undefined : this.xattrSets.inInodeArea(set);
  }

  /** The node's extended attributes (copies), in the order they were given; empty when none. */
  xattrs(id: number): Xattr[] {
    const set = this.xattrSet[id]!;
    return set === 0 ? [] : this.xattrSets.get(set);
  }

  /** symlink targets, UTF-8, back to back */
  private readonly targets: ByteArena;

  /** Stores `target` as the symlink's target (UTF-8, as Buffer encodes it) and its length as its size; returns the length. */
  setTarget(id: number, target: string): number {
    const len = Buffer.byteLength(target, 'utf8');
    const at = this.targets.take(len);
    this.targetBytes().write(target, at, len, 'utf8');
    this.targetAt[id] = at;
    this.size[id] = len;
    return len;
  }

  /** The symlink's target bytes (a view: use it before the next setTarget). */
  target(id: number): Buffer {
    return this.targetBytes().subarray(this.targetAt[id]!, this.targetAt[id]! + this.size[id]!);
  }

  /** The symlink targets' bytes, back to back (`targetAt` and `size` locate each; valid until the next setTarget). */
  targetArena(): Uint8Array {
    return this.targets.bytes;
  }

  /** Copies the symlink's target bytes to dst[at...] (no view made: one per fast symlink's inode). */
  copyTarget(id: number, dst: Uint8Array, at: number): void {
    const bytes = this.targets.bytes;
    const from = this.targetAt[id]!;
    const len = this.size[id]!;
    for (let i = 0; i < len; i++) dst[at + i] = bytes[from + i]!;
  }

  /**
   * A Buffer over the targets' arena, made again only when the arena moved or grew (take(): its
   * array may be new, or track a resizable buffer that grew in place).
   */
  private targetBytes(): Buffer {
    const bytes = this.targets.bytes;
    const v = this.targetView;
    if (v?.bytes !== bytes || v.buffer.length !== bytes.byteLength) this.targetView = { bytes, buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    return this.targetView!.buffer;
  }
  private targetView: { bytes: Uint8Array; buffer: Buffer } | undefined;

  /** extents after the first, as flat [logical block, length, physical block] triples */
  readonly moreExtents = new Map<number, number[]>();
  readonly ext = new Map<number, NodeExt>();

  /** A new node; without `atime`/`ctime` those times are `mtime`. */
  add(kind: Kind, perm: number, uid: number, gid: number, atime?: TarTime, mtime?: TarTime, ctime?: TarTime): number {
    if (this.count === this.columns.rows && this.columns.growTo(this.count, this.maxNodes)) this.rebind();
    const id = this.count++;
    if ((id & TRIM_EVERY) === 0) trimResident();
    const mSec = mtime ? Number(mtime.sec) : 0;
    const mNsec = mtime ? mtime.nsec : 0;
    this.kind[id] = KIND[kind];
    this.perm[id] = perm & 0o7777;
    this.uid[id] = uid;
    this.gid[id] = gid;
    this.mSec[id] = mSec;
    this.mNsec[id] = mNsec;
    this.aSec[id] = atime ? Number(atime.sec) : mSec;
    this.aNsec[id] = atime ? atime.nsec : mNsec;
    this.cSec[id] = ctime ? Number(ctime.sec) : mSec;
    this.cNsec[id] = ctime ? ctime.nsec : mNsec;
    return id;
  }

  /** Takes the columns' arrays as the table's fields (at first, and after they moved). */
  private rebind(): void {
    const arrays = this.columns.arrays();
    COLUMN_NAMES.forEach((name, i) => {
      (this as unknown as Record<string, Column>)[name] = arrays[i]!;
    });
  }

  /** A zeroed array of `length` node ids (an order of nodes): in a file too once the columns spilled. */
  newOrder(length: number): Uint32Array<ArrayBuffer> {
    return this.columns.scratch(Uint32Array, length);
  }

  /** Releases the columns' files, if they spilled (the table must not be used after). */
  close(): void {
    this.columns.close();
    this.targets.close();
    this.xattrSets.close();
    this.inlineBytes.close();
  }

  /** The node's side record, made on first use. */
  more(id: number): NodeExt {
    let x = this.ext.get(id);
    if (!x) this.ext.set(id, (x = {}));
    return x;
  }

  /**
   * Gives node `to` every attribute of node `from` (what a later tar entry for a directory does
   * to the directory already there, and to the root; its entries, kept in dirents.ts, stay).
   */
  copyAttributes(from: number, to: number): void {
    for (const column of this.columns.arrays()) column[to] = column[from]!;
    const more = this.moreExtents.get(from);
    if (more) this.moreExtents.set(to, more);
    else this.moreExtents.delete(to);
    const x = this.ext.get(from);
    if (x) this.ext.set(to, x);
    else this.ext.delete(to);
  }

  /**
   * Records that the `count` physical blocks from `physical` hold the logical blocks from
   * `logical` (appended in order): the last extent grows while both numberings continue it,
   * up to the longest extent ext4 stores; the rest starts new extents.
   */
  addBlock(id: number, logical: number, physical: number, count = 1): void {
    while (count > 0) {
      let take: number;
      const more = this.moreExtents.get(id);
      const len = more ? more[more.length - 2]! : this.firstLength[id]!;
      const lastLogical = more ? more[more.length - 3]! : this.firstLogical[id]!;
      const lastPhysical = more ? more[more.length - 1]! : this.firstPhysical[id]!;
      if (len > 0 && len < MAX_EXTENT_LEN && lastLogical + len === logical && lastPhysical + len === physical) {
        take = Math.min(count, MAX_EXTENT_LEN - len);
        if (more) more[more.length - 2] = len + take;
        else this.firstLength[id] = len + take;
      } else {
        take = Math.min(count, MAX_EXTENT_LEN);
        if (more) more.push(logical, take, physical);
        else if (len === 0) {
          this.firstLogical[id] = logical;
          this.firstLength[id] = take;
          this.firstPhysical[id] = physical;
        } else this.moreExtents.set(id, [logical, take, physical]);
      }
      logical += take;
      physical += take;
      count -= take;
    }
  }

  /** Blocks the extents map: the data blocks counted in i_blocks (file data, directory blocks, a long symlink's block). */
  dataBlocks(id: number): number {
    let blocks = this.firstLength[id]!;
    const more = this.moreExtents.get(id);
    if (more) for (let i = 1; i < more.length; i += 3) blocks += more[i]!;
    return blocks;
  }

  extentCount(id: number): number {
    if (this.firstLength[id] === 0) return 0;
    const more = this.moreExtents.get(id);
    return 1 + (more ? more.length / 3 : 0);
  }

  /** The node's extents as flat [logical block, length, physical block] triples (a new array). */
  extents(id: number): number[] {
    if (this.firstLength[id] === 0) return [];
    const first = [this.firstLogical[id]!, this.firstLength[id]!, this.firstPhysical[id]!];
    const more = this.moreExtents.get(id);
    return more ? first.concat(more) : first;
  }

  /** Replaces the node's extents by the flat triples `x`. */
  setExtents(id: number, x: readonly number[]): void {
    this.moreExtents.delete(id);
    if (x.length === 0) {
      this.firstLength[id] = 0;
      return;
    }
    this.firstLogical[id] = x[0]!;
    this.firstLength[id] = x[1]!;
    this.firstPhysical[id] = x[2]!;
    if (x.length > 3) this.moreExtents.set(id, x.slice(3));
  }
}
