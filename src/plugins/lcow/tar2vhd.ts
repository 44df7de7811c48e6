/**
 * tar → ext4 → [dm-verity] → [fixed VHD footer]: what hcsshim's tar2ext4.Convert and the
 * LCOW differ produce (windows-layer-formats.md §4.2–4.5), from a decompressed tar stream.
 *
 * Layout: `ext4 | verity superblock (4 KiB) | hash tree | zero padding | VHD footer`. The
 * padding makes the disk a size its CHS geometry describes exactly, so readers that size a
 * VHD by geometry (qemu) see every byte. With `hashDevice` the superblock and tree go to a
 * separate file instead (dmverity-vhd's `--hash-dev-vhd`), footed the same way.
 *
 * Memory: the ext4 writer's tables spill to files past SPILL_AFTER_ROWS entries (writer.ts),
 * and with the hash worker the tree's level 0 (1/128 of the image) waits in a temporary file
 * next to the output (verity.ts Level0File), so a layer of any size converts in bounded memory.
 */
import { appendFileSync, closeSync, openSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { TarReader } from '../../formats/tar/reader.js';
import { Ext4Writer, type Ext4WriterOptions } from '../../formats/ext4/writer.js';
import { buildVerityTree, DEFAULT_SALT, encodeVeritySuperblock, Level0File, VERITY_BLOCK } from '../../formats/verity/verity.js';
import { chsExactSize, encodeVhdFooter } from '../../formats/vhd/footer.js';
import { failedPrecondition } from '../../services/errdefs.js';
import { HashWorker } from '../../services/hash-worker.js';
import { later, PendingJobs } from '../../services/promises.js';
import { StreamFingerprint } from '../../formats/checksum.js';

export const LCOW_MAX_DISK_SIZE = 128 * 1024 ** 3;

/** Tar files smaller than this are hashed on the calling thread (see tar2vhd). */
export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;

export interface Tar2VhdOptions extends Ext4WriterOptions {
  verity?: boolean;
  /** append the fixed VHD footer (default true) */
  footer?: boolean;
  /** write the verity superblock + tree to this file instead of after the ext4 image */
  hashDevice?: string;
  /**
   * The tar stream is exactly this regular file's bytes (uncompressed): its digest is then
   * computed from the file on a worker thread while the conversion runs.
   */
  tarFile?: string;
  /**
   * Compute the tar's SHA-256 (`digest` in the result); default true. Nothing in the output
   * depends on it (identifiers are seeded by a CRC fingerprint), so callers that do not use
   * the digest save the hashing (~150 ms of CPU per 170 MB).
   */
  digest?: boolean;
  /**
   * The tar's digest as the caller already computes it (e.g. the counter a layer blob is
   * decompressed through); called once the stream has ended. The tar is then not hashed again.
   */
  tarDigest?: () => string;
  /**
   * Hash on a worker thread (tar digest with `tarFile`, dm-verity level 0 while writing): true
   * always, false never; by default unless `tarFile` is smaller than PARALLEL_MIN_BYTES.
   */
  parallel?: boolean;
  /**
   * The tar's fingerprint, fed by the source itself as it yields each chunk (readFileChunks'
   * `fingerprint` option, which computes the CRCs on the thread pool); by default tar2vhd
   * computes it from the chunks it reads.
   */
  fingerprint?: StreamFingerprint;
}

export interface Tar2VhdResult {
  /** bytes of the output file */
  size: number;
  /** bytes of the ext4 image at the start of the output */
  ext4Size: number;
  /** digest of the uncompressed tar that was read (unless `digest: false`), and its size */
  digest?: string;
  tarSize: number;
  rootHash?: string;
  /** where the verity superblock starts (in the output, or 0 in the hash device) */
  hashOffset?: number;
}

function footFile(path: string, seed: string): number {
  const len = statSync(path).size;
  const padded = chsExactSize(len);
  if (padded > len) truncateSync(path, padded);
  appendFileSync(path, encodeVhdFooter(padded, { seed }));
  return padded + 512;
}

/**
 * Converts a tar stream. `tar` may reuse its chunk buffers (see fsutil/ring-reader): nothing
 * here keeps a view of a chunk past the next one.
 */
export async function tar2vhd(tar: Readable | AsyncIterable<Buffer>, out: string, opts: Tar2VhdOptions = {}): Promise<Tar2VhdResult> {
  // A worker thread costs ~50 ms of start-up before it hashes anything; below PARALLEL_MIN_BYTES
  // the main thread finishes the conversion before a worker would finish hashing, so it hashes.
  const parallel = opts.parallel ?? !(opts.tarFile !== undefined && statSync(opts.tarFile).size < PARALLEL_MIN_BYTES);
  const hashTar = opts.digest !== false && !opts.tarDigest;
  const worker = parallel && (opts.verity || (opts.tarFile && hashTar)) ? new HashWorker() : undefined;
  let level0File: Level0File | undefined;
  try {
    const fileDigest = worker && opts.tarFile && hashTar ? later(worker.digestFile(opts.tarFile)) : undefined;
    const hash = hashTar && !fileDigest ? createHash('sha256') : undefined;
    // seeds the ext4 UUID and the VHD unique ID: the same for the same tar bytes, whichever
    // way the digest is (or is not) computed
    const fed = opts.fingerprint !== undefined;
    const fingerprint = opts.fingerprint ?? new StreamFingerprint();
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const c of tar as AsyncIterable<Buffer>) {
        if (!fed) fingerprint.update(c);
        hash?.update(c);
        yield c;
      }
    }
    const reader = new TarReader(counted());
    const w = new Ext4Writer(out, opts);
    // dm-verity level 0 of each stretch of the image as soon as it is written
    const salt = DEFAULT_SALT;
    const level0 = new PendingJobs();
    let hashedTo = w.firstDataBlock;
    // the hashes of blocks [from, to), computed on the worker, which writes them to the level-0 file
    const hashLevel0 = (file: Level0File, from: number, to: number, zeroFrom?: number) => level0.add(worker!.verityLevel0ToFile(out, from, to, salt, file.fd, zeroFrom));
    if (worker && opts.verity) {
      const file = (level0File = new Level0File(opts.spillDir ?? dirname(resolve(out))));
      w.onFlush = (written) => {
        if (written <= hashedTo) return;
        hashLevel0(file, hashedTo, written);
        hashedTo = written;
      };
    }
    let ext4;
    let digest: string | undefined;
    const seed = (): string => `tar:${fingerprint}`;
    try {
      // entries whose bytes are already buffered are read and added without awaiting (most of
      // a layer: one promise chain per entry cost ~2 µs); the rest take the asynchronous path
      for (;;) {
        const e = reader.nextSync() ?? (await reader.next());
        if (!e) break;
        if (!w.tryAdd(e)) await w.add(e);
      }
      await reader.drain();
      const tarSize = fingerprint.bytes;
      if (opts.tarDigest) digest = opts.tarDigest();
      else if (fileDigest) {
        const d = await fileDigest;
        if (d.bytes !== tarSize) throw failedPrecondition(`${opts.tarFile} changed while it was converted (${d.bytes} bytes hashed, ${tarSize} read)`, { path: opts.tarFile });
        digest = d.digest;
      } else if (hash) digest = `sha256:${hash.digest('hex')}`;
      ext4 = await w.close(seed());
    } catch (err) {
      await w.abort();
      await reader.close().catch(() => undefined);
      throw err;
    }
    const result: Tar2VhdResult = { size: ext4.size, ext4Size: ext4.size, ...(digest ? { digest } : {}), tarSize: fingerprint.bytes };
    if (opts.verity) {
      const sb = Buffer.alloc(VERITY_BLOCK);
      const dest = opts.hashDevice ?? out;
      const at = opts.hashDevice ? 0 : ext4.size;
      if (level0File) {
        hashLevel0(level0File, 0, w.firstDataBlock);
        hashLevel0(level0File, hashedTo, ext4.blocks, ext4.zeroFrom); // the zero tail is not read
        await level0.settled();
        const { rootHash, upper, level0Bytes } = level0File.finish(ext4.blocks, salt);
        encodeVeritySuperblock({ dataBlocks: ext4.blocks, salt, rootHash }).copy(sb);
        const fd = openSync(dest, opts.hashDevice ? 'w' : 'r+');
        try {
          level0File.writeTree(fd, at, sb, upper, level0Bytes);
        } finally {
          closeSync(fd);
        }
        result.rootHash = rootHash.toString('hex');
      } else {
        const tree = await buildVerityTree(out, ext4.size, { salt, zeroFrom: ext4.zeroFrom });
        encodeVeritySuperblock(tree).copy(sb);
        if (opts.hashDevice) writeFileSync(opts.hashDevice, Buffer.concat([sb, tree.tree]));
        else appendFileSync(out, Buffer.concat([sb, tree.tree]));
        result.rootHash = tree.rootHash.toString('hex');
      }
      if (opts.hashDevice && opts.footer !== false) footFile(opts.hashDevice, `${seed()}:hash`);
      result.hashOffset = at;
    }
    result.size = opts.footer === false ? statSync(out).size : footFile(out, seed());
    return result;
  } finally {
    await worker?.close(); // first: no hashes arrive for the level-0 file after this
    level0File?.close();
  }
}
