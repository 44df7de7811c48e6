/**
 * The `cimfs` differ (containerd plugins/diff/windows/cimfs.go, seed 003): Apply writes the
 * layer straight through the CIM layer writer — not through the generic archive apply — into
 * the image named by the mount's `cimpath=`, forked from the first of `parentCimPaths`, with
 * std files and hives in the snapshot directory; returns the uncompressed digest and size.
 * Only `CimFS` mounts are handled: any other type is NotImplemented, so a differ chain falls
 * through. Compare exports the upper CIM layer back to an OCI Windows layer tar (upstream
 * cannot) and writes it to the content store like every differ.
 */
import type { Readable } from 'node:stream';
import { invalidArgument, notImplemented } from '../../../services/errdefs.js';
import type { ContentStore, Descriptor } from '../../../services/content/store.js';
import { MT } from '../../../services/compression/media-types.js';
import { LAYER_CIM_PATH_FLAG, MOUNT_TYPE_CIMFS, isReadOnly, optionValue, parentCimPaths, parentLayerPaths, type Mount } from '../../../services/mount.js';
import { TarReader } from '../../../formats/tar/reader.js';
import { writeCimLayer } from '../../cim/layer-writer.js';
import { exportCimLayer } from '../../cim/layer-export.js';
import { openLayerBlob } from '../blob.js';
import type { ApplyStreamOptions, CompareOptions, Differ } from '../types.js';
import { diffMediaType, writeDiff } from '../write-diff.js';
import { clampHeaderTimes } from '../windows/windows.js';
import { TarWriter } from '../../../formats/tar/writer.js';
import { cimLayerEntries } from '../../cim/layer-export.js';

export interface CimMount {
  layerPath: string;
  cimPath: string;
  parentLayerPaths: string[];
  parentCimPaths: string[];
  readOnly: boolean;
}

/** The CIM layer a mount stands for; NotImplemented for mounts that are not CimFS. */
export function cimMountToLayer(mounts: Mount[]): CimMount {
  if (mounts.length !== 1) throw invalidArgument('number of mounts should always be 1 for CimFS layers');
  const m = mounts[0]!;
  if (m.type !== MOUNT_TYPE_CIMFS) throw notImplemented(`cimfsDiff does not support layer type ${m.type}`, { mountType: m.type });
  const cimPath = optionValue(m, LAYER_CIM_PATH_FLAG);
  if (!cimPath) throw invalidArgument(`CimFS mount of ${m.source} has no ${LAYER_CIM_PATH_FLAG} option`, { path: m.source });
  const layers = parentLayerPaths(m);
  const cims = parentCimPaths(m);
  if (layers.length !== cims.length) {
    throw invalidArgument(`CimFS mount of ${m.source}: ${layers.length} parent layers but ${cims.length} parent CIMs`, { path: m.source });
  }
  return { layerPath: m.source, cimPath, parentLayerPaths: layers, parentCimPaths: cims, readOnly: isReadOnly(m) };
}

export class CimfsDiffer implements Differ {
  readonly name = 'cimfs';

  constructor(private readonly store: ContentStore) {}

  async apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor> {
    cimMountToLayer(mounts);
    return this.applyStream(await this.store.read(desc.digest), desc, mounts);
  }

  async applyStream(blob: Readable, desc: Descriptor, mounts: Mount[], opts: ApplyStreamOptions = {}): Promise<Descriptor> {
    const m = cimMountToLayer(mounts);
    if (m.readOnly) {
      blob.destroy();
      throw invalidArgument('cannot apply a layer to a read-only CimFS view');
    }
    const opened = openLayerBlob(blob, desc, opts);
    const reader = new TarReader(opened.tar);
    try {
      await writeCimLayer(reader, m);
      await reader.drain();
      opened.verify();
      return { mediaType: MT.ociLayer, digest: opened.uncompressed.digest(), size: opened.uncompressed.bytes };
    } catch (e) {
      await reader.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Compare: `upper` must be a committed CIM layer (a view of it, or its unpack mount) and
   * `lower` its parent chain (or an empty view for a base layer). The diff is the layer as it
   * was applied.
   */
  async compare(lower: Mount[], upper: Mount[], opts: CompareOptions = {}): Promise<Descriptor> {
    const up = cimMountToLayer(upper);
    let low: CimMount;
    try {
      low = cimMountToLayer(lower);
    } catch (e) {
      throw invalidArgument(`cimfsDiff cannot diff a CimFS layer against this lower mount: ${(e as Error).message}`);
    }
    // a view mounts a scratch: the layer is its immediate parent
    const layer = up.readOnly && up.parentLayerPaths.length > 0 ? { layerPath: up.parentLayerPaths[0]!, cimPath: up.parentCimPaths[0]!, parents: up.parentCimPaths.slice(1) } : { layerPath: up.layerPath, cimPath: up.cimPath, parents: up.parentCimPaths };
    const lowerCims = low.readOnly && low.parentCimPaths.length > 0 ? low.parentCimPaths : low.readOnly ? [] : [low.cimPath, ...low.parentCimPaths];
    if (lowerCims.length !== layer.parents.length || lowerCims.some((c, i) => c !== layer.parents[i])) {
      throw invalidArgument('cimfsDiff cannot diff a layer against a layer other than its own parent chain');
    }
    diffMediaType(opts);
    const epoch = opts.sourceDateEpoch;
    return writeDiff(
      this.store,
      () => {
        if (!epoch) return exportCimLayer(layer.layerPath, layer.cimPath);
        const w = new TarWriter();
        (async () => {
          for await (const e of cimLayerEntries(layer.layerPath, layer.cimPath)) await w.writeEntry(clampHeaderTimes(e.header, epoch), e.body);
          await w.finish();
        })().catch((err: Error) => w.destroy(err));
        return w.stream;
      },
      opts,
    );
  }
}
