/**
 * The extended attributes of the ext4 writer's inodes (a tar's `SCHILY.xattr.*` records),
 * as numbered sets: an inode keeps only its set's number (NodeTable's `xattrSet` column).
 *
 * Layers label most files alike (`security.selinux` on every file of an SELinux system,
 * `security.capability` on a few), so a set seen recently is found again and shared; others
 * are stored once each. A set's bytes lie back to back with the others' in a ByteArena, its
 * start and length in a Columns table, and both spill to files like the writer's other tables
 * (columns.ts): a layer in which every entry carries xattrs converts in bounded memory.
 * (Until 2026-12-06 each such inode had a Map and a Buffer per value: 600,000 entries with
 * an SELinux label peaked at 838 MiB.)
 *
 * A set's encoding, per xattr in order: u16 name length, name (UTF-8), u32 value length, value.
 */
import type { SpillPolicy } from '../../services/fsutil/spill.js';
import { ByteArena, Columns } from './columns.js';
import { entrySize, IN_INODE_SPACE, splitXattrName, valueSize, type Xattr } from './xattr.js';

/** Sets remembered for sharing (forgotten all at once when full: a plain Map stays fast). */
const RECENT_SETS = 1024;
/** Most sets: one per inode at most, plus changes (opaque-directory markers). */
const MAX_SETS = 2 ** 25;
/** Address space reserved at first for the sets' bytes and rows (columns.ts). */
const BYTES_RESERVED = 2 ** 24;
const ROWS_RESERVED = 2 ** 16;

/** Whether placeXattrs puts all of `xattrs` in the inode (false also for a name it refuses). */
function fitsInInode(xattrs: readonly Xattr[]): boolean {
  let used = 4; // as placeXattrs counts: the terminating zero word
  try {
    for (const x of xattrs) used += entrySize(splitXattrName(x.name)) + valueSize(x.value);
  } catch {
    return false;
  }
  return used <= IN_INODE_SPACE;
}

export class XattrSets {
  private readonly bytes: ByteArena;
  private readonly table: Columns;
  private start: Float64Array;
  private length: Uint32Array;
  /** whether all of the set fits in an inode (1), so no xattr block is needed */
  private inInode: Uint8Array;
  /** sets so far, number 0 (none) included */
  private count = 1;
  /** encoding (as latin1 text) → set number, of recent sets */
  private readonly recent = new Map<string, number>();
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
    const key = s.toString('latin1', 0, size);
    const known = this.recent.get(key);
    if (known !== undefined) return known;
    const id = this.count++;
    if (this.table.growTo(id)) [this.start, this.length, this.inInode] = this.table.arrays() as [Float64Array, Uint32Array, Uint8Array];
    const where = this.bytes.take(size);
    this.bytes.bytes.set(s.subarray(0, size), where);
    this.start[id] = where;
    this.length[id] = size;
    this.inInode[id] = fitsInInode(xattrs) ? 1 : 0;
    if (this.recent.size === RECENT_SETS) this.recent.clear();
    this.recent.set(key, id);
    return id;
  }

  /** Whether all xattrs of set `id` (≥ 1) fit in the inode (placeXattrs then needs no block). */
  fitInInode(id: number): boolean {
    return this.inInode[id] === 1;
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
