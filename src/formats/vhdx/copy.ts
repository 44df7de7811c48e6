/**
 * Copying a VHDX (the snapshotters' "copy blank.vhdx to sandbox.vhdx"): a byte-for-byte copy
 * of the live ranges only (header section, log, regions, allocated blocks), so free space
 * stays sparse; identifiers are kept, as a Windows file copy keeps them. A differencing copy in
 * another directory gets its parent locator's relative_path re-pointed at the same parent
 * (parent_linkage is unchanged, so the chain still validates).
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { MiB } from './constants.js';
import { beginAtomicCreate, relativeParentPath } from './create.js';
import { VhdxDisk } from './disk.js';
import { isZero, RandomAccessFile } from './fileio.js';
import type { VhdxInfo } from './types.js';

export interface CopyOptions {
  overwrite?: boolean;
  /** Parent file of a differencing source, instead of resolving its parent locator. */
  parentPath?: string;
}

export async function copyDisk(src: string, dst: string, opts: CopyOptions = {}): Promise<VhdxInfo> {
  const disk = await VhdxDisk.open(src, opts.parentPath ? { parentPath: opts.parentPath } : {});
  const info = disk.info;
  const ranges = info.logReplayed ? [{ start: 0, end: info.fileSize }] : disk.usedRanges();
  await disk.close();
  const at = await beginAtomicCreate(dst, opts.overwrite ?? false);
  let out: RandomAccessFile | undefined;
  const inp = await RandomAccessFile.open(src, false);
  try {
    out = await RandomAccessFile.create(at.tmp, true);
    const buf = Buffer.allocUnsafe(4 * MiB);
    for (const r of ranges) {
      for (let pos = r.start; pos < Math.min(r.end, inp.size); pos += buf.length) {
        const n = Math.min(buf.length, r.end - pos);
        const view = buf.subarray(0, n);
        await inp.readInto(view, 0, n, pos);
        if (!isZero(view)) await out.write(pos, view);
      }
    }
    await out.truncate(inp.size);
    await out.sync();
    await out.close();
    out = undefined;
    await at.finish();
  } catch (err) {
    await out?.close().catch(() => undefined);
    await at.abort();
    throw err;
  } finally {
    await inp.close();
  }
  if (info.type === 'differencing' && info.parentPath && dirname(resolvePath(src)) !== dirname(resolvePath(dst))) {
    const entries = Object.entries(info.parentLocator!.entries).map(([k, v]): [string, string] =>
      k === 'relative_path' ? [k, relativeParentPath(dst, info.parentPath!)] : [k, v],
    );
    const d = await VhdxDisk.open(dst, { writable: true, parentPath: info.parentPath });
    try {
      await d.setParentLocator(entries);
    } finally {
      await d.close();
    }
  }
  const d = await VhdxDisk.open(dst, opts.parentPath ? { parentPath: opts.parentPath } : {});
  try {
    return d.info;
  } finally {
    await d.close();
  }
}
