/**
 * Parallel gzip (the pigz technique): the input is cut into blocks that are deflated
 * independently on the libuv thread pool, each primed with the previous 32 KiB as a
 * dictionary and ended with a sync flush so the raw deflate streams concatenate into one
 * valid stream; the last block finishes it. CRC-32 is computed incrementally in order.
 * RFC 1952 member header with mtime 0 and OS 255 (as Go's compress/gzip), so output is
 * deterministic for a given level and block size. Memory: at most `inFlight` blocks.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { availableParallelism } from 'node:os';
import { constants, crc32, deflateRaw } from 'node:zlib';
import { promisify } from 'node:util';

const deflateRawAsync = promisify(deflateRaw) as (buf: Buffer, opts: object) => Promise<Buffer>;
const WINDOW = 32 * 1024;

export interface PgzipOptions {
  level?: number;
  blockSize?: number;
  /** blocks compressed at once (default: 2 × cores, at least 2) */
  inFlight?: number;
}

export class ParallelGzip extends Transform {
  private readonly level: number;
  private readonly blockSize: number;
  private readonly inFlight: number;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private prevTail: Buffer | undefined;
  private crc = 0;
  private size = 0;
  private headerSent = false;
  private queue: Promise<Buffer>[] = [];

  constructor(opts: PgzipOptions = {}) {
    super({ highWaterMark: 1 << 20 });
    this.level = opts.level ?? 6;
    this.blockSize = opts.blockSize ?? 128 * 1024;
    this.inFlight = opts.inFlight ?? Math.max(2, availableParallelism() * 2);
  }

  private header(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]));
  }

  private submit(block: Buffer, last: boolean): void {
    this.crc = crc32(block, this.crc);
    this.size = (this.size + block.length) % 0x1_0000_0000;
    const opts: Record<string, unknown> = {
      level: this.level,
      finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    };
    if (this.prevTail) opts.dictionary = this.prevTail;
    this.prevTail = block.length >= WINDOW ? block.subarray(block.length - WINDOW) : Buffer.concat([this.prevTail ?? Buffer.alloc(0), block]).subarray(-WINDOW);
    this.queue.push(deflateRawAsync(block, opts));
  }

  private async drainTo(limit: number): Promise<void> {
    while (this.queue.length > limit) {
      const out = await this.queue.shift()!;
      this.push(out);
    }
  }

  private takeBlock(): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLen);
    const block = all.subarray(0, this.blockSize);
    const rest = all.subarray(this.blockSize);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLen = rest.length;
    return block;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.header();
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    const work = async () => {
      // keep one block back so the last block is always compressed with Z_FINISH
      while (this.pendingLen > this.blockSize) {
        this.submit(this.takeBlock(), false);
        await this.drainTo(this.inFlight);
      }
    };
    work().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.header();
    const last = this.pending.length > 0 ? Buffer.concat(this.pending, this.pendingLen) : Buffer.alloc(0);
    this.pending = [];
    this.pendingLen = 0;
    this.submit(last, true);
    this.drainTo(0).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size >>> 0, 4);
      this.push(trailer);
      cb();
    }, cb);
  }
}

export function createParallelGzip(opts?: PgzipOptions): ParallelGzip {
  return new ParallelGzip(opts);
}
