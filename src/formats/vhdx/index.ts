/**
 * VHDX (MS-VHDX): create fixed/dynamic/differencing disks, open and read through parent
 * chains, write, grow, copy and convert raw ↔ VHDX. See docs/formats/vhdx.md.
 */
import { VhdxDisk } from './disk.js';
import type { OpenOptions } from './types.js';

export { VhdxDisk } from './disk.js';
export { createDynamic, createFixed, createDifferencing, parentLocatorEntries, relativeParentPath } from './create.js';
export { resize } from './resize.js';
export { rawToVhdx, vhdxToRaw, isVhdxFile, type RawToVhdxOptions, type VhdxToRawOptions } from './convert.js';
export { copyDisk, type CopyOptions } from './copy.js';
export { detectFilesystem, type FsDetection, type FilesystemKind } from './fsdetect.js';
export { deriveGuid, randomGuid, parseGuid, ZERO_GUID, type Guid, type IdMode } from './guid.js';
export type { CreateOptions, DifferencingOptions, DiskType, IdOptions, OpenOptions, ProgressFn, VhdxInfo } from './types.js';

/** Opens a VHDX; `writable: true` for write/resize. Close it when done. */
export function open(path: string, opts: OpenOptions = {}): Promise<VhdxDisk> {
  return VhdxDisk.open(path, opts);
}

/** Info of the VHDX at path (opens read-only, resolves the parent chain when it can). */
export async function info(path: string, opts: OpenOptions = {}): Promise<import('./types.js').VhdxInfo> {
  const d = await VhdxDisk.open(path, { ...opts, writable: false });
  try {
    return d.info;
  } finally {
    await d.close();
  }
}

/** What the virtual disk holds (ext4 / NTFS / nothing), whole-disk or in a GPT/MBR partition. */
export async function detectDiskFilesystem(disk: VhdxDisk): Promise<import('./fsdetect.js').FsDetection> {
  const { detectFilesystem } = await import('./fsdetect.js');
  return detectFilesystem((o, l) => disk.read(o, Math.min(l, disk.size - o)), disk.size, disk.info.logicalSectorSize);
}
