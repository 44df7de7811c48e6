/**
 * Turns a writable host tree into a layer directory: the portable equivalent of
 * hcsshim's ConvertToBaseLayer (parentless) and of re-importing a scratch as a read-only
 * layer (with parents). The trees `Files/`, `Hives/`, `UtilityVM/` under the directory are
 * indexed in Windows order (case-insensitive, directories before their contents):
 *
 * - directories → DIRECTORY, files → ARCHIVE, times from the host (mtime = last write,
 *   atime = last access, ctime = change, birth time or mtime = creation), no security
 *   descriptor and no EAs (the host has none);
 * - a host file `f:s` is the alternate data stream `s` of `f`, listed right after `f`;
 * - files sharing an inode become hard links to the first name;
 * - a file `.wh.X` records the deletion of `X` from the parents (allowed only with parents
 *   and under Files/ or UtilityVM/Files/); the marker file is removed after indexing;
 * - host symlinks, sockets, devices and names Windows cannot hold are InvalidArgument.
 * Memory: one directory listing per tree level plus the inode map of multiply linked files.
 */
import { lstatSync, readdirSync, rmSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument } from '../../services/errdefs.js';
import { compareNames, foldName } from '../common/upcase.js';
import { FILE_ATTRIBUTE } from '../wintar/constants.js';
import { tarHeaderFromWindowsEntry, type WindowsEntry } from '../wintar/entry.js';
import { FILETIME_UNIX_EPOCH } from '../wintar/filetime.js';
import { EntryKind, IndexWriter, LayerIndex } from './index-db.js';
import { inFilesTree, parseLayerName, whiteoutTarget, LAYER_ROOTS } from './names.js';

export interface ScanOptions {
  /** parent layer directories, immediate parent first (empty: a base layer) */
  parents?: readonly string[];
  /**
   * Write the index here instead of into the layer directory, and leave the tree untouched
   * (whiteout markers stay): a read-only look at a writable tree, for exporting it.
   */
  indexDir?: string;
}

const nsToFiletime = (ns: bigint): bigint => ns / 100n + FILETIME_UNIX_EPOCH;

function times(st: BigIntStats): Pick<WindowsEntry, 'creationTime' | 'lastAccessTime' | 'lastWriteTime' | 'changeTime'> {
  const write = nsToFiletime(st.mtimeNs);
  return {
    creationTime: st.birthtimeNs > 0n ? nsToFiletime(st.birthtimeNs) : write,
    lastAccessTime: nsToFiletime(st.atimeNs),
    lastWriteTime: write,
    changeTime: nsToFiletime(st.ctimeNs),
  };
}

/** Indexes the host trees of `layerDir` as a layer; returns the number of entries. */
export function indexHostTree(layerDir: string, opts: ScanOptions = {}): number {
  const base = (opts.parents ?? []).length === 0;
  const indexDir = opts.indexDir ?? layerDir;
  if (LayerIndex.exists(indexDir)) throw invalidArgument(`${indexDir} already holds a layer index`, { path: indexDir });
  const index = new IndexWriter(indexDir, { base: base ? '1' : '0', converted: '1' });
  const inodes = new Map<string, string>();
  const markers: string[] = [];

  const add = (we: WindowsEntry, host: string | null, target: string | null, kind: EntryKind) => {
    const header = tarHeaderFromWindowsEntry(we);
    index.add({
      name: we.name,
      folded: foldName(we.name),
      kind,
      host,
      target,
      attributes: we.attributes,
      header: { ...header, pax: [...(header.pax ?? [])], size: header.size ?? 0, mode: header.mode ?? 0 },
    });
  };

  const walk = (rel: string) => {
    const names = readdirSync(join(layerDir, rel)).sort(compareNames);
    const streams = new Map<string, string[]>();
    const plain: string[] = [];
    for (const n of names) {
      const c = n.indexOf(':');
      if (c > 0) {
        const owner = n.slice(0, c);
        streams.set(owner, [...(streams.get(owner) ?? []), n]);
      } else plain.push(n);
    }
    for (const [owner] of streams) {
      if (!plain.includes(owner)) throw invalidArgument(`alternate data stream ${join(rel, owner)}:… has no file ${owner}`, { entry: `${rel}/${owner}` });
    }
    for (const n of plain) {
      const name = `${rel}/${n}`;
      const hostPath = join(layerDir, name);
      const parsed = parseLayerName(name);
      const st = lstatSync(hostPath, { bigint: true });
      const common = { name, eas: [], size: 0, extraPax: [], ...times(st) };
      if (st.isSymbolicLink()) throw invalidArgument(`${hostPath}: host symlinks cannot be converted; write Windows links through a layer tar`, { entry: name });
      if (st.isDirectory()) {
        add({ ...common, kind: 'dir', attributes: FILE_ATTRIBUTE.DIRECTORY }, name, null, EntryKind.Dir);
        for (const s of streams.get(n) ?? []) addStream(rel, n, s);
        walk(name);
        continue;
      }
      if (!st.isFile()) throw invalidArgument(`${hostPath}: only files and directories can be converted`, { entry: name });
      const deleted = whiteoutTarget(parsed);
      if (deleted !== undefined) {
        if (base || !inFilesTree(deleted.split('/')) || deleted.endsWith('/')) {
          throw invalidArgument(`invalid tombstone "${name}": ${base ? 'a base layer cannot delete' : 'only names under Files/ or UtilityVM/Files/ can be deleted'}`, { entry: name });
        }
        add({ ...common, kind: 'whiteout', attributes: 0, whiteoutTarget: deleted }, null, foldName(deleted), EntryKind.Whiteout);
        markers.push(hostPath);
        continue;
      }
      const inode = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? inodes.get(inode) : undefined;
      if (first !== undefined) {
        if (!inFilesTree(parsed.parts) || !inFilesTree(first.split('/'))) {
          throw invalidArgument(`hard link ${name} → ${first}: both ends must be under Files/ or UtilityVM/Files/`, { entry: name });
        }
        add({ ...common, kind: 'hardlink', attributes: FILE_ATTRIBUTE.ARCHIVE, linkTarget: first }, name, foldName(first), EntryKind.HardLink);
      } else {
        if (st.nlink > 1n) inodes.set(inode, name);
        add({ ...common, kind: 'file', attributes: FILE_ATTRIBUTE.ARCHIVE, size: Number(st.size) }, name, null, EntryKind.File);
      }
      for (const s of streams.get(n) ?? []) addStream(rel, n, s);
    }
  };

  const addStream = (rel: string, owner: string, hostName: string) => {
    const name = `${rel}/${hostName}`;
    const parsed = parseLayerName(name);
    const st = lstatSync(join(layerDir, name), { bigint: true });
    if (!st.isFile()) throw invalidArgument(`${name}: an alternate data stream must be a regular file`, { entry: name });
    add(
      { name, kind: 'ads', attributes: 0, eas: [], extraPax: [], size: Number(st.size), adsBase: parsed.ads!.base, adsStream: parsed.ads!.stream, ...times(st) },
      name,
      null,
      EntryKind.Ads,
    );
    void owner;
  };

  try {
    for (const root of LAYER_ROOTS) {
      let st;
      try {
        st = lstatSync(join(layerDir, root), { bigint: true });
      } catch {
        continue;
      }
      if (!st.isDirectory()) throw invalidArgument(`${join(layerDir, root)} must be a directory`, { entry: root });
      add({ name: root, kind: 'dir', attributes: FILE_ATTRIBUTE.DIRECTORY, eas: [], size: 0, extraPax: [], ...times(st) }, root, null, EntryKind.Dir);
      walk(root);
    }
    const n = index.count;
    index.commit();
    if (!opts.indexDir) for (const m of markers) rmSync(m, { force: true });
    return n;
  } catch (e) {
    index.abort();
    throw e;
  }
}
