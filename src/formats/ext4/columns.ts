/**
 * Growable columns for the ext4 writer's tables (nodes.ts, dirents.ts): one typed array per
 * field, all with the same number of rows. Each is a length-tracking view of an ES2024
 * resizable ArrayBuffer (Node 20's V8 has them), so growing is in place: no copy, and no old
 * array waiting for the garbage collector while the new one already takes memory. The most
 * rows are reserved as address space only; pages become resident as rows are written.
 */
import { invalidArgument } from '../../services/errdefs.js';

export interface ResizableArrayBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}
/** `new ArrayBuffer(n, { maxByteLength })` (the project's TypeScript lib is ES2023: Node 20 lacks other ES2024 APIs) */
export const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, options: { maxByteLength: number }) => ResizableArrayBuffer;

export type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;

export class Columns {
  private readonly buffers: { buffer: ResizableArrayBuffer; bytes: number }[] = [];

  /** `rows` now, at most `maxRows` ever (`what` names a row in the error past that) */
  constructor(
    public rows: number,
    private readonly maxRows: number,
    private readonly what: string,
  ) {}

  /** A new column of `rows` zeros. */
  add<T extends Column>(make: { new (buffer: ArrayBuffer): T; BYTES_PER_ELEMENT: number }): T {
    const bytes = make.BYTES_PER_ELEMENT;
    const buffer = new ResizableArrayBuffer(this.rows * bytes, { maxByteLength: this.maxRows * bytes });
    this.buffers.push({ buffer, bytes });
    return new make(buffer);
  }

  /** Doubles the rows until row `row` exists (new rows are zero), up to `limit` rows (at most the most). */
  growTo(row: number, limit = this.maxRows): void {
    if (row < this.rows) return;
    const most = Math.min(limit, this.maxRows);
    if (row >= most) throw invalidArgument(`more than ${most} ${this.what} in one ext4 image`);
    let rows = this.rows;
    while (rows <= row) rows *= 2;
    rows = Math.min(most, rows);
    for (const { buffer, bytes } of this.buffers) buffer.resize(rows * bytes);
    this.rows = rows;
  }
}
