/**
 * The directory entries of an ext4 image while the writer builds it: (directory, name) → node,
 * in insertion order per directory (a replaced entry keeps its place, as a re-extracted file
 * keeps its directory slot), held outside the JavaScript heap. Names are stored once, as the
 * UTF-8 bytes the directory blocks will hold, in one byte arena; entries are rows of typed
 * arrays; lookups go through an open-addressing hash table of entry numbers. A layer of 300k
 * entries keeps ~50 bytes an entry here, where a Map per directory and a string per name
 * kept ~130 bytes of heap (and pinned each tar path a name was sliced from).
 *
 * Names are encoded as Buffer encodes strings (a lone surrogate becomes U+FFFD), so two names
 * are the same entry exactly when their on-disk bytes are the same.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { ByteArena, Columns, RESERVED_ROWS } from './columns.js';
import { MappedFile, TRIM_EVERY, trimResident, type SpillPolicy } from '../../services/fsutil/spill.js';

/** Longest name a directory entry holds (ext4 name_len is one byte). */
export const MAX_NAME_BYTES = 255;

const INITIAL_ENTRIES = 4096;
type U8 = Uint8Array<ArrayBuffer>;
type U32 = Uint32Array<ArrayBuffer>;
/** Most entries: as many as the node table's most nodes (see nodes.ts), plus hard links to them. */
const MAX_ENTRIES = 2 ** 25;
/** Address space reserved for the names at first (moved to 4× more when outgrown, see columns.ts). */
const ARENA_RESERVED = 2 ** 26;

/** UTF-8 of `s` into `out` (at most MAX_NAME_BYTES + 3 bytes are written); returns the length, or -1 past 255 bytes. */
function encodeName(s: string, out: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < s.length && n <= MAX_NAME_BYTES; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[n++] = 0xf0 | (cp >> 18);
        out[n++] = 0x80 | ((cp >> 12) & 0x3f);
        out[n++] = 0x80 | ((cp >> 6) & 0x3f);
        out[n++] = 0x80 | (cp & 0x3f);
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate, as Buffer encodes it
    out[n++] = 0xe0 | (c >> 12);
    out[n++] = 0x80 | ((c >> 6) & 0x3f);
    out[n++] = 0x80 | (c & 0x3f);
  }
  return n > MAX_NAME_BYTES ? -1 : n;
}

const FNV_PRIME = 0x01000193;

/** FNV-1a over the directory number's four bytes (the start of an entry's hash). */
function hashDir(dir: number): number {
  let h = 0x811c9dc5;
  h = Math.imul(h ^ (dir & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((dir >>> 8) & 0xff), FNV_PRIME);
  h = Math.imul(h ^ ((dir >>> 16) & 0xff), FNV_PRIME);
  return Math.imul(h ^ (dir >>> 24), FNV_PRIME);
}

/** FNV-1a over the directory number and the name bytes. */
function hashName(dir: number, name: Uint8Array, len: number): number {
  let h = hashDir(dir);
  for (let i = 0; i < len; i++) h = Math.imul(h ^ name[i]!, FNV_PRIME);
  return h >>> 0;
}

/**
 * Entry handles are entry numbers + 1, so 0 means "none" (and a freshly grown, zero-filled
 * column means "no entry yet").
 */
export class DirectoryEntries {
  /** entries so far */
  count = 0;
  private readonly rows: Columns;
  // the rows' columns (replaced together when they move)
  private dirOf: U32;
  private nodeOf: U32;
  private nameAt: U32;
  private nameLen: U8;
  private hashOf: U32;
  /** the next entry of the same directory (a handle) */
  private nextOf: U32;
  /** UTF-8 names, back to back (at most 2 GiB: 64 bytes for each of the most entries) */
  private readonly arena: ByteArena;
  /** each directory's first and last entry (handles), indexed by the directory's node id */
  private readonly dirs: Columns;
  private firstOf: U32;
  private lastOf: U32;
  /** open addressing, linear probing: handles, 0 = empty; at most half full */
  private table = new Uint32Array(INITIAL_ENTRIES * 2);
  /** the file holding `table`, once the rows spilled */
  private tableFile: MappedFile | undefined;
  /** the name of the last find(), encoded, and its hash and directory (for add() right after) */
  private readonly scratch = new Uint8Array(MAX_NAME_BYTES + 4);
  private foundLen = 0;
  private foundHash = 0;
  private foundDir = -1;

  /**
   * `reservedRows` and `arenaReserved`: address space reserved at first (see columns.ts; lower
   * only in tests); `spill`: where and when the tables move to files (columns.ts; none: they
   * stay in memory).
   */
  constructor(
    reservedRows = RESERVED_ROWS,
    arenaReserved = ARENA_RESERVED,
    private readonly spill?: SpillPolicy,
  ) {
    this.rows = new Columns(INITIAL_ENTRIES, MAX_ENTRIES, 'directory entries', reservedRows, spill);
    this.dirOf = this.rows.add(Uint32Array);
    this.nodeOf = this.rows.add(Uint32Array);
    this.nameAt = this.rows.add(Uint32Array);
    this.nameLen = this.rows.add(Uint8Array);
    this.hashOf = this.rows.add(Uint32Array);
    this.nextOf = this.rows.add(Uint32Array);
    this.arena = new ByteArena('bytes of names', arenaReserved, spill);
    this.dirs = new Columns(INITIAL_ENTRIES, MAX_ENTRIES, 'directories', reservedRows, spill);
    this.firstOf = this.dirs.add(Uint32Array);
    this.lastOf = this.dirs.add(Uint32Array);
  }

  /** The node `name` names in directory `dir`, or -1. */
  get(dir: number, name: string): number {
    const e = this.find(dir, name);
    return e === 0 ? -1 : this.nodeOf[e - 1]!;
  }

  /** Makes `name` in `dir` name `node`: a new entry last in the directory, or the existing one, in its place. */
  set(dir: number, name: string, node: number): void {
    const e = this.find(dir, name);
    if (e !== 0) this.setNode(e, node);
    else this.add(dir, node);
  }

  /**
   * The entry for `name` in `dir` (a handle), or 0. The name stays encoded, so that a caller
   * who found nothing can add() it without encoding and hashing it again.
   */
  find(dir: number, name: string): number {
    // ASCII names (most) are copied and hashed in one pass; others go through encodeName
    const out = this.scratch;
    let len = name.length;
    let h = hashDir(dir);
    let ascii = len <= MAX_NAME_BYTES;
    for (let i = 0; ascii && i < len; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) ascii = false;
      out[i] = c;
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    if (!ascii) {
      len = this.encode(name);
      h = hashName(dir, out, len);
    }
    const hash = h >>> 0;
    const e = this.probe(dir, len, hash);
    this.foundLen = len;
    this.foundHash = hash;
    this.foundDir = e === 0 ? dir : -1; // add() only a name that is not there
    return e;
  }

  /** Makes entry `entry` name `node`. */
  setNode(entry: number, node: number): void {
    this.nodeOf[entry - 1] = node;
  }

  /** Adds the name the last find() looked for (and did not find) in `dir`, last, naming `node`. */
  add(dir: number, node: number): void {
    if (dir !== this.foundDir) throw new Error(`DirectoryEntries.add(${dir}) does not follow a find() that found nothing in that directory`);
    const len = this.foundLen;
    const hash = this.foundHash;
    this.foundDir = -1;
    if (this.count >= this.rows.rows && this.rows.growTo(this.count)) {
      [this.dirOf, this.nodeOf, this.nameAt, this.nameLen, this.hashOf, this.nextOf] = this.rows.arrays() as [U32, U32, U32, U8, U32, U32];
    }
    const at = this.arena.take(len);
    if (dir >= this.dirs.rows && this.dirs.growTo(dir)) [this.firstOf, this.lastOf] = this.dirs.arrays() as [U32, U32];
    const i = this.count++;
    const names = this.names;
    const scratch = this.scratch;
    for (let k = 0; k < len; k++) names[at + k] = scratch[k]!;
    this.dirOf[i] = dir;
    this.nodeOf[i] = node;
    this.nameAt[i] = at;
    this.nameLen[i] = len;
    this.hashOf[i] = hash;
    const h = i + 1;
    const last = this.lastOf[dir]!;
    if (last === 0) this.firstOf[dir] = h;
    else this.nextOf[last - 1] = h;
    this.lastOf[dir] = h;
    if (this.count * 2 > this.table.length) this.rehash();
    else this.insert(h, hash);
  }

  /**
   * The arrays behind first/next/node/nameOffset/nameLength and `names`, for native code
   * (fsx.c dirBlocks): [firstOf, nextOf, nodeOf, nameAt, nameLen, names]. Valid until the next
   * add() or set().
   */
  linkArrays(): [U32, U32, U32, U32, U8, U8] {
    return [this.firstOf, this.nextOf, this.nodeOf, this.nameAt, this.nameLen, this.arena.bytes];
  }

  /** The names, UTF-8 (an entry's is `nameLength` bytes from `nameOffset`); a new array after an add() that moved them. */
  get names(): U8 {
    return this.arena.bytes;
  }

  /** The first entry of `dir` (a handle; 0 when it has none). */
  first(dir: number): number {
    return dir < this.firstOf.length ? this.firstOf[dir]! : 0;
  }
  /** The entry after `entry` in its directory (0 at the end). */
  next(entry: number): number {
    return this.nextOf[entry - 1]!;
  }
  node(entry: number): number {
    return this.nodeOf[entry - 1]!;
  }
  /** Where the entry's UTF-8 name starts in `names`. */
  nameOffset(entry: number): number {
    return this.nameAt[entry - 1]!;
  }
  nameLength(entry: number): number {
    return this.nameLen[entry - 1]!;
  }

  private encode(name: string): number {
    const len = encodeName(name, this.scratch);
    if (len < 0) throw invalidArgument(`name "${name.slice(0, 64)}…" is longer than ${MAX_NAME_BYTES} bytes`, { entry: name });
    return len;
  }

  /** The handle of the entry for the name in `scratch[0, len)` in `dir`, or 0. */
  private probe(dir: number, len: number, hash: number): number {
    const table = this.table;
    const mask = table.length - 1;
    const names = this.names;
    const scratch = this.scratch;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const h = table[slot]!;
      if (h === 0) return 0;
      const i = h - 1;
      if (this.hashOf[i] !== hash || this.dirOf[i] !== dir || this.nameLen[i] !== len) continue;
      const at = this.nameAt[i]!;
      let k = 0;
      while (k < len && names[at + k] === scratch[k]) k++;
      if (k === len) return h;
    }
  }

  private insert(handle: number, hash: number): void {
    const table = this.table;
    const mask = table.length - 1;
    let slot = hash & mask;
    while (table[slot] !== 0) slot = (slot + 1) & mask;
    table[slot] = handle;
  }

  /** Doubles the table (into a file once the rows have spilled, see columns.ts). */
  private rehash(): void {
    const slots = this.table.length * 2;
    const file = this.rows.spilled ? MappedFile.create(this.spill!.dir, slots * 4) : undefined;
    this.tableFile?.close();
    this.tableFile = file;
    this.table = file ? new Uint32Array(file.buffer) : new Uint32Array(slots);
    for (let i = 0; i < this.count; i++) {
      if ((i & TRIM_EVERY) === 0) trimResident();
      this.insert(i + 1, this.hashOf[i]!);
    }
  }

  /** Releases spilled tables' files (the entries must not be used after). */
  close(): void {
    this.rows.close();
    this.dirs.close();
    this.arena.close();
    this.tableFile?.close();
    this.tableFile = undefined;
  }
}
