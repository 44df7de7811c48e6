/**
 * Disk usage of a directory tree as containerd's continuity fs.DiskUsage on Unix: each
 * inode counted once (hard links), size = allocated blocks × 512, inodes = distinct inodes.
 * Symlinks are not followed.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Usage } from '../snapshots.js';

export async function diskUsage(...roots: string[]): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path, { bigint: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += Number(st.blocks) * 512;
    }
    if (st.isDirectory()) {
      const names = await readdir(path);
      for (const n of names) await visit(join(path, n));
    }
  };
  for (const r of roots) await visit(r);
  return { size, inodes: seen.size };
}
