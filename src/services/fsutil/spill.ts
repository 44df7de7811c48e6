/**
 * Tables spilled to disk: typed-array storage backed by an unlinked temporary file through a
 * shared memory mapping (native/fsx.c `mapShared`), for tables that would otherwise grow
 * resident memory with the size of the input (the ext4 writer's inode and directory-entry
 * tables for layers of hundreds of thousands of entries).
 *
 * Writes through the mapping land in the file's page cache. `trimResident()` drops every
 * mapping's pages from the process's resident set (madvise MADV_DONTNEED, `dropResident`) once
 * more than MAPPED_LIMIT of them are resident: dirty pages stay in the page cache, the kernel writes
 * them back to the file and evicts them when it needs the memory, and a page touched again is
 * mapped again from the page cache (or read back from the file). So the process's own memory
 * stays bounded whatever the table size, and the tables cost disk space in the directory given
 * (next to the output), not memory the system cannot reclaim.
 *
 * The file is unlinked as soon as it is open: nothing is left behind, even after a crash.
 * Without the native helper (or when the directory takes no file), `MappedFile.create` returns
 * undefined and callers keep their tables in memory as before.
 */
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, constants as fsConstants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { mappingCalls } from './native.js';
import { unavailable } from '../errdefs.js';

const MiB = 1024 * 1024;
/** Rows between trimResident() calls in loops over a spilled table (a mask: every 256 rows). */
export const TRIM_EVERY = 255;
/** Resident bytes of the mappings past which `trimResident` drops their pages. */
export const MAPPED_LIMIT = 16 * MiB;

/** /proc/self/statm, open while tables are spilled (read in place: no buffer per check) */
let statm: number | undefined;
const statmBuf = Buffer.alloc(128);

/**
 * Resident bytes backed by files (Linux: /proc/self/statm "shared", RssFile + RssShmem, in
 * 4 KiB pages), which the mappings' resident pages add to; elsewhere the whole resident set.
 */
function fileBackedResident(): number {
  try {
    statm ??= openSync('/proc/self/statm', 'r');
    const n = readSync(statm, statmBuf, 0, statmBuf.length, 0);
    // "size resident shared ...": the third field
    let i = 0;
    for (let spaces = 0; i < n && spaces < 2; i++) if (statmBuf[i] === 0x20) spaces++;
    let pages = 0;
    for (; i < n && statmBuf[i]! >= 0x30 && statmBuf[i]! <= 0x39; i++) pages = pages * 10 + statmBuf[i]! - 0x30;
    return pages * 4096;
  } catch {
    return process.memoryUsage.rss();
  }
}
/** fileBackedResident() before the first mapping (the program's own files: node, its libraries) */
let baseline = 0;

/** Mappings still in use (closed ones leave this set). */
const live = new Set<MappedFile>();
/** mapped files made so far (diagnostics and tests) */
let made = 0;

/** Where a table spills, and after how many rows (see the users of this module). */
export interface SpillPolicy {
  dir: string;
  afterRows: number;
}

/**
 * A new empty file in `dir`, open for reading and writing, already unlinked (so it goes away
 * with its descriptor, even after a crash): its descriptor.
 */
export function openTempFile(dir: string): number {
  const path = join(dir, `.winsnap-spill-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    unlinkSync(path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

export class MappedFile {
  private fd: number;
  /** the current mapping: the first `buffer.byteLength` bytes of the file */
  buffer: ArrayBuffer;
  private readonly calls: NonNullable<ReturnType<typeof mappingCalls>>;

  private constructor(
    calls: NonNullable<ReturnType<typeof mappingCalls>>,
    fd: number,
    bytes: number,
    private readonly dir: string,
  ) {
    this.calls = calls;
    this.fd = fd;
    if (live.size === 0) baseline = fileBackedResident();
    this.buffer = calls.mapShared(fd, bytes);
    live.add(this);
    made++;
  }

  /**
   * A new zero-filled file of `bytes` bytes in `dir`, mapped; undefined when mappings are not
   * available here (no native helper) or the file cannot be made (the directory takes no file,
   * the process may map no more): then the caller keeps its table in memory.
   */
  static create(dir: string, bytes: number): MappedFile | undefined {
    const calls = mappingCalls();
    if (!calls) return undefined;
    let fd: number | undefined;
    try {
      fd = openTempFile(dir);
      ftruncateSync(fd, bytes);
      return new MappedFile(calls, fd, bytes, dir);
    } catch {
      if (fd !== undefined) closeSync(fd);
      return undefined;
    }
  }

  /**
   * Grows the file to `bytes` and maps all of it: returns the new mapping (the same data, and
   * zeros after it). The old mapping's pages leave the resident set; its address space is
   * released when the garbage collector frees the old ArrayBuffer.
   */
  grow(bytes: number): ArrayBuffer {
    const old = this.buffer;
    try {
      ftruncateSync(this.fd, bytes);
      this.buffer = this.calls.mapShared(this.fd, bytes); // allocates the blocks first: a full disk fails here
    } catch (err) {
      throw unavailable(`growing a table spilled to ${this.dir} to ${bytes} bytes: ${(err as Error).message}`, { dir: this.dir, size: bytes }, err);
    }
    this.calls.dropResident(old);
    return this.buffer;
  }

  /** Drops the mapping's pages from the resident set (their data stays in the file). */
  dropResident(): void {
    this.calls.dropResident(this.buffer);
  }

  /** The table is no longer used: drops its pages and closes the file (the mapping goes with the ArrayBuffer). */
  close(): void {
    if (!live.delete(this)) return;
    this.dropResident();
    closeSync(this.fd);
    if (live.size === 0 && statm !== undefined) {
      closeSync(statm);
      statm = undefined;
    }
  }
}

/**
 * Called regularly by code that fills or reads spilled tables: every 256 rows (at most 1 MiB
 * of pages touched in between, one page a row) or megabyte of output; the check reads one
 * /proc file (a few µs). When any table is spilled and more than MAPPED_LIMIT of file-backed
 * pages beyond the baseline are resident, drops every mapping's pages. Returns whether it did.
 */
export function trimResident(): boolean {
  if (live.size === 0) return false;
  if (fileBackedResident() - baseline <= MAPPED_LIMIT) return false;
  for (const f of live) f.dropResident();
  return true;
}

/** How many spilled tables are open (for tests and diagnostics). */
export function spilledTables(): number {
  return live.size;
}

/** How many mapped files have been made in this process (for tests and diagnostics). */
export function mappedFilesMade(): number {
  return made;
}
