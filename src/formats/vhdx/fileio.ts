/**
 * Positional file access for the VHDX module: exact reads (zero-filled past end of file),
 * full writes, and an optional in-memory overlay of pending log writes so a read-only open
 * can see a replayed log without modifying the file (MS-VHDX §2.3.3, footnote 5).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { allocateCall } from '../../services/fsutil/native.js';

const allocate = allocateCall();
/** Writes of at least this many bytes have their blocks allocated first (see write). */
const ALLOCATE_MIN = 1 << 20;

export type OverlayOp = { kind: 'data'; fileOffset: number; data: Buffer } | { kind: 'zero'; fileOffset: number; length: number };

export class RandomAccessFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly writable: boolean,
    public size: number,
  ) {}

  /** Pending log operations applied to reads (in order), when the log was replayed in memory. */
  overlay: OverlayOp[] = [];

  static async open(path: string, writable: boolean): Promise<RandomAccessFile> {
    const fh = await open(path, writable ? fsConstants.O_RDWR : fsConstants.O_RDONLY);
    const st = await fh.stat();
    return new RandomAccessFile(path, fh, writable, st.size);
  }

  static async create(path: string, exclusive: boolean): Promise<RandomAccessFile> {
    const flags = fsConstants.O_RDWR | fsConstants.O_CREAT | (exclusive ? fsConstants.O_EXCL : fsConstants.O_TRUNC);
    const fh = await open(path, flags, 0o644);
    return new RandomAccessFile(path, fh, true, 0);
  }

  get handle(): FileHandle {
    return this.fh;
  }

  /** Reads exactly length bytes at pos; bytes past the end of file read as zero. */
  async read(pos: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(buf, 0, length, pos);
    return buf;
  }

  async readInto(buf: Buffer, bufOffset: number, length: number, pos: number): Promise<void> {
    let done = 0;
    const avail = Math.max(0, Math.min(length, this.size - pos));
    while (done < avail) {
      const { bytesRead } = await this.fh.read(buf, bufOffset + done, avail - done, pos + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < length) buf.fill(0, bufOffset + done, bufOffset + length);
    if (this.overlay.length > 0) this.applyOverlay(buf.subarray(bufOffset, bufOffset + length), pos);
  }

  private applyOverlay(view: Buffer, pos: number): void {
    const end = pos + view.length;
    for (const op of this.overlay) {
      const len = op.kind === 'data' ? op.data.length : op.length;
      const s = Math.max(pos, op.fileOffset);
      const e = Math.min(end, op.fileOffset + len);
      if (s >= e) continue;
      if (op.kind === 'data') op.data.copy(view, s - pos, s - op.fileOffset, e - op.fileOffset);
      else view.fill(0, s - pos, e - pos);
    }
  }

  async write(pos: number, data: Buffer): Promise<void> {
    // a big write's blocks allocated first (fsutil/native allocate: ext4 then skips its
    // per-page delayed allocation; only what is written is allocated, holes stay holes)
    if (data.length >= ALLOCATE_MIN) allocate?.(this.fh.fd, pos, data.length);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, pos + done);
      done += bytesWritten;
    }
    if (pos + data.length > this.size) this.size = pos + data.length;
  }

  async truncate(size: number): Promise<void> {
    await this.fh.truncate(size);
    this.size = size;
  }

  async sync(): Promise<void> {
    await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** True when every byte of buf is zero (memcmp against a shared zero page). */
const ZERO_PAGE = Buffer.alloc(1 << 20);
export function isZero(buf: Buffer): boolean {
  for (let o = 0; o < buf.length; o += ZERO_PAGE.length) {
    const n = Math.min(ZERO_PAGE.length, buf.length - o);
    if (!buf.subarray(o, o + n).equals(n === ZERO_PAGE.length ? ZERO_PAGE : ZERO_PAGE.subarray(0, n))) return false;
  }
  return true;
}
