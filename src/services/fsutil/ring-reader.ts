/**
 * Reads a file as chunks that reuse a small ring of buffers, so a long sequential read
 * allocates nothing per chunk (a stream allocates a fresh buffer per read, and those wait
 * for the garbage collector: tens of MiB of resident memory on a big layer).
 *
 * The next `readAhead` chunks (default 2) are read, at their own offsets, while the consumer
 * works on the current one: on a machine with few cores the thread pool also carries the
 * consumer's output writes, and one read in flight left the consumer waiting for it.
 * Contract for the consumer: a chunk, and every view of it, may be used until the consumer
 * asks for the chunk after the next one (the ring has at least readAhead + 2 buffers). The
 * tar reader (which copies a header that straddles two chunks) followed by a consumer that
 * copies what it keeps (the ext4 writer) meets it.
 */
import { open } from 'node:fs/promises';
import { later } from '../promises.js';

export interface ReadFileChunksOptions {
  /** bytes per chunk (default 512 KiB) */
  chunkSize?: number;
  /** chunks read ahead of the consumer (default 2) */
  readAhead?: number;
  /** buffers in the ring (default and minimum: readAhead + 2) */
  slots?: number;
}

export async function* readFileChunks(path: string, opts: ReadFileChunksOptions = {}): AsyncGenerator<Buffer> {
  const size = opts.chunkSize ?? 512 << 10;
  const depth = Math.max(1, opts.readAhead ?? 2);
  const slots = Math.max(depth + 2, opts.slots ?? 0);
  const ring = Array.from({ length: slots }, () => Buffer.allocUnsafe(size));
  const fh = await open(path, 'r');
  const pending: Promise<{ bytesRead: number; buffer: Buffer }>[] = [];
  let next = 0;
  const issue = (): void => {
    const i = next++;
    pending.push(later(fh.read(ring[i % slots]!, 0, size, i * size))); // awaited in order below
  };
  try {
    for (let k = 0; k < depth; k++) issue();
    for (;;) {
      const { bytesRead, buffer } = await pending.shift()!;
      if (bytesRead === 0) return;
      if (bytesRead < size) {
        yield buffer.subarray(0, bytesRead);
        return; // the end of the file (the reads issued past it find nothing)
      }
      issue();
      yield buffer;
    }
  } finally {
    await Promise.allSettled(pending);
    await fh.close();
  }
}
