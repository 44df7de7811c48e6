/**
 * An LCOW layer disk (ext4, optionally followed by verity data and a VHD footer) back to an
 * OCI layer tar — what upstream's lcow differ cannot do. Walks the image (our reader):
 * directories, files (holes read as zeros), symlinks, devices, FIFOs, hard links (the first
 * name carries the data, later names are link entries), xattrs as `SCHILY.xattr.*`, times
 * with nanoseconds. With `whiteouts` (the default, as layers are applied with conversion),
 * 0/0 character devices become `.wh.X` and `trusted.overlay.opaque=y` becomes `.wh..wh..opq`.
 * The root's `lost+found` (made by the writer) is left out.
 */
import { Readable } from 'node:stream';
import { Ext4Reader, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, fileType } from '../../formats/ext4/reader.js';
import { TarWriter } from '../../formats/tar/writer.js';
import type { PaxRecord, TarHeaderInput } from '../../formats/tar/types.js';

export function exportExt4Layer(path: string, opts: { whiteouts?: boolean } = {}): Readable {
  const whiteouts = opts.whiteouts ?? true;
  const w = new TarWriter();
  (async () => {
    const r = await Ext4Reader.open(path);
    try {
      const seen = new Map<number, string>();
      for await (const { path: p, inode } of r.walk()) {
        if (p === 'lost+found') continue;
        if (p.startsWith('lost+found/')) continue;
        const t = fileType(inode.mode);
        const base: TarHeaderInput = {
          name: p,
          mode: inode.mode & 0o7777,
          uid: inode.uid,
          gid: inode.gid,
          mtime: inode.mtime,
          atime: inode.atime,
          ctime: inode.ctime,
        };
        const xattrs = inode.xattrs.filter((x) => x.name !== 'system.data' && !(whiteouts && t === S_IFDIR && x.name === 'trusted.overlay.opaque' && x.value.toString() === 'y'));
        const pax: PaxRecord[] = xattrs.map((x) => ({ key: `SCHILY.xattr.${x.name}`, value: x.value }));
        if (t === S_IFDIR) {
          await w.writeEntry({ ...base, name: `${p}/`, type: 'dir', pax });
          if (whiteouts && inode.xattrs.some((x) => x.name === 'trusted.overlay.opaque')) await w.writeEntry({ name: `${p}/.wh..wh..opq`, type: 'file', mode: 0, mtime: 0 });
          continue;
        }
        const first = seen.get(inode.ino);
        if (first !== undefined && inode.links > 1) {
          await w.writeEntry({ ...base, type: 'link', linkname: first, pax });
          continue;
        }
        seen.set(inode.ino, p);
        if (t === S_IFREG) await w.writeEntry({ ...base, type: 'file', size: inode.size, pax }, r.read(inode));
        else if (t === S_IFLNK) await w.writeEntry({ ...base, type: 'symlink', linkname: await r.symlinkTarget(inode), pax });
        else if (t === S_IFCHR || t === S_IFBLK) {
          const dev = r.device(inode);
          const slash = p.lastIndexOf('/');
          if (whiteouts && t === S_IFCHR && dev.major === 0 && dev.minor === 0) {
            await w.writeEntry({ name: `${p.slice(0, slash + 1)}.wh.${p.slice(slash + 1)}`, type: 'file', mode: 0, mtime: 0 });
          } else await w.writeEntry({ ...base, type: t === S_IFCHR ? 'char' : 'block', devmajor: dev.major, devminor: dev.minor, pax });
        } else if (t === S_IFIFO) await w.writeEntry({ ...base, type: 'fifo', pax });
      }
      await w.finish();
    } finally {
      await r.close();
    }
  })().catch((e: Error) => w.destroy(e));
  return w.stream;
}
