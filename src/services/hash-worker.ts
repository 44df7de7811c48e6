/**
 * Hashing on a worker thread, so SHA-256 over a layer overlaps the caller's own work (the
 * machines that convert layers have more than one core; hashing a 200 MB tar costs ~80 ms
 * of CPU, a dm-verity level 0 over its image ~150 ms). The worker reads the bytes itself from
 * the file (page cache), so nothing is copied between threads:
 *
 * - `digestFile`: the digest of a whole file (a layer tar read from disk);
 * - `verityLevel0`: dm-verity level-0 hashes, sha256(salt ‖ block), of the 4 KiB blocks
 *   [from, to) of a file another thread is still writing; callers ask only for blocks that
 *   are already written. `verityLevel0ToFile` writes them to an open file at 32 bytes a block
 *   instead (the descriptor is the process's, shared by its threads): no hashes travel back,
 *   so none wait in the caller's heap for the garbage collector.
 *
 * Jobs run in the order they were asked for. The worker's code is a self-contained script
 * (node:fs, node:crypto only), so it runs the same from the sources and from the bundle. The
 * level-0 loop uses the native helper's sha256Blocks when the process has it (its path comes
 * in workerData): 2.4 against 3.45 µs a block here, the same hashes.
 */
import { Worker } from 'node:worker_threads';
import { unavailable } from './errdefs.js';
import { sha256BlocksAddon } from './fsutil/native.js';

// Modules come in through import(), which works whether the worker evaluates the script as
// CommonJS or (when the host process was started with --input-type=module, a flag workers
// inherit) as an ES module; messages wait in the port until the listener is attached.
const WORKER_SOURCE = `
(async () => {
const { parentPort, workerData } = await import('node:worker_threads');
const { openSync, readSync, writeSync, closeSync } = await import('node:fs');
const { createHash, hash } = await import('node:crypto');
const BUF = Buffer.allocUnsafe(1 << 20);
let sha256Blocks;
if (workerData && workerData.addon) {
  const { createRequire } = await import('node:module');
  try {
    sha256Blocks = createRequire(workerData.addon)(workerData.addon).sha256Blocks;
  } catch {
    sha256Blocks = undefined; // the same hashes through node:crypto, as without the helper
  }
}
function digestFile(path, algorithm) {
  const h = createHash(algorithm);
  const fd = openSync(path, 'r');
  let bytes = 0;
  try {
    for (let n; (n = readSync(fd, BUF, 0, BUF.length, null)) > 0; bytes += n) h.update(BUF.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { digest: algorithm + ':' + h.digest('hex'), bytes };
}
function writeAll(fd, b, pos) {
  for (let o = 0; o < b.length; ) o += writeSync(fd, b, o, b.length - o, pos + o);
}
const OUT = Buffer.allocUnsafe((BUF.length / 4096) * 32);
// sha256(salt ‖ block) with crypto.hash on a copy of the block after the salt: ~10% faster
// than a salted Hash object copied per block (3.45 against 3.8 µs a block, Node 20.20).
// Without outFd: returns the hashes; with it: writes them at (block * 32) of outFd.
// Blocks from zeroFrom on are known to be zero: they get the zero block's hash, unread.
function verityLevel0(path, from, to, salt, outFd, zeroFrom) {
  const out = outFd === undefined ? Buffer.alloc((to - from) * 32) : OUT;
  const salted = Buffer.alloc(salt.length + 4096);
  salt.copy(salted);
  const readTo = zeroFrom === undefined ? to : Math.max(from, Math.min(to, zeroFrom));
  const fd = openSync(path, 'r');
  try {
    for (let b = from; b < readTo; ) {
      const want = Math.min(BUF.length / 4096, readTo - b);
      const n = readSync(fd, BUF, 0, want * 4096, b * 4096);
      if (n < want * 4096) BUF.fill(0, n, want * 4096); // past the end of the file: zero blocks
      const at = outFd === undefined ? (b - from) * 32 : 0;
      if (sha256Blocks) sha256Blocks(BUF.subarray(0, want * 4096), salt, out.subarray(at, at + want * 32));
      else {
        for (let i = 0; i < want; i++) {
          BUF.copy(salted, salt.length, i * 4096, (i + 1) * 4096);
          hash('sha256', salted, 'buffer').copy(out, at + i * 32);
        }
      }
      if (outFd !== undefined) writeAll(outFd, OUT.subarray(0, want * 32), b * 32);
      b += want;
    }
  } finally {
    closeSync(fd);
  }
  if (readTo < to) {
    salted.fill(0, salt.length);
    const zero = hash('sha256', salted, 'buffer');
    if (outFd === undefined) {
      for (let b = readTo; b < to; b++) zero.copy(out, (b - from) * 32);
    } else {
      for (let i = 0; i < OUT.length; i += 32) zero.copy(OUT, i);
      for (let b = readTo; b < to; ) {
        const want = Math.min(OUT.length / 32, to - b);
        writeAll(outFd, OUT.subarray(0, want * 32), b * 32);
        b += want;
      }
    }
  }
  return outFd === undefined ? out : undefined;
}
parentPort.on('message', (m) => {
  try {
    const result = m.op === 'digest' ? digestFile(m.path, m.algorithm) : verityLevel0(m.path, m.from, m.to, Buffer.from(m.salt), m.outFd, m.zeroFrom);
    parentPort.postMessage({ id: m.id, result });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
})();
`;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class HashWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;

  /** `native: false`: hash with node:crypto even where the native helper could (tests compare). */
  constructor(opts: { native?: boolean } = {}) {
    const addon = opts.native === false ? undefined : sha256BlocksAddon();
    // a small young generation: the worker allocates a 32-byte Buffer per block hashed, all
    // garbage at once; left to grow to V8's default (16 MiB semi-spaces) it kept ~5 MiB more
    // resident for a big layer, for no measurable speed
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon }, resourceLimits: { maxYoungGenerationSizeMb: 1 } });
    this.worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(unavailable(`hash worker: ${m.error}`));
      else p.resolve(m.result);
    });
    const failAll = (e: Error) => {
      this.failure ??= e;
      for (const p of this.pending.values()) p.reject(unavailable(`hash worker failed: ${e.message}`, {}, e));
      this.pending.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', (code) => failAll(new Error(`exited with code ${code}`)));
  }

  private ask<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.failure) return Promise.reject(unavailable(`hash worker failed: ${this.failure.message}`));
    const id = this.nextId++;
    const p = new Promise<T>((resolve, reject) => this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    this.worker.postMessage({ ...msg, id });
    return p;
  }

  /** `<algorithm>:<hex>` of the whole file, and its length. */
  digestFile(path: string, algorithm = 'sha256'): Promise<{ digest: string; bytes: number }> {
    return this.ask({ op: 'digest', path, algorithm });
  }

  /**
   * sha256(salt ‖ block) for the 4 KiB blocks [from, to) of `path` (blocks past its end are
   * zero), 32 bytes each. Blocks from `zeroFrom` on are taken to be zero without reading them.
   */
  async verityLevel0(path: string, from: number, to: number, salt: Buffer, zeroFrom?: number): Promise<Buffer> {
    const r = await this.ask<Uint8Array>({ op: 'verity', path, from, to, salt: new Uint8Array(salt), zeroFrom });
    return Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  }

  /**
   * As verityLevel0, but the hashes are written to the open file `outFd` at 32 bytes a block
   * (block `from` at byte from * 32). `outFd` must stay open until the promise settles.
   */
  async verityLevel0ToFile(path: string, from: number, to: number, salt: Buffer, outFd: number, zeroFrom?: number): Promise<void> {
    await this.ask({ op: 'verity', path, from, to, salt: new Uint8Array(salt), outFd, zeroFrom });
  }

  /** Stops the worker (pending jobs fail). */
  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await this.worker.terminate();
  }
}
