/**
 * The files one CIM image owns, for usage and removal (cimfs.GetCimUsage / DestroyCim):
 * `<name>.cim` plus the `region_<guid>_<i>` and `objectid_<guid>_<i>` files of its own
 * region set (a forked image refers to its parents' region files; those are not its own).
 */
import { existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CimReader, OBJECTID_FILE_PREFIX, REGION_FILE_PREFIX } from '../../formats/cim/index.js';

/** The image file and its own region and object-ID files (that exist). */
export async function cimImageFiles(imagePath: string): Promise<string[]> {
  const r = await CimReader.open(imagePath);
  try {
    const dir = dirname(imagePath);
    const files = [imagePath];
    for (let i = 0; i < r.regionSet.count; i++) {
      for (const prefix of [REGION_FILE_PREFIX, OBJECTID_FILE_PREFIX]) {
        const p = join(dir, `${prefix}_${r.regionSet.guid}_${i}`);
        if (existsSync(p)) files.push(p);
      }
    }
    return files;
  } finally {
    await r.close();
  }
}

/** Bytes on disk of the image's own files (0 when the image does not exist). */
export async function cimUsage(imagePath: string): Promise<{ size: number; inodes: number }> {
  if (!existsSync(imagePath)) return { size: 0, inodes: 0 };
  let size = 0;
  const files = await cimImageFiles(imagePath);
  for (const f of files) size += (await stat(f)).blocks * 512;
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
