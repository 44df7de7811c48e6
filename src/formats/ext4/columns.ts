/**
 * Growable columns for the ext4 writer's tables (nodes.ts, dirents.ts): one typed array per
 * field, all with the same number of rows. Each is a length-tracking view of an ES2024
 * resizable ArrayBuffer (Node 20's V8 has them), which grows in place up to the address space
 * reserved for it: no copy, and no old array waiting for the garbage collector while the new
 * one already takes memory. Reserved space is not resident memory; pages become resident as
 * rows are written. The reservation starts modest (RESERVED_ROWS), so a process with an
 * address-space limit (RLIMIT_AS, `ulimit -v`) keeps room for V8's own heap; a table that
 * outgrows it moves once to a reservation four times larger (copying its rows), and its owner
 * re-reads the arrays (`growTo` says when).
 *
 * With a spill policy, a table that grows past `afterRows` rows moves instead into files
 * mapped into memory (services/fsutil/spill.ts), one per column, whose pages the process drops
 * from its resident set as it goes: its memory then stays bounded however large the table gets.
 * A spilled column's array is as long as its file (rows past `rows` are zero); a spilled table
 * that outgrows its files grows them (no copy: the data is in the files) and moves its arrays.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { MappedFile, type SpillPolicy } from '../../services/fsutil/spill.js';

export interface ResizableArrayBuffer extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(byteLength: number): void;
}
/** `new ArrayBuffer(n, { maxByteLength })` (the project's TypeScript lib is ES2023: Node 20 lacks other ES2024 APIs) */
export const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, options: { maxByteLength: number }) => ResizableArrayBuffer;

export type Column = Uint8Array<ArrayBuffer> | Uint16Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Float64Array<ArrayBuffer>;

/**
 * A resizable buffer of `byteLength` bytes that may grow to `maxByteLength`, or to as much
 * as the process may reserve, halving down to `byteLength` (a RangeError below that).
 */
export function reserveBuffer(byteLength: number, maxByteLength: number): ResizableArrayBuffer {
  for (let max = maxByteLength; ; max = Math.max(byteLength, Math.floor(max / 2))) {
    try {
      return new ResizableArrayBuffer(byteLength, { maxByteLength: max });
    } catch (err) {
      if (!(err instanceof RangeError) || max <= byteLength) throw err;
    }
  }
}

/** Rows reserved at first: 2^20 (an 89-byte inode row: 89 MiB of address space). */
export const RESERVED_ROWS = 2 ** 20;

type Make = { new (buffer: ArrayBuffer): Column; BYTES_PER_ELEMENT: number };

export class Columns {
  private readonly cols: { make: Make; array: Column; file?: MappedFile }[] = [];
  /** files of scratch() arrays, closed with the table */
  private readonly scratchFiles: MappedFile[] = [];
  /** rows the current buffers may grow to in place (spilled: the rows the files hold) */
  private reserved: number;
  /** whether the columns live in mapped files */
  spilled = false;

  /**
   * `rows` now, at most `maxRows` ever (`what` names a row in the error past that), address
   * space for `reservedRows` at first.
   */
  constructor(
    public rows: number,
    private readonly maxRows: number,
    private readonly what: string,
    reservedRows = RESERVED_ROWS,
    private readonly spill?: SpillPolicy,
  ) {
    this.reserved = Math.min(maxRows, Math.max(rows, reservedRows));
  }

  /** A new column of `rows` zeros. */
  add<T extends Column>(make: { new (buffer: ArrayBuffer): T; BYTES_PER_ELEMENT: number }): T {
    const buffer = reserveBuffer(this.rows * make.BYTES_PER_ELEMENT, this.reserved * make.BYTES_PER_ELEMENT);
    this.reserved = Math.min(this.reserved, Math.floor(buffer.maxByteLength / make.BYTES_PER_ELEMENT));
    const array = new make(buffer);
    this.cols.push({ make, array });
    return array;
  }

  /** The columns' arrays, in the order add() made them (new arrays after growTo() returned true). */
  arrays(): Column[] {
    return this.cols.map((c) => c.array);
  }

  /**
   * Doubles the rows until row `row` exists (new rows are zero), up to `limit` rows (at most
   * the most). Returns true when the columns moved to new buffers: then re-read arrays().
   */
  growTo(row: number, limit = this.maxRows): boolean {
    if (row < this.rows) return false;
    const most = Math.min(limit, this.maxRows);
    if (row >= most) throw invalidArgument(`more than ${most} ${this.what} in one ext4 image`);
    let rows = this.rows;
    while (rows <= row) rows *= 2;
    rows = Math.min(most, rows);
    if (this.spilled) return this.growFiles(rows);
    if (this.spill && rows > this.spill.afterRows && this.moveToFiles(rows)) return true;
    if (rows <= this.reserved) {
      for (const c of this.cols) (c.array.buffer as ResizableArrayBuffer).resize(rows * c.make.BYTES_PER_ELEMENT);
      this.rows = rows;
      return false;
    }
    let reserved = Math.min(this.maxRows, Math.max(rows, this.reserved * 4));
    for (const c of this.cols) {
      const bytes = c.make.BYTES_PER_ELEMENT;
      const buffer = reserveBuffer(rows * bytes, reserved * bytes);
      reserved = Math.min(reserved, Math.floor(buffer.maxByteLength / bytes));
      const array = new c.make(buffer);
      array.set(c.array as never);
      c.array = array;
    }
    this.reserved = reserved;
    this.rows = rows;
    return true;
  }

  /**
   * Moves the columns into mapped files of twice `rows` rows; false (nothing moved) when files
   * cannot be made. (Files grow by doubling: growing one costs no copy, and their blocks are
   * allocated up front, so room beyond that would be disk space taken for nothing.)
   */
  private moveToFiles(rows: number): boolean {
    const reserved = Math.min(this.maxRows, rows * 2);
    const files: MappedFile[] = [];
    for (const c of this.cols) {
      const f = MappedFile.create(this.spill!.dir, reserved * c.make.BYTES_PER_ELEMENT);
      if (!f) {
        for (const g of files) g.close();
        return false;
      }
      files.push(f);
    }
    this.cols.forEach((c, i) => {
      const array = new c.make(files[i]!.buffer);
      array.set(c.array as never);
      (c.array.buffer as ResizableArrayBuffer).resize(0); // frees the memory now, not at the next collection
      c.array = array;
      c.file = files[i];
    });
    this.spilled = true;
    this.reserved = reserved;
    this.rows = rows;
    return true;
  }

  private growFiles(rows: number): boolean {
    this.rows = rows;
    if (rows <= this.reserved) return false;
    this.reserved = Math.min(this.maxRows, Math.max(rows, this.reserved * 2));
    for (const c of this.cols) c.array = new c.make(c.file!.grow(this.reserved * c.make.BYTES_PER_ELEMENT));
    return true;
  }

  /**
   * A zeroed array of `length` elements that is not a column (e.g. an order of the rows),
   * in a mapped file when the columns are (and one can be made), else in memory.
   */
  scratch<T extends Column>(make: { new (buffer: ArrayBuffer): T; new (length: number): T; BYTES_PER_ELEMENT: number }, length: number): T {
    const f = this.spilled && length > 0 ? MappedFile.create(this.spill!.dir, length * make.BYTES_PER_ELEMENT) : undefined;
    if (!f) return new make(length);
    this.scratchFiles.push(f);
    return new make(f.buffer);
  }

  /** Releases spilled columns' files, and scratch arrays' (the arrays must not be used after). */
  close(): void {
    for (const c of this.cols) c.file?.close();
    for (const f of this.scratchFiles.splice(0)) f.close();
  }
}

/** Most bytes a ByteArena holds: 2 GiB. */
const MAX_ARENA_BYTES = 2 ** 31;
/** A ByteArena spills after this many bytes for each row its table spills after (names and targets average less). */
const ARENA_BYTES_PER_ROW = 16;

/**
 * Byte strings stored back to back (directory-entry names, symlink targets): a one-column
 * table of bytes, 64 KiB at first with `reservedBytes` of address space, which spills with the
 * table it serves (ARENA_BYTES_PER_ROW bytes for each of that table's `afterRows` rows).
 */
export class ByteArena {
  private readonly table: Columns;
  /** the bytes (a new array after take() moved them: re-read it) */
  bytes: Uint8Array<ArrayBuffer>;
  /** bytes taken so far */
  used = 0;

  /** `what` names the bytes in the error past MAX_ARENA_BYTES. */
  constructor(what: string, reservedBytes: number, spill?: SpillPolicy) {
    const bytesSpill = spill && { dir: spill.dir, afterRows: spill.afterRows * ARENA_BYTES_PER_ROW };
    this.table = new Columns(1 << 16, MAX_ARENA_BYTES, what, Math.max(1 << 16, reservedBytes), bytesSpill);
    this.bytes = this.table.add(Uint8Array);
  }

  /** Room for `len` more bytes, after those taken: returns where they start. */
  take(len: number): number {
    const at = this.used;
    if (at + len > this.table.rows && this.table.growTo(at + len - 1)) this.bytes = this.table.arrays()[0] as Uint8Array<ArrayBuffer>;
    this.used = at + len;
    return at;
  }

  /** Releases the bytes' file, if they spilled. */
  close(): void {
    this.table.close();
  }
}
