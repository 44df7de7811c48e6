/**
 * The LCOW scratch disk (hcsshim CreateScratch / runhcs create-scratch, done portably): a
 * dynamic VHDX with 1 MiB blocks, as `vhd.CreateVhdx` makes it, holding an empty writable
 * ext4 filesystem (no journal) that spans the whole virtual disk. Upstream formats it with
 * `mkfs.ext4` inside a utility VM; we lay the filesystem out ourselves
 * (src/formats/ext4/mkfs.ts), so only its metadata blocks are allocated in the VHDX.
 * Default size 20 GiB (hcsshim's default scratch size).
 */
import { rename, rm } from 'node:fs/promises';
import { makeEmptyExt4 } from '../../formats/ext4/mkfs.js';
import { createDynamic, open as openVhdx } from '../../formats/vhdx/index.js';

export const LCOW_DEFAULT_SCRATCH_GB = 20;
export const LCOW_SCRATCH_BLOCK_SIZE = 1024 * 1024;

/** Writes the scratch VHDX to `path` atomically (temporary name, then rename). */
export async function createLcowScratch(path: string, sizeBytes: number): Promise<void> {
  const fs = makeEmptyExt4(sizeBytes, { label: 'scratch' });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await createDynamic(tmp, { size: sizeBytes, blockSize: LCOW_SCRATCH_BLOCK_SIZE, overwrite: true, idSeed: `lcow-scratch:${sizeBytes}` });
    const disk = await openVhdx(tmp, { writable: true });
    try {
      for (const e of fs.extents) await disk.write(e.offset, e.data);
      await disk.flush();
    } finally {
      await disk.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
