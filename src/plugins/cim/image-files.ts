/**
 * The files one CIM image owns, for usage and removal (cimfs.GetCimUsage / DestroyCim):
 * `<name>.cim` plus the `region_<guid>_<i>` and `objectid_<guid>_<i>` files of its own
 * region set (a forked image refers to its parents' region files; those are not its own).
 */
import { existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { cimImageFiles } from '../../formats/cim/index.js';

export { cimImageFiles };

/** Bytes on disk of the image's own files (0 when the image does not exist). */
export async function cimUsage(imagePath: string): Promise<{ size: number; inodes: number }> {
  if (!existsSync(imagePath)) return { size: 0, inodes: 0 };
  let size = 0;
  const files = await cimImageFiles(imagePath);
  for (const f of files) size += await stat(f).then((st) => st.blocks * 512, () => 0);
  return { size, inodes: files.length };
}

/** Deletes the image and its own files; a missing image is not an error. */
export async function destroyCim(imagePath: string): Promise<void> {
  if (!existsSync(imagePath)) return;
  let files: string[];
  try {
    files = await cimImageFiles(imagePath);
  } catch {
    files = [imagePath]; // unreadable image: remove at least the image file
  }
  // the image last, so an interrupted removal can be retried from it
  for (const f of files.slice(1)) await rm(f, { force: true });
  await rm(imagePath, { force: true });
}
