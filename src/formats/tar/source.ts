/**
 * A pull-based byte source over an async iterable of chunks (a Node Readable is one). It
 * hands out views (`subarray`) of the source chunks, copying only when a fixed-size read
 * (a header block) straddles two chunks. Nothing is read ahead of what the caller asks for
 * beyond the current chunk, so backpressure reaches the producer.
 */
import type { Readable } from 'node:stream';
import { invalidArgument } from '../../services/errdefs.js';

export type ByteChunk = Buffer | Uint8Array;
export type ByteSourceInput = AsyncIterable<ByteChunk> | Iterable<ByteChunk> | Readable;

const EMPTY = Buffer.alloc(0);

function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw invalidArgument(`byte source yielded a ${typeof v}, expected Buffer or Uint8Array`);
}

export class ByteSource {
  private readonly it: AsyncIterator<unknown> | Iterator<unknown>;
  private cur: Buffer = EMPTY;
  private pos = 0;
  private done = false;
  /** Absolute offset of the next unread byte. */
  offset = 0;

  constructor(input: ByteSourceInput) {
    const anyInput = input as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
    if (typeof anyInput[Symbol.asyncIterator] === 'function') this.it = anyInput[Symbol.asyncIterator]!();
    else if (typeof anyInput[Symbol.iterator] === 'function') this.it = anyInput[Symbol.iterator]!();
    else throw invalidArgument('tar: source is not an (async) iterable of Buffers');
  }

  /** Ensures unread bytes are buffered; false at end of input. */
  private async fill(): Promise<boolean> {
    while (this.pos >= this.cur.length) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        this.cur = EMPTY;
        this.pos = 0;
        return false;
      }
      this.cur = toBuffer(r.value);
      this.pos = 0;
    }
    return true;
  }

  /** Exactly n bytes if the current chunk holds them (a view), else undefined. Synchronous. */
  take(n: number): Buffer | undefined {
    if (this.cur.length - this.pos < n) return undefined;
    const b = this.cur.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return b;
  }

  /** The `n` bytes `skip` bytes ahead, as a view, if the current chunk holds them (nothing is consumed). */
  peek(skip: number, n: number): Buffer | undefined {
    const at = this.pos + skip;
    return this.cur.length - at < n ? undefined : this.cur.subarray(at, at + n);
  }

  /** Skips up to n bytes of the current chunk; returns how many. Synchronous. */
  skipBuffered(n: number): number {
    const k = Math.min(n, this.cur.length - this.pos);
    this.pos += k;
    this.offset += k;
    return k;
  }

  /** Up to `max` (> 0) bytes as a view of a source chunk, or null at end of input. */
  async chunk(max: number): Promise<Buffer | null> {
    if (this.pos >= this.cur.length && !(await this.fill())) return null;
    const end = Math.min(this.cur.length, this.pos + max);
    const b = this.cur.subarray(this.pos, end);
    this.offset += end - this.pos;
    this.pos = end;
    return b;
  }

  /**
   * Exactly n bytes, or fewer if the input ends first (the caller decides whether that is
   * an error; an empty Buffer means a clean end of input).
   */
  async exact(n: number): Promise<Buffer> {
    if (this.cur.length - this.pos >= n) {
      const b = this.cur.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = await this.chunk(n - got);
      if (!c) return out.subarray(0, got);
      c.copy(out, got);
      got += c.length;
    }
    return out;
  }

  /** Skips up to n bytes; returns how many were skipped (fewer only at end of input). */
  async skip(n: number): Promise<number> {
    let left = n - this.skipBuffered(n);
    while (left > 0) {
      const c = await this.chunk(left);
      if (!c) break;
      left -= c.length;
    }
    return n - left;
  }

  /** Reads and counts everything left; reports whether it was all zero bytes. */
  async drain(): Promise<{ bytes: number; allZero: boolean }> {
    let bytes = 0;
    let allZero = true;
    for (;;) {
      const c = await this.chunk(1 << 20);
      if (!c) break;
      bytes += c.length;
      if (allZero) {
        for (let i = 0; i < c.length; i++) {
          if (c[i] !== 0) {
            allZero = false;
            break;
          }
        }
      }
    }
    return { bytes, allZero };
  }

  /** Stops the underlying iterator (destroys a Readable). */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.cur = EMPTY;
    this.pos = 0;
    await this.it.return?.();
  }
}
