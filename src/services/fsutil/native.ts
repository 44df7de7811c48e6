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
 */
import { createRequire } from 'node:module';
import { packagePath } from './package-path.js';

interface FsxBinding {
  dataExtents(fd: number, size: number): Float64Array;
  mapShared(fd: number, length: number): ArrayBuffer;
  dropResident(buffer: ArrayBuffer): void;
  mapRead(fd: number, offset: number, length: number): ArrayBuffer;
  unmap(buffer: ArrayBuffer): void;
}

export interface Extent {
  start: number;
  end: number;
}

let binding: FsxBinding | null | undefined;
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

/** The native helper's memory-mapping calls, or undefined without it (see spill.ts). */
export function mappingCalls(): Pick<FsxBinding, 'mapShared' | 'dropResident' | 'mapRead' | 'unmap'> | undefined {
  const b = load();
  return b ? { mapShared: b.mapShared, dropResident: b.dropResident, mapRead: b.mapRead, unmap: b.unmap } : undefined;
}
