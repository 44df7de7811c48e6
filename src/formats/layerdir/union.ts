/**
 * A read-only union view of a Windows layer chain (topmost layer first): what a container
 * started on the chain would see. Names resolve case-insensitively; a whiteout hides the
 * name and everything below it in lower layers; directories merge across layers.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { invalidArgument, notFound } from '../../services/errdefs.js';
import { foldName } from '../common/upcase.js';
import { windowsEntryFromTar, type WindowsEntry } from '../wintar/entry.js';
import type { TarHeader } from '../tar/types.js';
import { LayerChain, type ResolvedEntry } from './chain.js';
import { EntryKind, type IndexedEntry } from './index-db.js';

export interface UnionEntry {
  /** the name as spelled by the layer that provides it */
  name: string;
  kind: 'file' | 'dir' | 'symlink' | 'junction' | 'hardlink' | 'ads';
  size: number;
  /** which layer (index in the chain, 0 = topmost) provides it */
  layer: number;
  windows: WindowsEntry;
}

function normalizePath(p: string): string {
  const s = p.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '');
  if (s.split('/').some((c) => c === '..' || c === '.')) throw invalidArgument(`path ${p}: '.' and '..' are not allowed`, { path: p });
  return s;
}

function toTarHeader(e: IndexedEntry): TarHeader {
  const h = e.header;
  return {
    name: e.name,
    linkname: h.linkname ?? '',
    type: h.typeflag === 0x35 ? 'dir' : h.typeflag === 0x32 ? 'symlink' : h.typeflag === 0x31 ? 'link' : 'file',
    typeflag: h.typeflag ?? 0x30,
    mode: h.mode,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    size: h.size,
    mtime: typeof h.mtime === 'object' ? h.mtime : { sec: BigInt(h.mtime ?? 0), nsec: 0 },
    uname: h.uname ?? '',
    gname: h.gname ?? '',
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
    pax: h.pax,
    globalPax: [],
    format: h.pax.length > 0 ? 'pax' : 'ustar',
  };
}

function describe(r: ResolvedEntry): UnionEntry {
  const windows = windowsEntryFromTar(toTarHeader(r.entry));
  const kind = windows.kind === 'whiteout' ? 'file' : windows.kind;
  return { name: r.entry.name, kind, size: r.entry.header.size, layer: r.depth, windows };
}

export class UnionView {
  readonly chain: LayerChain;

  /** `layers`: layer directories, topmost first. */
  constructor(layers: readonly string[]) {
    this.chain = new LayerChain(layers);
  }

  stat(path: string): UnionEntry {
    const p = normalizePath(path);
    if (p === '') throw invalidArgument('give a path under Files/, Hives/ or UtilityVM/');
    const r = this.chain.resolve(foldName(p));
    if (!r) throw notFound(`${p} does not exist in this layer chain`, { path: p });
    return describe(r);
  }

  /** Direct children of a directory, merged over the chain, sorted case-insensitively. */
  list(path: string): UnionEntry[] {
    const p = normalizePath(path);
    const roots = p === '';
    const folded = foldName(p);
    if (!roots) {
      const d = this.stat(p);
      if (d.kind !== 'dir') throw invalidArgument(`${p} is not a directory`, { path: p });
    }
    const seen = new Map<string, UnionEntry>();
    for (let i = 0; i < this.chain.length; i++) {
      const ix = this.chain.indexAt(i);
      const it = roots ? ix.entries() : ix.under(folded);
      for (const e of it) {
        const rest = roots ? e.folded : e.folded.slice(folded.length + 1);
        if (rest.includes('/') || e.kind === EntryKind.Whiteout || seen.has(e.folded)) continue;
        const r = this.chain.resolve(e.folded);
        if (r && r.depth === i) seen.set(e.folded, describe(r));
      }
      if (!roots && ix.deletes(folded)) break;
    }
    return [...seen.values()].sort((a, b) => (foldName(a.name) < foldName(b.name) ? -1 : 1));
  }

  /** The data of a file (or `file:stream`). */
  read(path: string): Readable {
    const p = normalizePath(path);
    const r = this.chain.resolve(foldName(p));
    if (!r) throw notFound(`${p} does not exist in this layer chain`, { path: p });
    if (r.entry.kind === EntryKind.Dir) throw invalidArgument(`${p} is a directory`, { path: p });
    if (!r.hostPath || r.entry.kind === EntryKind.Reparse) throw invalidArgument(`${p} is a ${r.entry.kind === EntryKind.Reparse ? 'reparse point' : 'entry'} without data`, { path: p });
    return createReadStream(r.hostPath);
  }

  close(): void {
    this.chain.close();
  }
}
