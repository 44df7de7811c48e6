/**
 * The `windows` (WCOW) snapshotter, with containerd's behaviour
 * (plugins/snapshots/windows/windows.go + common.go; DESIGN.md mount table and labels):
 *
 * - every snapshot is a directory `<root>/snapshots/<id>`;
 * - parentless snapshots hold `Files/` and mount as `bind` of `Files/` (an unpack key mounts
 *   the snapshot directory itself, which the differ fills with a whole layer);
 * - snapshots with parents mount as `windows-layer` with `parentLayerPaths=<JSON>`, immediate
 *   parent first, base last; views are `ro`, everything else `rw`;
 * - unpack keys (containing `extract`) get no scratch disk;
 * - other snapshots with parents get a scratch disk `sandbox.vhdx` copied from the base
 *   layer's `blank.vhdx` and grown to the size label (views: 1 GiB), plus `vm/sandbox.vhdx`
 *   from `UtilityVM/SystemTemplate.vhdx` when the UVM-scratch label is present;
 * - commit of a non-unpack snapshot converts it to a read-only layer first
 *   (ConvertToBaseLayer without parents, the scratch re-import with parents).
 *
 * Scratch disks and commit-time conversion come from plugins/windows/processing.ts (VHDX
 * and layer-directory modules).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { alreadyExists, isWinsnapError, notImplemented } from '../../../services/errdefs.js';
import { LABEL_UVM_SCRATCH, requestedScratchSize, validateLabels } from '../../../services/labels.js';
import type { StoredSnapshot } from '../../../services/metastore/metastore.js';
import {
  MOUNT_TYPE_BIND,
  MOUNT_TYPE_WINDOWS_LAYER,
  accessOption,
  parentLayerPathsOption,
  type Mount,
} from '../../../services/mount.js';
import { isUnpackKey, type Kind, type SnapshotOptions } from '../../../services/snapshots.js';
import { BaseSnapshotter, type BaseSnapshotterOptions } from '../base.js';
import { DEFAULT_WINDOWS_LAYER_CONFIG, windowsLayerHooks, type WindowsLayerConfig } from '../../windows/processing.js';

/** Size of the scratch a view gets: a view is a sandbox too small to write much into. */
export const VIEW_SCRATCH_SIZE = 1024n * 1024n * 1024n;

export interface ScratchRequest {
  /** the directory the scratch files go to (moved into the snapshot directory after) */
  dir: string;
  /** parent layer directories, immediate parent first, base last */
  parentLayerPaths: string[];
  /** requested virtual size in bytes, 0 = template size */
  sizeBytes: bigint;
}

/** The parts of the snapshotter that need the VHDX and layer-store modules. */
export interface WindowsLayerHooks {
  /** copy `<base>/blank.vhdx` to `<dir>/sandbox.vhdx`, grown to sizeBytes when non-zero */
  createScratch?(req: ScratchRequest): Promise<void>;
  /** copy `<base>/UtilityVM/SystemTemplate.vhdx` to `<dir>/vm/sandbox.vhdx` */
  createUvmScratch?(req: ScratchRequest): Promise<void>;
  /** ConvertToBaseLayer: turn `<dir>/Files` into a base layer */
  convertToBaseLayer?(dir: string): Promise<void>;
  /** re-import the writable snapshot as a read-only layer over its parents */
  convertScratchToReadOnlyLayer?(dir: string, parentLayerPaths: string[]): Promise<void>;
}

export interface WindowsSnapshotterOptions extends BaseSnapshotterOptions {
  /** scratch template sizes and NTFS formatting */
  layerConfig?: WindowsLayerConfig;
  /** replaces the VHDX/layer-store operations (tests of failure paths) */
  hooks?: WindowsLayerHooks;
}

export class WindowsSnapshotter extends BaseSnapshotter {
  private readonly hooks: WindowsLayerHooks;

  constructor(root: string, opts: WindowsSnapshotterOptions = {}) {
    super(root, opts);
    this.hooks = opts.hooks ?? windowsLayerHooks(opts.layerConfig ?? DEFAULT_WINDOWS_LAYER_CONFIG);
  }

  protected async createSnapshot(kind: Kind, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    const sn = await this.createStaged(
      kind,
      key,
      parent,
      opts,
      (parentIds) => (!isUnpackKey(key) && parentIds.length > 0 ? (staging) => this.stageScratch(staging, kind, key, parentIds, opts) : undefined),
      (sn, dir) => {
        // a parentless snapshot's writable area; unpack keys get a whole layer from the differ
        if (!isUnpackKey(key) && sn.parentIds.length === 0) mkdirSync(join(dir, 'Files'), { mode: 0o700 });
      },
    );
    return this.mountsFor(sn, key);
  }

  /** sandbox.vhdx (and vm/sandbox.vhdx with the UVM-scratch label) for a snapshot with parents. */
  private async stageScratch(staging: string, kind: Kind, key: string, parentIds: readonly string[], opts: SnapshotOptions): Promise<void> {
    const sizeBytes = kind === 'active' ? requestedScratchSize(opts.labels) : VIEW_SCRATCH_SIZE;
    const req: ScratchRequest = { dir: staging, parentLayerPaths: this.parentIdsToPaths(parentIds), sizeBytes };
    if (opts.labels && LABEL_UVM_SCRATCH in opts.labels) {
      if (!this.hooks.createUvmScratch) {
        throw notImplemented(`failed to make UVM's scratch layer for ${key}: UtilityVM scratch disks need the VHDX module`, { key });
      }
      try {
        await this.hooks.createUvmScratch(req);
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap("failed to make UVM's scratch layer") : e;
      }
    }
    if (!this.hooks.createScratch) {
      throw notImplemented(`failed to create scratch layer for ${key}: sandbox.vhdx creation needs the VHDX module`, { key });
    }
    try {
      await this.hooks.createScratch(req);
    } catch (e) {
      throw isWinsnapError(e) ? e.wrap('failed to create scratch layer') : e;
    }
  }

  protected mountsFor(sn: StoredSnapshot, key: string): Mount[] {
    let source = this.getSnapshotDir(sn.id);
    const parents = sn.parentIds.length > 0 ? this.parentIdsToPaths(sn.parentIds) : null;
    let type = MOUNT_TYPE_WINDOWS_LAYER;
    if (sn.parentIds.length === 0) {
      type = MOUNT_TYPE_BIND;
      if (!isUnpackKey(key)) source = join(source, 'Files');
    }
    return [{ type, source, options: [accessOption(sn.kind === 'view'), parentLayerPathsOption(parents)] }];
  }

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    validateLabels(opts.labels);
    const { id, sn } = this.ms.read((tx) => {
      let id: string;
      try {
        id = tx.getInfo(key).id;
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap(`failed to get storage info for ${key}`) : e;
      }
      const sn = tx.getSnapshot(key);
      // fail before converting anything when the name is taken (CommitActive would anyway)
      if (tx.exists(name)) throw alreadyExists(`failed to commit snapshot: committed snapshot ${name}`, { key, name });
      return { id, sn };
    });
    const dir = this.getSnapshotDir(id);
    if (!isUnpackKey(key) && sn.kind === 'active') {
      if (sn.parentIds.length === 0) {
        if (!this.hooks.convertToBaseLayer) {
          throw notImplemented(`cannot commit ${key}: converting Files/ to a base layer needs the Windows layer store`, { key });
        }
        await this.hooks.convertToBaseLayer(dir);
      } else {
        if (!this.hooks.convertScratchToReadOnlyLayer) {
          throw notImplemented(`cannot commit ${key}: converting a scratch to a read-only layer needs the Windows layer store`, {
            key,
          });
        }
        await this.hooks.convertScratchToReadOnlyLayer(dir, this.parentIdsToPaths(sn.parentIds));
      }
    }
    const usage = await this.measureUsage(id);
    this.ms.write((tx) => {
      try {
        tx.commitActive(key, name, usage, opts.labels);
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to commit snapshot') : e;
      }
    });
  }
}
