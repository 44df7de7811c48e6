/**
 * Name resolution through a chain of committed layers (immediate parent first, base
 * last), with Windows semantics: case-insensitive names, and a whiteout of a name in a
 * layer hides that name and everything under it in the layers below.
 */
import { join } from 'node:path';
import { EntryKind, LayerIndex, type IndexedEntry } from './index-db.js';

export interface ResolvedEntry {
  layerDir: string;
  /** position in the chain (0 = topmost) */
  depth: number;
  entry: IndexedEntry;
  /** absolute host path of the entry's data/directory, when it has one */
  hostPath: string | undefined;
}

/** The folded ancestors of a folded name, shortest first ("A/B/C" → ["A", "A/B"]). */
export function foldedAncestors(folded: string): string[] {
  const out: string[] = [];
  for (let i = folded.indexOf('/'); i >= 0; i = folded.indexOf('/', i + 1)) out.push(folded.slice(0, i));
  return out;
}

export class LayerChain {
  private readonly indexes: (LayerIndex | undefined)[];

  constructor(readonly layerDirs: readonly string[]) {
    this.indexes = layerDirs.map(() => undefined);
  }

  private index(i: number): LayerIndex {
    let ix = this.indexes[i];
    if (!ix) this.indexes[i] = ix = LayerIndex.open(this.layerDirs[i]!);
    return ix;
  }

  get length(): number {
    return this.layerDirs.length;
  }

  /** Whether layer i deletes the folded name or one of its ancestors. */
  private hides(i: number, folded: string): boolean {
    const ix = this.index(i);
    if (ix.deletes(folded)) return true;
    for (const a of foldedAncestors(folded)) if (ix.deletes(a)) return true;
    return false;
  }

  /** The topmost visible entry for a folded name, or undefined when absent or deleted. */
  resolve(folded: string, from = 0): ResolvedEntry | undefined {
    for (let i = from; i < this.layerDirs.length; i++) {
      const ix = this.index(i);
      const e = ix.get(folded);
      if (e && e.kind !== EntryKind.Whiteout) {
        return { layerDir: this.layerDirs[i]!, depth: i, entry: e, hostPath: e.host === null ? undefined : join(this.layerDirs[i]!, e.host) };
      }
      if (this.hides(i, folded)) return undefined;
    }
    return undefined;
  }

  /** Whether any layer from `from` down deletes the name (or an ancestor) before an entry for it appears. */
  visibleAt(folded: string, from = 0): boolean {
    return this.resolve(folded, from) !== undefined;
  }

  /** The layer indexes, opened (for listings). */
  indexAt(i: number): LayerIndex {
    return this.index(i);
  }

  close(): void {
    for (const ix of this.indexes) ix?.close();
  }
}
