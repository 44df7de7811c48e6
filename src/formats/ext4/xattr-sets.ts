/**
 * The extended attributes of the ext4 writer's inodes (a tar's `SCHILY.xattr.*` records),
 * as numbered sets: an inode keeps only its set's number (NodeTable's `xattrSet` column).
 *
 * Layers label most files alike (`security.selinux` on every file of an SELinux system,
 * `security.capability` on a few), so a set among the last 16 stored is found again and shared;
 * others are stored once each (a set recurring later is stored again: bytes in a file, not memory). A set's bytes lie back to back with the others' in a ByteArena, its
 * start and length in a Columns table, and both spill to files like the writer's other tables
 * (columns.ts): a layer in which every entry carries xattrs converts in bounded memory.
 * (Until 2026-12-06 each such inode had a Map and a Buffer per value: 600,000 entries with
 * an SELinux label peaked at 838 MiB.)
 *
 * A set's encoding, per xattr in order: u16 name length, name (UTF-8), u32 value length, value.
 * A set that fits in an inode (almost every set: an SELinux label takes 52 of its 92 bytes) is
 * followed by its in-inode area, made once when the set is added, so encoding an inode copies
 * 96 bytes instead of placing the set again.
 */
import type { SpillPolicy } from '../../services/fsutil/spill.js';
import { ByteArena, Columns } from './columns.js';
import { IN_INODE_AREA, placeXattrs, writeInInodeXattrs, type Xattr } from './xattr.js';

/** Sets remembered for sharing, the oldest replaced first (a layer's files mostly share a few). */
const RECENT_SETS = 16;
/** Most sets: one per inode at most, plus changes (opaque-directory markers). */
const MAX_SETS = 2 ** 25;
/** Address space reserved at first for the sets' bytes and rows (columns.ts). */
const BYTES_RESERVED = 2 ** 24;
const ROWS_RESERVED = 2 ** 16;

/**
 * The in-inode xattr area (IN_INODE_AREA bytes: magic, entries, values from the end) that holds
 * all of `xattrs`, or undefined when placeXattrs would need a block (or refuses a name). The
 * area's value offsets are relative to its first entry, so it is the same wherever it lies.
 */
function inInodeArea(xattrs: readonly Xattr[]): Buffer | undefined {
  let placed;
  try {
    placed = placeXattrs([...xattrs]);
  } catch {
    return undefined; // the writer places it again, and reports the error with the inode
  }
  if (placed.block.length > 0) return undefined;
  const area = Buffer.alloc(IN_INODE_AREA);
  writeInInodeXattrs(area, 0, placed.inInode);
  return area;
}

export class XattrSets {
  private readonly bytes: ByteArena;
  private readonly table: Columns;
  private start: Float64Array;
  private length: Uint32Array;
  /** 1 when the set fits in an inode: its in-inode area follows its bytes (IN_INODE_AREA more) */
  private inInode: Uint8Array;
  /** sets so far, number 0 (none) included */
  private count = 1;
  /**
   * The last RECENT_SETS sets stored (encodings and numbers), looked at before storing another:
   * a ring, the newest at `newest`. (A Map keyed by the encoding kept a string per set; with
   * many distinct sets those survived into V8's old generation and its young generation grew:
   * 117 MiB peak on the labelled 600k-entry tar, 97 MiB with the ring.)
   */
  private readonly recent: { bytes: Buffer; id: number }[] = [];
  private newest = -1;
  /** the slot that matched last: the next entry most likely has the same set */
  private lastHit = 0;
  /** where a set is encoded before it is looked up */
  private scratch = Buffer.allocUnsafe(1024);

  constructor(spill?: SpillPolicy) {
    this.table = new Columns(1024, MAX_SETS, 'sets of extended attributes', ROWS_RESERVED, spill);
    this.start = this.table.add(Float64Array);
    this.length = this.table.add(Uint32Array);
    this.inInode = this.table.add(Uint8Array);
    this.bytes = new ByteArena('bytes of extended attributes', BYTES_RESERVED, spill);
  }

  /** The number (≥ 1) of the set of `xattrs` (names distinct, in order), stored if not seen recently. */
  add(xattrs: readonly Xattr[]): number {
    let size = 0;
    for (const x of xattrs) size += 6 + Buffer.byteLength(x.name, 'utf8') + x.value.length;
    if (size > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(size, this.scratch.length * 2));
    const s = this.scratch;
    let at = 0;
    for (const x of xattrs) {
      const nameLength = s.write(x.name, at + 2, 'utf8');
      s.writeUInt16LE(nameLength, at);
      at += 2 + nameLength;
      s.writeUInt32LE(x.value.length, at);
      at += 4 + x.value.copy(s, at + 4);
    }
    // one of the sets stored last, starting with the one the entry before had
    const recent = this.recent;
    for (let k = 0, i = this.lastHit; k < recent.length; k++, i = i === 0 ? recent.length - 1 : i - 1) {
      const r = recent[i]!;
      if (r.bytes.length === size && s.compare(r.bytes, 0, size, 0, size) === 0) {
        this.lastHit = i;
        return r.id;
      }
    }
    const id = this.count++;
    if (this.table.growTo(id)) [this.start, this.length, this.inInode] = this.table.arrays() as [Float64Array, Uint32Array, Uint8Array];
    const area = inInodeArea(xattrs);
    const where = this.bytes.take(size + (area ? IN_INODE_AREA : 0));
    this.bytes.bytes.set(s.subarray(0, size), where);
    if (area) this.bytes.bytes.set(area, where + size);
    this.start[id] = where;
    this.length[id] = size;
    this.inInode[id] = area ? 1 : 0;
    this.newest = (this.newest + 1) % RECENT_SETS;
    recent[this.newest] = { bytes: Buffer.from(s.subarray(0, size)), id };
    this.lastHit = this.newest;
    return id;
  }

  /**
   * The in-inode xattr area (IN_INODE_AREA bytes) holding all of set `id` (≥ 1), or undefined
   * when the set needs an xattr block. A view: use it before the next add().
   */
  inInodeArea(id: number): Buffer | undefined {
    if (this.inInode[id] !== 1) return undefined;
    const b = this.bytes.bytes;
    return Buffer.from(b.buffer, b.byteOffset + this.start[id]! + this.length[id]!, IN_INODE_AREA);
  }

  /** The xattrs of set `id` (≥ 1), in the order they were added; the values are copies. */
  get(id: number): Xattr[] {
    if (id < 1 || id >= this.count) throw new RangeError(`no xattr set ${id}`);
    const b = this.bytes.bytes;
    const view = Buffer.from(b.buffer, b.byteOffset + this.start[id]!, this.length[id]!);
    const out: Xattr[] = [];
    for (let at = 0; at < view.length; ) {
      const nameLength = view.readUInt16LE(at);
      const name = view.toString('utf8', at + 2, at + 2 + nameLength);
      at += 2 + nameLength;
      const valueLength = view.readUInt32LE(at);
      out.push({ name, value: Buffer.from(view.subarray(at + 4, at + 4 + valueLength)) });
      at += 4 + valueLength;
    }
    return out;
  }

  /** Releases the files, if the sets spilled. */
  close(): void {
    this.table.close();
    this.bytes.close();
  }
}
