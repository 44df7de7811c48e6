/**
 * `winsnap convert tar2vhd|roothash`: LCOW layer artifacts from a layer tar (plain, gzip or
 * zstd, found from its first bytes; `-` is stdin), like hcsshim's tar2ext4 and dmverity-vhd.
 */
import type { Command } from 'commander';
import { closeSync, createReadStream, fstatSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { StreamFingerprint } from '../../formats/checksum.js';
import { INLINE_MAX } from '../../formats/ext4/writer.js';
import { decompressStream } from '../../services/compression/decompress.js';
import { sniffCompression } from '../../services/compression/media-types.js';
import { LCOW_MAX_DISK_SIZE, tar2vhd } from '../../plugins/lcow/tar2vhd.js';
import { parseSize } from '../format.js';
import { readFdChunks, readFileChunks } from '../../services/fsutil/ring-reader.js';
import { setPipeSize } from '../../services/fsutil/native.js';
import { oneShotIoMode, type IoMode } from '../../services/fsutil/io-mode.js';

/**
 * Whether `fd` is a pipe whose buffer is now at least 1 MiB (Linux's default limit for
 * F_SETPIPE_SZ; the native helper's setPipeSize). With 64 KiB a read, reading a pipe from the
 * descriptor was slower than streaming it; with 1 MiB the bench tar piped from `cat` converted
 * in 400 instead of 550 ms (docs/lcow.md).
 */
function growPipe(fd: number): boolean {
  try {
    if (!fstatSync(fd).isFIFO()) return false;
  } catch {
    return false;
  }
  return (setPipeSize(fd, PIPE_BYTES) ?? 0) >= PIPE_BYTES;
}
const PIPE_BYTES = 1 << 20;

/** Whether descriptor `fd` is open on a regular file (false when it is not open at all). */
function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

/**
 * The input as an uncompressed tar stream (compression sniffed from the first bytes), and the
 * file it is exactly the bytes of, when it is an uncompressed regular file.
 */
async function openTar(input: string, io: IoMode): Promise<{ tar: Readable | AsyncIterable<Buffer>; file?: string; fingerprint?: StreamFingerprint }> {
  if (input !== '-' && statSync(input).isFile()) {
    const head = Buffer.alloc(512);
    const fd = openSync(input, 'r');
    let n: number;
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    const compression = sniffCompression(head.subarray(0, n));
    // an uncompressed file goes straight to the converter, through reused buffers
    if (compression === 'none') {
      // the reads also compute the tar's CRC fingerprint, on the thread pool where they can
      const fingerprint = new StreamFingerprint();
      return { tar: readFileChunks(input, { fingerprint, sync: io === 'sync' }), file: input, fingerprint };
    }
    return { tar: decompressStream(createReadStream(input, { highWaterMark: 1 << 20 }), compression) };
  }
  if (input === '-' && (isRegularFile(0) || growPipe(0))) {
    // stdin redirected from a file, or a pipe whose buffer could be grown to 1 MiB: read in
    // 512 KiB chunks straight from the descriptor (a stream of it is slower: docs/lcow.md); the
    // rest of stdin (a terminal, a pipe that stays at 64 KiB) streams
    const chunks = readFdChunks(0);
    const first = await chunks.next();
    const head = first.done ? Buffer.alloc(0) : first.value;
    const all = async function* (copy: boolean): AsyncGenerator<Buffer> {
      if (head.length > 0) yield copy ? Buffer.from(head) : head;
      for await (const c of chunks) yield copy ? Buffer.from(c) : c;
    };
    const compression = sniffCompression(head);
    // a decompressor may hold chunks longer than the ring keeps them: it gets copies
    return { tar: compression === 'none' ? all(false) : decompressStream(Readable.from(all(true)), compression) };
  }
  const src: Readable = input === '-' ? process.stdin : createReadStream(input, { highWaterMark: 1 << 20 });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const it = src[Symbol.asyncIterator]();
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : (first.value as Buffer);
  const compression = sniffCompression(head);
  (async () => {
    out.write(head);
    for (let r = await it.next(); !r.done; r = await it.next()) if (!out.write(r.value)) await new Promise((res) => out.once('drain', res));
    out.end();
  })().catch((e: Error) => out.destroy(e));
  return { tar: compression === 'none' ? out : decompressStream(out, compression) };
}

export function register(program: Command): void {
  const convert = program.command('convert').description('convert layer tars to LCOW layer disks');
  convert
    .command('tar2vhd')
    .description('tar (.tar, .tar.gz, .tar.zst or - for stdin) → ext4 [+ dm-verity] [+ fixed VHD footer]')
    .requiredOption('-i, --input <file>', 'input tar')
    .requiredOption('-o, --output <file>', 'output disk')
    .option('--verity', 'append a dm-verity superblock and hash tree and print the root hash')
    .option('--hash-device <file>', 'with --verity: write the hash tree to this file instead')
    .option('--no-footer', 'do not append the fixed VHD footer')
    .option('--whiteouts', 'convert overlay whiteouts (.wh.X → 0/0 char device, .wh..wh..opq → trusted.overlay.opaque=y)')
    .option('--inline', `store files of up to ${INLINE_MAX} bytes inside their inodes (inline_data)`)
    .option('--max-size <size>', 'maximum ext4 size (e.g. 16G, the default; LCOW uses 128G)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { input: string; output: string; verity?: boolean; hashDevice?: string; footer: boolean; whiteouts?: boolean; inline?: boolean; maxSize?: string; json?: boolean }) => {
      const io = oneShotIoMode();
      const { tar, file, fingerprint } = await openTar(o.input, io);
      const r = await tar2vhd(tar, o.output, {
        io,
        tarFile: file,
        fingerprint,
        digest: o.json === true, // printed only with --json; the output bytes do not depend on it
        verity: o.verity,
        hashDevice: o.hashDevice,
        footer: o.footer,
        convertWhiteouts: o.whiteouts,
        inlineData: o.inline,
        maxDiskSize: o.maxSize ? parseSize(o.maxSize) : undefined,
      });
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else if (r.rootHash) process.stdout.write(`${r.rootHash}\n`);
    });
  convert
    .command('roothash')
    .description('the dm-verity root hash of a layer (whiteouts converted, 128 GiB limit), like dmverity-vhd roothash')
    .requiredOption('-i, --input <file>', 'input tar')
    .option('--json', 'print the result as JSON')
    .action(async (o: { input: string; json?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), 'winsnap-roothash-'));
      try {
        const io = oneShotIoMode();
        const { tar, file, fingerprint } = await openTar(o.input, io);
        const r = await tar2vhd(tar, join(dir, 'layer.img'), { io, tarFile: file, fingerprint, digest: o.json === true, verity: true, footer: false, convertWhiteouts: true, maxDiskSize: LCOW_MAX_DISK_SIZE });
        process.stdout.write(o.json ? `${JSON.stringify({ rootHash: r.rootHash, digest: r.digest, ext4Size: r.ext4Size })}\n` : `${r.rootHash}\n`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
}
