/**
 * Reads a file as chunks that reuse a small ring of buffers, so a long sequential read
 * allocates nothing per chunk (a stream allocates a fresh buffer per read, and those wait
 * for the garbage collector: tens of MiB of resident memory on a big layer).
 *
 * The next chunk is read while the consumer works on the current one. Contract for the
 * consumer: a chunk, and every view of it, must not be used once the chunk `slots - 2`
 * places later has been requested (the default ring of 4: once the next-but-one has been). The
 * tar reader (which copies a header that straddles two chunks) followed by a consumer that
 * copies what it keeps (the ext4 writer) meets it.
 */
import { open } from 'node:fs/promises';

export async function* readFileChunks(path: string, opts: { chunkSize?: number; slots?: number } = {}): AsyncGenerator<Buffer> {
  const size = opts.chunkSize ?? 512 << 10;
  const slots = Math.max(3, opts.slots ?? 4);
  const ring = Array.from({ length: slots }, () => Buffer.allocUnsafe(size));
  const fh = await open(path, 'r');
  const read = (i: number) => fh.read(ring[i % slots]!, 0, size, null);
  let ahead: ReturnType<typeof read> | undefined;
  try {
    ahead = read(0);
    for (let i = 0; ; i++) {
      const { bytesRead, buffer } = await ahead;
      ahead = undefined;
      if (bytesRead === 0) return;
      if (bytesRead === size) ahead = read(i + 1); // reads are sequential: the next starts after this one ended
      yield bytesRead === size ? buffer : buffer.subarray(0, bytesRead);
      ahead ??= read(i + 1);
    }
  } finally {
    await ahead?.catch(() => undefined);
    await fh.close();
  }
}
