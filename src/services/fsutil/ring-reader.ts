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
 * copies what it keeps (the ext4 writer) meets it. With a `fingerprint`, every chunk's CRCs
 * reach it before the chunk is yielded, computed by the read itself on the thread pool where
 * the native helper can.
 */
import { closeSync, openSync, read, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { later } from '../promises.js';
import { CRC32_BIT, CRC32C_BIT, readChecksumCall } from './native.js';

/** What a reader feeds CRCs to (formats/checksum.ts StreamFingerprint). */
export interface CrcSink {
  /** bytes to checksum here */
  update(chunk: Uint8Array): void;
  /** bytes whose CRC-32 and CRC-32C (each from the initial state) were computed elsewhere */
  append(length: number, crc32Of: number, crc32cOf: number): void;
}

export interface ReadFileChunksOptions {
  /** bytes per chunk (default 512 KiB) */
  chunkSize?: number;
  /** chunks read ahead of the consumer (default 2) */
  readAhead?: number;
  /** buffers in the ring (default and minimum: readAhead + 2) */
  slots?: number;
  /**
   * Fed with every chunk, in order, before it is yielded. With the native helper the CRCs are
   * computed on the thread pool by the read itself (fsutil/native readChecksum: ~25 ms of the
   * consumer's thread per 170 MB saved), else here on the calling thread.
   */
  fingerprint?: CrcSink;
  /**
   * Read with synchronous calls on the calling thread, one chunk at a time (fsutil/io-mode.ts:
   * faster on two cores), yielding to the event loop every 64 MiB; the fingerprint is then fed
   * each chunk here (its update() continues the CRCs, with the native `crc` where built).
   */
  sync?: boolean;
}

export async function* readFileChunks(path: string, opts: ReadFileChunksOptions = {}): AsyncGenerator<Buffer> {
  if (opts.sync) {
    yield* readFileChunksSync(path, opts);
    return;
  }
  const size = opts.chunkSize ?? 512 << 10;
  const depth = Math.max(1, opts.readAhead ?? 2);
  const slots = Math.max(depth + 2, opts.slots ?? 0);
  const ring = Array.from({ length: slots }, () => Buffer.allocUnsafe(size));
  const fingerprint = opts.fingerprint;
  const readChecksum = fingerprint ? readChecksumCall() : undefined;
  const crcs = readChecksum ? Array.from({ length: slots }, () => new Uint32Array(2)) : [];
  const fh = await open(path, 'r');
  const pending: Promise<{ bytesRead: number; buffer: Buffer; crc?: Uint32Array }>[] = [];
  let next = 0;
  const issue = (): void => {
    const i = next++;
    const buffer = ring[i % slots]!;
    const read = readChecksum
      ? readChecksum(fh.fd, buffer, i * size, CRC32_BIT | CRC32C_BIT, crcs[i % slots]!).then((bytesRead) => ({ bytesRead, buffer, crc: crcs[i % slots]! }))
      : fh.read(buffer, 0, size, i * size);
    pending.push(later(read)); // awaited in order below
  };
  try {
    for (let k = 0; k < depth; k++) issue();
    for (;;) {
      const { bytesRead, buffer, crc } = await pending.shift()!;
      if (bytesRead === 0) return;
      const chunk = bytesRead < size ? buffer.subarray(0, bytesRead) : buffer;
      if (crc) fingerprint!.append(bytesRead, crc[0]!, crc[1]!);
      else fingerprint?.update(chunk);
      if (bytesRead < size) {
        yield chunk;
        return; // the end of the file (the reads issued past it find nothing)
      }
      issue();
      yield chunk;
    }
  } finally {
    await Promise.allSettled(pending);
    await fh.close();
  }
}

/** Bytes read between turns of the event loop by readFileChunks' synchronous reads. */
const SYNC_YIELD_BYTES = 64 << 20;

async function* readFileChunksSync(path: string, opts: ReadFileChunksOptions): AsyncGenerator<Buffer> {
  const size = opts.chunkSize ?? 512 << 10;
  // the consumer may use a chunk until it asks for the one after the next: two buffers
  const ring = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const fingerprint = opts.fingerprint;
  const fd = openSync(path, 'r');
  try {
    for (let i = 0, pos = 0, sinceYield = 0; ; i++) {
      const buffer = ring[i & 1]!;
      let n = 0;
      while (n < size) {
        const got = readSync(fd, buffer, n, size - n, pos + n);
        if (got === 0) break;
        n += got;
      }
      if (n === 0) return;
      const chunk = n < size ? buffer.subarray(0, n) : buffer;
      fingerprint?.update(chunk);
      pos += n;
      sinceYield += n;
      if (sinceYield >= SYNC_YIELD_BYTES) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve)); // timers, signals, other work
      }
      yield chunk;
      if (n < size) return;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * An open descriptor read from its current offset on, sequentially (no positions: stdin
 * redirected from a file), as chunks of `size` bytes (the last may be shorter) in a ring of
 * buffers, with the next chunk read while the consumer works on the current one. The same
 * contract as readFileChunks: a chunk, and every view of it, may be used until the consumer
 * asks for the chunk after the next. Reading moves the descriptor's offset, as any reader does.
 * (Used for a redirected stdin: through a stream, the bench tar took 630–690 ms against 440 ms
 * this way. For a pipe, which gives 64 KiB a read, the stream was not slower.)
 */
export async function* readFdChunks(fd: number, size = 512 << 10): AsyncGenerator<Buffer> {
  const readInto = (buf: Buffer, off: number) =>
    new Promise<number>((resolve, reject) => read(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : resolve(n))));
  const fill = async (buf: Buffer): Promise<number> => {
    let len = 0;
    while (len < size) {
      const n = await readInto(buf, len);
      if (n === 0) break;
      len += n;
    }
    return len;
  };
  const ring = Array.from({ length: 4 }, () => Buffer.allocUnsafe(size));
  let k = 0;
  let filling = later(fill(ring[0]!)); // awaited below
  try {
    for (;;) {
      const len = await filling;
      const buf = ring[k]!;
      if (len < size) {
        if (len > 0) yield buf.subarray(0, len);
        return;
      }
      k = (k + 1) % ring.length;
      filling = later(fill(ring[k]!)); // the next chunk is read while this one is used
      yield buf;
    }
  } finally {
    await Promise.allSettled([filling]); // a consumer that stops early: no read left running
  }
}
