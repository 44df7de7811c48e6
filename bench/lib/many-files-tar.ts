/**
 * A generated tar of many small files (directories of 500 files of a few bytes each), for
 * measuring how memory grows with the number of entries rather than with bytes. Written with
 * our tar header encoder; the same arguments give the same bytes.
 */
import { closeSync, existsSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { encodeTarHeader } from '../../src/formats/tar/index.js';

const PER_DIR = 500;

/** Writes `path` (if it is not there yet) with `files` files and their directories; returns the entry count. */
export function manyFilesTar(path: string, files: number): number {
  const dirs = Math.ceil(files / PER_DIR);
  if (existsSync(path) && statSync(path).size > 0) return files + dirs;
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  const buf = Buffer.alloc(4 << 20);
  let used = 0;
  const put = (b: Buffer) => {
    if (used + b.length > buf.length) {
      writeSync(fd, buf, 0, used);
      used = 0;
    }
    used += b.copy(buf, used);
  };
  const mtime = { sec: 1_600_000_000n, nsec: 0 };
  for (let d = 0; d < dirs; d++) {
    const dir = `usr/lib/pkg${String(d).padStart(5, '0')}`;
    put(encodeTarHeader({ name: `${dir}/`, type: 'dir', mode: 0o755, mtime }));
    for (let i = 0; i < PER_DIR && d * PER_DIR + i < files; i++) {
      const body = Buffer.from(`${d}/${i}\n`);
      put(encodeTarHeader({ name: `${dir}/file-${String(i).padStart(5, '0')}.txt`, type: 'file', mode: 0o644, size: body.length, mtime }));
      const block = Buffer.alloc(512);
      body.copy(block);
      put(block);
    }
  }
  put(Buffer.alloc(1024));
  writeSync(fd, buf, 0, used);
  closeSync(fd);
  renameSync(tmp, path);
  return files + dirs;
}
