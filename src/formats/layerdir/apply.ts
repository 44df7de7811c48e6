/**
 * Applies a Windows layer tar to an empty directory, producing a layer directory
 * (DESIGN.md "Windows layer directory"; windows-layer-formats.md §2):
 *
 * - `Files/`, `Hives/`, `UtilityVM/Files/` become real host files and directories; an
 *   alternate data stream `f:s` is the host file `f:s` beside `f`; symlinks and junctions
 *   are empty host files (their reparse data lives in the index; no host symlink is ever
 *   created); hard links are host hard links, to this layer or to a parent layer's file
 *   (copied when the filesystems differ); whiteouts have no host file.
 * - Every entry is recorded in the index (`winsnap-layer.db`) with its full tar header, so
 *   export reproduces it exactly; the index is renamed into place last.
 * - Names are validated (names.ts), compared case-insensitively (one spelling per
 *   directory on the host), and duplicates, writes below a reparse point, tombstones
 *   outside `Files/` (or in a base layer) and links that leave the layer's trees are
 *   InvalidArgument. Files are created with O_EXCL|O_NOFOLLOW, directories by us only.
 * - Data streams through with bounded memory; all-zero chunks become holes.
 */
import { closeSync, constants, ftruncateSync, linkSync, mkdirSync, openSync, readdirSync, rmSync, writeSync, copyFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition, invalidArgument } from '../../services/errdefs.js';
import { foldName } from '../common/upcase.js';
import type { TarEntry } from '../tar/reader.js';
import { windowsEntryFromTar, type WindowsEntry } from '../wintar/entry.js';
import { FILE_ATTRIBUTE } from '../wintar/constants.js';
import { LayerChain } from './chain.js';
import { EntryKind, IndexWriter } from './index-db.js';
import { inFilesTree, parseLayerName, whiteoutTarget, LAYER_ROOTS, type LayerName } from './names.js';

export interface ApplyOptions {
  /** parent layer directories, immediate parent first (empty: a base layer) */
  parents?: readonly string[];
  /** called after each entry (progress) */
  onEntry?: (name: string, bytes: number) => void;
}

export interface ApplyResult {
  entries: number;
  /** bytes of file data written */
  dataBytes: number;
  base: boolean;
  hasUtilityVM: boolean;
}

const ZERO = Buffer.alloc(1 << 20);
const OPEN_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function isZero(b: Buffer): boolean {
  if (b.length < 4096) return false;
  for (let off = 0; off < b.length; off += ZERO.length) {
    const part = b.subarray(off, off + ZERO.length);
    if (!part.equals(ZERO.subarray(0, part.length))) return false;
  }
  return true;
}

const KIND: Record<WindowsEntry['kind'], EntryKind> = {
  file: EntryKind.File,
  dir: EntryKind.Dir,
  symlink: EntryKind.Reparse,
  junction: EntryKind.Reparse,
  hardlink: EntryKind.HardLink,
  ads: EntryKind.Ads,
  whiteout: EntryKind.Whiteout,
};

/** Applies the entries of a layer tar to `layerDir`, which must be empty. */
export async function applyLayer(entries: AsyncIterable<TarEntry>, layerDir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const parents = opts.parents ?? [];
  const base = parents.length === 0;
  mkdirSync(layerDir, { recursive: true });
  const existing = readdirSync(layerDir);
  if (existing.length > 0) {
    throw failedPrecondition(`cannot apply a layer to ${layerDir}: the directory is not empty (${existing.slice(0, 3).join(', ')})`, { path: layerDir });
  }
  const chain = new LayerChain(parents);
  const index = new IndexWriter(layerDir, { base: base ? '1' : '0' });
  // folded directory → host directory (relative), and whether it is below a reparse point
  const dirs = new Map<string, { host: string }>();
  let dataBytes = 0;
  let hasUtilityVM = false;

  const parentDir = (n: LayerName, offset: number): string => {
    // resolve (and create) the host directory holding n, one spelling per folded name
    let hostDir = '';
    let folded = '';
    for (let i = 0; i < n.parts.length - 1; i++) {
      const part = n.parts[i]!;
      folded = folded ? `${folded}/${foldName(part)}` : foldName(part);
      let d = dirs.get(folded);
      if (!d) {
        const own = index.get(folded);
        const up = own ? undefined : chain.resolve(folded);
        const found = own ?? up?.entry;
        const where = n.parts.slice(0, i + 1).join('/');
        if (found && (found.kind === EntryKind.Reparse || (found.attributes & FILE_ATTRIBUTE.REPARSE_POINT) !== 0)) {
          throw invalidArgument(`layer entry "${n.name}" would be written through the reparse point "${where}"`, { entry: n.name, offset });
        }
        if (found && found.kind !== EntryKind.Dir) {
          throw invalidArgument(`layer entry "${n.name}" is below "${where}", which is not a directory`, { entry: n.name, offset });
        }
        let host: string;
        if (own) host = own.host!;
        else {
          const spelled = up ? up.entry.name.replace(/\/+$/, '').split('/').pop()! : part;
          host = hostDir ? `${hostDir}/${spelled}` : spelled;
          mkdirSync(join(layerDir, host), { recursive: true });
        }
        d = { host };
        dirs.set(folded, d);
      }
      hostDir = d.host;
    }
    return hostDir;
  };

  const writeFile = async (hostPath: string, e: TarEntry): Promise<number> => {
    const fd = openSync(hostPath, OPEN_NEW, 0o644);
    let pos = 0;
    let hole = false;
    try {
      for await (const chunk of e.body) {
        if (isZero(chunk)) hole = true;
        else {
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off, pos + off);
          hole = false;
        }
        pos += chunk.length;
      }
      if (hole || pos !== 0) ftruncateSync(fd, pos);
    } finally {
      closeSync(fd);
    }
    return pos;
  };

  let committed = false;
  try {
    for await (const e of entries) {
      const offset = e.offset;
      const n = parseLayerName(e.header.name, offset);
      const we = windowsEntryFromTar(e.header, { offset });
      const folded = foldName(n.name);
      const kind = KIND[we.kind];
      if (n.parts[0] === 'UtilityVM') hasUtilityVM = true;
      let host: string | null = null;
      let target: string | null = null;

      if (n.parts.length === 1 && kind !== EntryKind.Dir) {
        throw invalidArgument(`layer entry "${n.name}" must be a directory`, { entry: n.name, offset });
      }
      switch (kind) {
        case EntryKind.Whiteout: {
          const t = whiteoutTarget(n)!;
          const tp = t.split('/');
          if (!inFilesTree(tp) || tp[tp.length - 1] === '') {
            throw invalidArgument(`invalid tombstone "${n.name}": only names under Files/ or UtilityVM/Files/ can be deleted`, { entry: n.name, offset });
          }
          if (base) throw invalidArgument(`invalid tombstone "${n.name}": a base layer (no parents) cannot delete`, { entry: n.name, offset });
          if (e.header.size !== 0) throw invalidArgument(`invalid tombstone "${n.name}": it carries ${e.header.size} bytes of data`, { entry: n.name, offset });
          parentDir(n, offset);
          target = foldName(t);
          break;
        }
        case EntryKind.Dir: {
          const hostDir = n.parts.length === 1 ? '' : parentDir(n, offset);
          const last = n.parts[n.parts.length - 1]!;
          // a directory made implicitly for an earlier child keeps its host spelling
          host = dirs.get(folded)?.host ?? (hostDir ? `${hostDir}/${last}` : last);
          try {
            mkdirSync(join(layerDir, host));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !lstatSync(join(layerDir, host)).isDirectory()) throw err;
          }
          // children of a directory that is a reparse point are refused (parentDir sees the attribute)
          if ((we.attributes & FILE_ATTRIBUTE.REPARSE_POINT) !== 0) dirs.delete(folded);
          else dirs.set(folded, { host });
          break;
        }
        case EntryKind.File:
        case EntryKind.Reparse: {
          const hostDir = parentDir(n, offset);
          host = `${hostDir}/${n.parts[n.parts.length - 1]}`;
          const written = await writeFile(join(layerDir, host), e);
          dataBytes += written;
          break;
        }
        case EntryKind.Ads: {
          const baseFolded = foldName(n.ads!.base);
          const owner = index.get(baseFolded);
          if (!owner || (owner.kind !== EntryKind.File && owner.kind !== EntryKind.Dir && owner.kind !== EntryKind.Reparse)) {
            throw invalidArgument(`alternate data stream "${n.name}" does not follow a file or directory of this layer`, { entry: n.name, offset });
          }
          host = `${owner.host!}:${n.parts[n.parts.length - 1]!.slice(n.parts[n.parts.length - 1]!.indexOf(':') + 1)}`;
          dataBytes += await writeFile(join(layerDir, host), e);
          break;
        }
        case EntryKind.HardLink: {
          const linkName = e.header.linkname;
          const ln = parseLayerName(linkName, offset);
          if (!inFilesTree(n.parts) || !inFilesTree(ln.parts)) {
            throw invalidArgument(`hard link "${n.name}" → "${linkName}": both ends must be under Files/ or UtilityVM/Files/`, { entry: n.name, offset });
          }
          const tf = foldName(ln.name);
          let src: string | undefined;
          const own = index.get(tf);
          if (own) {
            if (own.kind === EntryKind.File || own.kind === EntryKind.HardLink || own.kind === EntryKind.Reparse) src = join(layerDir, own.host!);
          } else {
            const up = chain.resolve(tf);
            if (up && (up.entry.kind === EntryKind.File || up.entry.kind === EntryKind.HardLink || up.entry.kind === EntryKind.Reparse)) src = up.hostPath;
          }
          if (!src) throw invalidArgument(`hard link "${n.name}" → "${linkName}": the target is not a file of this or a parent layer`, { entry: n.name, offset });
          const hostDir = parentDir(n, offset);
          host = `${hostDir}/${n.parts[n.parts.length - 1]}`;
          try {
            linkSync(src, join(layerDir, host));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EXDEV' && (err as NodeJS.ErrnoException).code !== 'EMLINK') throw err;
            copyFileSync(src, join(layerDir, host), constants.COPYFILE_EXCL);
          }
          target = tf;
          break;
        }
        default:
          throw invalidArgument(`layer entry "${n.name}" has an unsupported type`, { entry: n.name, offset });
      }
      index.add(
        {
          name: e.header.name,
          folded,
          kind,
          host,
          target,
          attributes: we.attributes,
          header: { ...e.header, name: e.header.name, pax: e.header.pax, size: e.header.size, mode: e.header.mode },
        },
        offset,
      );
      opts.onEntry?.(n.name, e.header.size);
    }
    index.commit();
    committed = true;
    return { entries: index.count, dataBytes, base, hasUtilityVM };
  } finally {
    chain.close();
    if (!committed) {
      index.abort();
      for (const r of LAYER_ROOTS) rmSync(join(layerDir, r), { recursive: true, force: true });
    }
  }
}
