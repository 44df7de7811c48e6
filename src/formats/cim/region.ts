/**
 * One region file being written: `region_<guid>_<i>` holds a 40-byte RegionHeader at offset 0
 * and then objects at the region type's alignment (8 bytes for metadata and small data, 4096 for
 * page-aligned data; windows-layer-formats.md §3.2). Appends are buffered (≤ 1 MiB pending) and
 * written with positional writes, so memory stays bounded however large the data is.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { OBJECTID_DIGEST_SIZE, REGION_HEADER_SIZE } from './constants.js';
import { encodeRegionHeader } from './structs.js';

const FLUSH_AT = 1 << 20;

export interface ObjectId {
  length: bigint;
  digest: Buffer;
  offset: number;
}

/** SHA-256 truncated to the 24-byte ObjectID digest (the algorithm cimfs uses is unpublished). */
export function objectDigest(data: Buffer | Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const d of Array.isArray(data) ? data : [data]) h.update(d);
  return Buffer.from(h.digest().subarray(0, OBJECTID_DIGEST_SIZE));
}

export class RegionFileWriter {
  /** Logical end of the region (bytes written or pending). */
  size = REGION_HEADER_SIZE;
  private pending: Buffer[] = [];
  private pendingStart = REGION_HEADER_SIZE;
  private pendingBytes = 0;
  readonly objectIds: ObjectId[] = [];

  private constructor(
    readonly path: string,
    readonly localIndex: number,
    readonly regionType: number,
    readonly alignment: number,
    private fh: FileHandle,
  ) {}

  static async create(path: string, localIndex: number, regionType: number, alignment: number): Promise<RegionFileWriter> {
    const fh = await open(path, 'w+');
    return new RegionFileWriter(path, localIndex, regionType, alignment, fh);
  }

  /** Pads to the region's alignment (or `align`) and returns the aligned offset. */
  pad(align = this.alignment): number {
    const rem = this.size % align;
    if (rem !== 0) this.push(Buffer.alloc(align - rem));
    return this.size;
  }

  private push(b: Buffer): void {
    if (b.length === 0) return;
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.size += b.length;
  }

  /** Appends bytes at the current end (no alignment); the returned offset is where they start. */
  async write(b: Buffer): Promise<number> {
    const at = this.size;
    this.push(b);
    if (this.pendingBytes >= FLUSH_AT) await this.flush();
    return at;
  }

  /** Appends one aligned object and returns its byte offset. */
  async appendObject(b: Buffer, align = this.alignment): Promise<number> {
    const at = this.pad(align);
    await this.write(b);
    return at;
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.pendingStart + done);
      done += bytesWritten;
    }
    this.pendingStart += data.length;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Drops everything from `pos` on (used to undo a just-written duplicate object). */
  async truncateTo(pos: number): Promise<void> {
    if (pos >= this.size) return;
    if (pos >= this.pendingStart) {
      const keep = pos - this.pendingStart;
      const all = Buffer.concat(this.pending, this.pendingBytes).subarray(0, keep);
      this.pending = keep > 0 ? [Buffer.from(all)] : [];
      this.pendingBytes = keep;
    } else {
      await this.flush();
      await this.fh.truncate(pos);
      this.pendingStart = pos;
    }
    this.size = pos;
  }

  /** Writes the region header, flushes, truncates to the logical size and closes. */
  async finish(): Promise<void> {
    await this.flush();
    await this.fh.write(encodeRegionHeader(this.localIndex, this.regionType), 0, REGION_HEADER_SIZE, 0);
    await this.fh.truncate(this.size);
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
