/**
 * The `windows` differ (containerd plugins/diff/windows/windows.go; seeds 000 and 003):
 *
 * Apply: exactly one mount; `windows-layer` (and `bind`, which containerd 1.7 accepted and
 * our snapshotter emits for parentless snapshots) — any other type is NotImplemented so a
 * differ chain falls through to the next differ (LCOW); the blob is decompressed by media
 * type, written as a layer directory over the parents, trailing data drained, and the
 * descriptor of the *uncompressed* layer returned. A parentless layer is processed as a
 * base layer (hives, scratch templates).
 *
 * Compare: the mount pair must be a layer and its own parent chain (every upstream error
 * case), the upper layer is exported as a Windows layer tar, gzip-compressed by default
 * (plain tar on request, other types NotImplemented), committed to the content store under
 * a given or unique reference (a given one is truncated first; a new one is aborted on
 * failure) with `containerd.io/uncompressed` set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { invalidArgument, isNotImplemented, notImplemented, toWinsnapError } from '../../../services/errdefs.js';
import { MT } from '../../../services/compression/media-types.js';
import type { ContentStore, Descriptor } from '../../../services/content/store.js';
import { isReadOnly, parentLayerPaths, MOUNT_TYPE_BIND, MOUNT_TYPE_WINDOWS_LAYER, type Mount } from '../../../services/mount.js';
import { TarReader } from '../../../formats/tar/reader.js';
import { formatPaxTime, parsePaxTime } from '../../../formats/tar/time.js';
import type { PaxRecord, TarHeaderInput, TarTime } from '../../../formats/tar/types.js';
import { applyLayer } from '../../../formats/layerdir/apply.js';
import { exportLayer } from '../../../formats/layerdir/export.js';
import { LayerIndex } from '../../../formats/layerdir/index-db.js';
import { indexHostTree } from '../../../formats/layerdir/scan.js';
import { DEFAULT_WINDOWS_LAYER_CONFIG, processBaseLayer, type WindowsLayerConfig } from '../../windows/processing.js';
import { openLayerBlob } from '../blob.js';
import type { ApplyStreamOptions, CompareOptions, Differ } from '../types.js';
import { diffMediaType, writeDiff } from '../write-diff.js';

/** The layer directory and its parents a Windows mount stands for ("" layer = diff against nothing). */
export function mountsToLayerAndParents(mounts: Mount[]): { layer: string; parents: string[] } {
  if (mounts.length !== 1) throw invalidArgument('number of mounts should always be 1 for Windows layers');
  const m = mounts[0]!;
  if (m.type !== MOUNT_TYPE_WINDOWS_LAYER && m.type !== MOUNT_TYPE_BIND) {
    throw notImplemented(`windowsDiff does not support layer type ${m.type}`, { mountType: m.type });
  }
  const parents = parentLayerPaths(m);
  if (isReadOnly(m)) {
    if (parents.length === 0) return { layer: '', parents: [] };
    return { layer: parents[0]!, parents: parents.slice(1) };
  }
  // a parentless bind mount of <snapshot>/Files stands for the snapshot directory
  const layer = m.type === MOUNT_TYPE_BIND && basename(m.source) === 'Files' ? dirname(m.source) : m.source;
  return { layer, parents };
}

/** containerd mountPairToLayerStack: [upper, ...its parents], checking the pair. */
export function mountPairToLayerStack(lower: Mount[], upper: Mount[]): string[] {
  let up: { layer: string; parents: string[] };
  try {
    up = mountsToLayerAndParents(upper);
  } catch (e) {
    throw toWinsnapError(e).wrap('Upper mount invalid');
  }
  let low: { layer: string; parents: string[] };
  try {
    low = mountsToLayerAndParents(lower);
  } catch (e) {
    if (isNotImplemented(e)) throw invalidArgument('windowsDiff cannot diff a windows-layer against a non-windows-layer');
    throw toWinsnapError(e).wrap('Lower mount invalid');
  }
  if (low.layer === '') {
    if (up.parents.length !== 0) throw invalidArgument('windowsDiff cannot diff a layer with parents against a null layer');
    return [up.layer];
  }
  if (up.parents.length < 1) throw invalidArgument('windowsDiff cannot diff a layer with no parents against another layer');
  if (up.parents[0] !== low.layer) throw invalidArgument('windowsDiff cannot diff a layer against a layer other than its own parent');
  if (up.parents.length !== low.parents.length + 1 || up.parents.slice(1).some((p, i) => p !== low.parents[i])) {
    throw invalidArgument('windowsDiff cannot diff a layer against a layer with different parents');
  }
  return [up.layer, ...up.parents];
}

export { uniqueRef } from '../write-diff.js';

const TIME_KEYS = new Set(['mtime', 'atime', 'ctime', 'LIBARCHIVE.creationtime']);

/** Clamps every time of a header to the epoch (SOURCE_DATE_EPOCH semantics). */
export function clampHeaderTimes(h: TarHeaderInput, epoch: Date): TarHeaderInput {
  const limit: TarTime = { sec: BigInt(Math.floor(epoch.getTime() / 1000)), nsec: (epoch.getTime() % 1000) * 1e6 };
  const later = (t: TarTime) => t.sec > limit.sec || (t.sec === limit.sec && t.nsec > limit.nsec);
  const pax: PaxRecord[] = (h.pax ?? []).map((r) => {
    if (!TIME_KEYS.has(r.key)) return r;
    const t = parsePaxTime(r.value.toString('latin1'));
    return t && later(t) ? { key: r.key, value: Buffer.from(formatPaxTime(limit)) } : r;
  });
  const mtime = typeof h.mtime === 'number' ? { sec: BigInt(Math.floor(h.mtime)), nsec: 0 } : h.mtime;
  const out: TarHeaderInput = { ...h, pax };
  if (mtime && later(mtime)) out.mtime = limit;
  if (h.atime && later(h.atime)) out.atime = limit;
  if (h.ctime && later(h.ctime)) out.ctime = limit;
  return out;
}

export class WindowsDiffer implements Differ {
  readonly name = 'windows';

  constructor(
    private readonly store: ContentStore,
    private readonly cfg: WindowsLayerConfig = DEFAULT_WINDOWS_LAYER_CONFIG,
  ) {}

  async apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor> {
    mountsToLayerAndParents(mounts); // fall through to the next differ before reading anything
    return this.applyStream(await this.store.read(desc.digest), desc, mounts);
  }

  async applyStream(blob: Readable, desc: Descriptor, mounts: Mount[], opts: ApplyStreamOptions = {}): Promise<Descriptor> {
    const { layer, parents } = mountsToLayerAndParents(mounts);
    if (layer === '') {
      blob.destroy();
      throw invalidArgument('cannot apply a layer to a read-only view without parents');
    }
    const opened = openLayerBlob(blob, desc, opts);
    const reader = new TarReader(opened.tar);
    try {
      const r = await applyLayer(reader, layer, { parents });
      await reader.drain();
      opened.verify();
      if (r.base) await processBaseLayer(layer, this.cfg);
      return { mediaType: MT.ociLayer, digest: opened.uncompressed.digest(), size: opened.uncompressed.bytes };
    } catch (e) {
      await reader.close().catch(() => undefined);
      throw e;
    }
  }

  async compare(lower: Mount[], upper: Mount[], opts: CompareOptions = {}): Promise<Descriptor> {
    const layers = mountPairToLayerStack(lower, upper);
    diffMediaType(opts);
    const [upperDir, ...parents] = layers as [string, ...string[]];
    let scratchIndex: string | undefined;
    try {
      let indexDir: string | undefined;
      const epoch = opts.sourceDateEpoch;
      return await writeDiff(
        this.store,
        () => {
          if (!LayerIndex.exists(upperDir)) {
            scratchIndex = mkdtempSync(join(tmpdir(), 'winsnap-diff-'));
            indexHostTree(upperDir, { parents, indexDir: scratchIndex });
            indexDir = scratchIndex;
          }
          return exportLayer(upperDir, { indexDir, mapHeader: epoch ? (h) => clampHeaderTimes(h, epoch) : undefined });
        },
        opts,
      );
    } finally {
      if (scratchIndex) rmSync(scratchIndex, { recursive: true, force: true });
    }
  }
}
