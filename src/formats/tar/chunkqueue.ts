/**
 * A byte-chunk queue between one producer and one consumer with a high-water mark: push()
 * waits while the queued bytes are at or above the mark; pull() waits for data. Chunks pass
 * through untouched (no concatenation), so a consumer sees the producer's buffers.
 * It backs TarWriter's output, either as an async iterator or as a Node Readable.
 */
import { Readable } from 'node:stream';

export class ChunkQueue implements AsyncIterable<Buffer> {
  private chunks: Buffer[] = [];
  private head = 0;
  private bytes = 0;
  private ended = false;
  private error: Error | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;
  private readable: Readable | undefined;
  private iterating = false;

  constructor(private readonly highWaterMark: number) {}

  get failed(): Error | undefined {
    return this.error;
  }

  /** Queues a chunk; resolves once the queue is below the high-water mark. Throws after fail(). */
  async push(b: Buffer): Promise<void> {
    if (this.error) throw this.error;
    if (b.length === 0) return;
    this.chunks.push(b);
    this.bytes += b.length;
    this.wake('consumer');
    while (this.bytes >= this.highWaterMark && !this.error) {
      await new Promise<void>((resolve) => {
        this.wakeProducer = resolve;
      });
    }
    if (this.error) throw this.error;
  }

  end(): void {
    this.ended = true;
    this.wake('consumer');
  }

  fail(err: Error): void {
    if (!this.error) this.error = err;
    this.wake('consumer');
    this.wake('producer');
    if (this.readable && !this.readable.destroyed) this.readable.destroy(err);
  }

  private wake(who: 'consumer' | 'producer'): void {
    const w = who === 'consumer' ? this.wakeConsumer : this.wakeProducer;
    if (who === 'consumer') this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    w?.();
  }

  /** The next chunk, or null at the end. */
  async pull(): Promise<Buffer | null> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.head < this.chunks.length) {
        const b = this.chunks[this.head]!;
        this.chunks[this.head++] = undefined as unknown as Buffer;
        if (this.head > 1024 && this.head * 2 > this.chunks.length) {
          this.chunks = this.chunks.slice(this.head);
          this.head = 0;
        }
        this.bytes -= b.length;
        if (this.bytes < this.highWaterMark) this.wake('producer');
        return b;
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }

  private claim(how: string): void {
    if (this.iterating || this.readable) throw new Error(`tar writer output is already consumed (${how})`);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    this.claim('async iterator');
    this.iterating = true;
    try {
      for (;;) {
        const b = await this.pull();
        if (b === null) return;
        yield b;
      }
    } finally {
      if (!this.ended && !this.error) this.fail(new Error('tar writer output consumer stopped'));
    }
  }

  /** A Readable over the queue (created once). */
  toReadable(): Readable {
    if (this.readable) return this.readable;
    this.claim('stream');
    const r = new Readable({
      highWaterMark: 16 * 1024,
      read: () => {
        this.pull().then(
          (b) => r.push(b),
          (err: Error) => r.destroy(err),
        );
      },
      destroy: (err, cb) => {
        if (!this.ended || this.head < this.chunks.length) this.fail(err ?? new Error('tar writer output stream was destroyed'));
        cb(err);
      },
    });
    this.readable = r;
    return r;
  }
}
