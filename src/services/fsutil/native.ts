/**
 * The optional native helper (native/fsx.c, compiled into dist/native/fsx.node by
 * scripts/build.mjs): file-system calls Node.js 20 does not expose. Everything here has a
 * plain-JS fallback that gives the same results, only slower, so winsnap stays portable.
 *
 * - `dataExtents(fd, size)`: the ranges of a file that may hold data, from
 *   lseek(SEEK_DATA/SEEK_HOLE); holes need not be read. Fallback: the whole file.
 * - `mapShared(fd, length)` / `dropResident(buffer)`: a file-backed shared mapping, and
 *   madvise(MADV_DONTNEED) of it (spill.ts). Fallback: none; callers keep their tables in memory.
 * - `mapRead(fd, offset, length)` / `unmap(buffer)`: a read-only mapping of part of a file and
 *   its release (raw → VHDX reads its input so). Fallback: reading into buffers.
 * - `setPipeSize(fd, bytes)`: fcntl(F_SETPIPE_SZ) on a pipe (Linux). Fallback: the pipe as it is.
 * - `sha256Blocks(data, salt, out)`: dm-verity's salted SHA-256 of each 4 KiB block, with the
 *   x86 SHA extensions two blocks at a time, else the OpenSSL the Node binary exports; loaded
 *   by the hash worker thread (`sha256BlocksAddon`). Fallback: node:crypto per block.
 * - `readChecksum(...)`: a read and the CRC-32 / CRC-32C of what it read, on the thread pool,
 *   where the CPU has carry-less multiplication (x86-64); `crc(...)` the same CRCs on the
 *   calling thread. Fallback: reading, and the CRCs on the calling thread (@node-rs/crc32);
 *   the values are the same.
 * - `allocate(fd, offset, length)`: fallocate(2) of a range about to be written (ext4 then
 *   skips its per-page delayed-allocation work in the write). Fallback: the write allocates.
 * - `encodeInodes(...)`: a piece of an ext4 inode table's common inodes (regular files,
 *   directories and symlinks of one extent or none, FIFOs, without xattrs),
 *   `metadataNodes(...)` the nodes that may append blocks when the writer finishes, and
 *   `dirBlocks(...)` a directory's blocks. Fallback: the writer's own code.
 * - `tarHeader(block, out)`: a tar header block's checksum and octal fields decoded in one call
 *   (formats/tar/header.ts), or 0 for anything unusual. Fallback: the JavaScript decoder.
 */
import { createRequire } from 'node:module';
import { packagePath } from './package-path.js';

interface FsxBinding {
  dataExtents(fd: number, size: number): Float64Array;
  mapShared(fd: number, length: number): ArrayBuffer;
  dropResident(buffer: ArrayBuffer): void;
  mapRead(fd: number, offset: number, length: number): ArrayBuffer;
  unmap(buffer: ArrayBuffer): void;
  setPipeSize(fd: number, bytes: number): number;
  tarHeader?(block: Uint8Array, out: Float64Array): number;
  allocate?(fd: number, offset: number, length: number): number;
  encodeInodes?: EncodeInodes;
  metadataNodes?: MetadataNodes;
  dirBlocks?: DirBlocks;
  sha256Blocks?(data: Buffer, salt: Buffer, out: Buffer): void;
  crc?(which: number, buffer: Uint8Array, previous?: number): number;
  readChecksum?(fd: number, buffer: Buffer, position: number, which: number, out: Uint32Array, callback: (err: Error | null, bytesRead: number) => void): void;
}

/** Which CRCs readChecksum computes: a bit mask. */
export const CRC32_BIT = 1;
export const CRC32C_BIT = 2;

/**
 * On the libuv thread pool: fills `buffer` from `fd` at `position` (until full or the end of
 * the file; fd -1 reads nothing and checksums the whole buffer), then writes the CRC-32
 * (`which & CRC32_BIT`) and CRC-32C (`which & CRC32C_BIT`) of the bytes read, each from the
 * initial state, to out[0] and out[1]; resolves to the number of bytes read. `buffer` must not
 * be touched until it settles.
 */
export type ReadChecksum = (fd: number, buffer: Buffer, position: number, which: number, out: Uint32Array) => Promise<number>;

export interface Extent {
  start: number;
  end: number;
}

let binding: FsxBinding | null | undefined;
let bindingPath: string | undefined;
let loadError: string | undefined;

function load(): FsxBinding | null {
  if (binding !== undefined) return binding;
  binding = null;
  if (process.env.WINSNAP_NO_NATIVE === '1') {
    loadError = 'disabled by WINSNAP_NO_NATIVE=1';
    return binding;
  }
  const path = packagePath('dist/native/fsx.node');
  if (!path) {
    loadError = 'dist/native/fsx.node was not built (see scripts/build.mjs)';
    return binding;
  }
  try {
    binding = createRequire(import.meta.url)(path) as FsxBinding;
    bindingPath = path;
  } catch (err) {
    loadError = `${path}: ${(err as Error).message}`;
  }
  return binding;
}

/** Whether the native helper is loaded, and why not when it is not. */
export function nativeStatus(): { loaded: boolean; reason?: string } {
  const b = load();
  return b ? { loaded: true } : { loaded: false, reason: loadError };
}

/**
 * The ranges of [0, size) of the open file `fd` that may hold data, in order, not touching
 * each other. Bytes outside them read as zeros. Without the native helper: one range, all of it.
 * Moves the descriptor's file offset (lseek): read at explicit positions afterwards.
 */
export function dataExtents(fd: number, size: number): Extent[] {
  const b = load();
  if (!b) return size > 0 ? [{ start: 0, end: size }] : [];
  const flat = b.dataExtents(fd, size);
  const out: Extent[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ start: flat[i]!, end: flat[i + 1]! });
  return out;
}

/**
 * fallocate(2) of [offset, offset + length) of `fd`, which the caller is about to write (the
 * file grows as that write would make it): 0, or the error number (never throws; the write
 * then allocates as usual and reports ENOSPC itself). Undefined without the native helper.
 */
export function allocateCall(): ((fd: number, offset: number, length: number) => number) | undefined {
  return load()?.allocate;
}

/** fsx.c encodeInodes: see there, and the ext4 writer's finish. */
export type EncodeInodes = (
  columns: readonly ArrayBufferView[],
  special: Uint8Array,
  byIno: Uint32Array,
  at: number,
  firstIno: number,
  count: number,
  piece: Uint8Array,
  used: Uint8Array,
  metaStart: number,
  specials: Int32Array,
  out: Float64Array,
) => void;

/** fsx.c dirBlocks: see there, and the ext4 writer's appendDir. */
export type DirBlocks = (columns: readonly ArrayBufferView[], dir: number, parent: number, out: Uint8Array | null, origin: number) => number;

/** fsx.c metadataNodes: see there, and the ext4 writer's finish. */
export type MetadataNodes = (kind: Uint8Array, size: Float64Array, xattrSet: Uint32Array, inlineAt: Uint32Array, special: Uint8Array, byIno: Uint32Array, out: Int32Array) => number;

/** What the ext4 writer's finish has the native helper do (see ext4NativeCalls). */
export interface Ext4NativeCalls {
  encodeInodes: EncodeInodes;
  metadataNodes: MetadataNodes;
  dirBlocks: DirBlocks;
}

/**
 * The native encoders the ext4 writer's finish uses (the common inodes, the nodes to visit for
 * metadata, directories' blocks), or undefined without the native helper, or with
 * WINSNAP_NO_NATIVE_INODES=1, which tests use to compare with the writer's own code.
 */
export function ext4NativeCalls(): Ext4NativeCalls | undefined {
  if (process.env.WINSNAP_NO_NATIVE_INODES === '1') return undefined;
  const b = load();
  return b?.encodeInodes && b.metadataNodes && b.dirBlocks ? { encodeInodes: b.encodeInodes, metadataNodes: b.metadataNodes, dirBlocks: b.dirBlocks } : undefined;
}

/**
 * The native tar header decoder (fsx.c tarHeader: 1 and the fields in `out`, or 0 for a block
 * the JavaScript decoder must explain), or undefined without the native helper.
 */
export function tarHeaderCall(): ((block: Uint8Array, out: Float64Array) => number) | undefined {
  return load()?.tarHeader;
}

/**
 * The path of the native helper when it offers sha256Blocks, for a worker thread to load it
 * (hash-worker.ts); undefined otherwise.
 */
export function sha256BlocksAddon(): string | undefined {
  return load()?.sha256Blocks ? bindingPath : undefined;
}

/**
 * The native CRC on the calling thread, `crc(which, buffer, previous)` (which: CRC32_BIT or
 * CRC32C_BIT; `previous` the CRC of the bytes before, as zlib's crc32()), where readChecksum is
 * offered; else undefined.
 */
export function crcCall(): ((which: number, buffer: Uint8Array, previous?: number) => number) | undefined {
  return load()?.crc;
}

/** readChecksum, or undefined where the native helper or the CPU cannot (callers then checksum inline). */
export function readChecksumCall(): ReadChecksum | undefined {
  const b = load();
  const call = b?.readChecksum;
  if (!call) return undefined;
  return (fd, buffer, position, which, out) =>
    new Promise((resolve, reject) => call(fd, buffer, position, which, out, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Asks for a pipe buffer of `bytes` on the pipe `fd` (fcntl F_SETPIPE_SZ, Linux): the size it
 * now has, or undefined when it could not be set (not a pipe, in non-blocking mode, over the
 * system's limit, not Linux, no native helper).
 */
export function setPipeSize(fd: number, bytes: number): number | undefined {
  const got = load()?.setPipeSize(fd, bytes);
  return got !== undefined && got > 0 ? got : undefined;
}

/** The native helper's memory-mapping calls, or undefined without it (see spill.ts). */
export function mappingCalls(): Pick<FsxBinding, 'mapShared' | 'dropResident' | 'mapRead' | 'unmap'> | undefined {
  const b = load();
  return b ? { mapShared: b.mapShared, dropResident: b.dropResident, mapRead: b.mapRead, unmap: b.unmap } : undefined;
}
