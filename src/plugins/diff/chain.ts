/**
 * The diff service: differs tried in order, the next one taking over when a differ answers
 * NotImplemented (containerd services/diff: the Windows differ falls through to LCOW).
 */
import type { Readable } from 'node:stream';
import { isNotImplemented, notImplemented } from '../../services/errdefs.js';
import type { Descriptor } from '../../services/content/store.js';
import type { Mount } from '../../services/mount.js';
import type { ApplyStreamOptions, CompareOptions, Differ } from './types.js';

export class DiffChain implements Differ {
  readonly name: string;

  constructor(readonly differs: Differ[]) {
    this.name = differs.map((d) => d.name).join(',');
  }

  private async first<T>(what: string, fn: (d: Differ) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const d of this.differs) {
      try {
        return await fn(d);
      } catch (e) {
        if (!isNotImplemented(e)) throw e;
        last = e;
      }
    }
    throw notImplemented(`no differ could ${what}${last ? ` (last: ${(last as Error).message})` : ''}`);
  }

  apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor> {
    return this.first('apply the layer', (d) => d.apply(desc, mounts));
  }

  /** Streams can be read once: differs are chosen from the mounts before the blob is read. */
  applyStream(blob: Readable, desc: Descriptor, mounts: Mount[], opts?: ApplyStreamOptions): Promise<Descriptor> {
    return this.first('apply the layer', (d) => d.applyStream(blob, desc, mounts, opts));
  }

  compare(lower: Mount[], upper: Mount[], opts?: CompareOptions): Promise<Descriptor> {
    return this.first('compare the mounts', (d) => d.compare(lower, upper, opts));
  }
}
