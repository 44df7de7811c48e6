/**
 * The `lcow` differ (containerd diff/lcow/lcow.go, seed 002, with hcsshim's tar2ext4 in
 * process): Apply takes exactly one `lcow-layer` mount (anything else is InvalidArgument, as
 * upstream — it is the last differ in the chain) and converts the layer into
 * `<mount source>/layer.vhd`: ext4 with whiteouts converted, a 128 GiB limit and a fixed VHD
 * footer; it returns the uncompressed digest and size. Compare reads `layer.vhd` of the upper
 * layer back into an OCI tar (upstream returns NotImplemented).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { invalidArgument } from '../../../services/errdefs.js';
import { MT } from '../../../services/compression/media-types.js';
import type { ContentStore, Descriptor } from '../../../services/content/store.js';
import { MOUNT_TYPE_LCOW_LAYER, isReadOnly, parentLayerPaths, type Mount } from '../../../services/mount.js';
import { LCOW_MAX_DISK_SIZE, tar2vhd } from '../../lcow/tar2vhd.js';
import { exportExt4Layer } from '../../lcow/ext4-export.js';
import { openLayerBlob } from '../blob.js';
import type { ApplyStreamOptions, CompareOptions, Differ } from '../types.js';
import { diffMediaType, writeDiff } from '../write-diff.js';

export const LAYER_VHD = 'layer.vhd';

export function lcowMountToLayer(mounts: Mount[]): { layer: string; parents: string[]; readOnly: boolean } {
  if (mounts.length !== 1) throw invalidArgument('number of mounts should always be 1 for Windows lcow-layers');
  const m = mounts[0]!;
  if (m.type !== MOUNT_TYPE_LCOW_LAYER) throw invalidArgument('mount layer type must be lcow-layer', { mountType: m.type });
  return { layer: m.source, parents: parentLayerPaths(m), readOnly: isReadOnly(m) };
}

export class LcowDiffer implements Differ {
  readonly name = 'lcow';

  constructor(private readonly store: ContentStore) {}

  async apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor> {
    lcowMountToLayer(mounts);
    return this.applyStream(await this.store.read(desc.digest), desc, mounts);
  }

  async applyStream(blob: Readable, desc: Descriptor, mounts: Mount[], opts: ApplyStreamOptions = {}): Promise<Descriptor> {
    const { layer } = lcowMountToLayer(mounts);
    const opened = openLayerBlob(blob, desc, opts);
    const out = join(layer, LAYER_VHD);
    try {
      const r = await tar2vhd(opened.tar, out, {
        convertWhiteouts: true,
        footer: true,
        maxDiskSize: LCOW_MAX_DISK_SIZE,
        tarDigest: () => opened.uncompressed.digest(), // already hashed while decompressing
      });
      opened.verify();
      return { mediaType: MT.ociLayer, digest: r.digest!, size: r.tarSize }; // set: tarDigest was given
    } catch (e) {
      await rm(out, { force: true });
      throw e;
    }
  }

  /**
   * `upper` is a committed layer's mount (a view of it mounts the layer directory itself, as
   * the lcow snapshotter does for committed views) and `lower` its parent's.
   */
  async compare(lower: Mount[], upper: Mount[], opts: CompareOptions = {}): Promise<Descriptor> {
    const up = lcowMountToLayer(upper);
    const low = lcowMountToLayer(lower);
    if (up.parents.length === 0) {
      // a base layer diffs against an empty (parentless, layer-less) view only
      if (low.parents.length !== 0 || existsSync(join(low.layer, LAYER_VHD))) {
        throw invalidArgument('lcowDiff cannot diff a layer with no parents against another layer');
      }
    } else {
      const lowerChain = [low.layer, ...low.parents];
      if (lowerChain.length !== up.parents.length || lowerChain.some((p, i) => p !== up.parents[i])) {
        throw invalidArgument('lcowDiff cannot diff a layer against a layer other than its own parent');
      }
    }
    diffMediaType(opts);
    return writeDiff(this.store, () => exportExt4Layer(join(up.layer, LAYER_VHD)), opts);
  }
}
