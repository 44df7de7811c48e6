/**
 * Growing a VHDX's virtual size (MS-VHDX §2.6.2.2, §2.5): see VhdxDisk.resize for the
 * crash-safe order (headers, zero the old tail, new BAT written and flushed, region tables
 * switched copy by copy, then the 8-byte Virtual Disk Size item).
 */
import { VhdxDisk } from './disk.js';
import type { IdOptions, VhdxInfo } from './types.js';

/** Grows the disk at path to newSize bytes; returns the new info. Shrinking is refused. */
export async function resize(path: string, newSize: number, opts: IdOptions = {}): Promise<VhdxInfo> {
  const disk = await VhdxDisk.open(path, { ...opts, writable: true });
  try {
    await disk.resize(newSize);
  } finally {
    await disk.close();
  }
  const d = await VhdxDisk.open(path);
  try {
    return d.info;
  } finally {
    await d.close();
  }
}
