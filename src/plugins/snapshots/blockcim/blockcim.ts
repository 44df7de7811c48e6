/**
 * The `blockcim` snapshotter (containerd plugins/snapshots/windows/block_cimfs.go; DESIGN.md
 * mount table). Each read-only layer is a single-file block CIM `<snapshot dir>/layer.vhd`
 * holding `layer.cim`; a container scratch on more than one layer mounts a merged block CIM
 * `<parent[0] dir>/merged.vhd` (`merged.cim`), made once per immediate parent under a
 * per-parent lock. The block-CIM container and its merge format are not published, so
 * writing or merging one goes through `BlockCimBackend`, whose only implementation fails
 * with NotImplemented naming what is missing. Everything around it is real.
 *
 * Mounts (no `rw`/`ro` option, as upstream): `BlockCIM`, `parentCimPaths=<JSON>` (an empty
 * list is `[]`), `blockCIMType=file`, then `enable_layer_integrity` / `append_vhd_footer`
 * when configured, and for a scratch on >1 layers `mergedCIMPath=…/merged.vhd/merged.cim`.
 * Source: the snapshot directory for a scratch (it has `sandbox.vhdx`), else the layer's
 * `layer.vhd/layer.cim`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument, isWinsnapError, notImplemented } from '../../../services/errdefs.js';
import type { StoredSnapshot } from '../../../services/metastore/metastore.js';
import {
  APPEND_VHD_FOOTER_FLAG,
  BLOCK_CIM_TYPE_FILE,
  BLOCK_CIM_TYPE_FLAG,
  ENABLE_LAYER_INTEGRITY_FLAG,
  MERGED_CIM_PATH_FLAG,
  MOUNT_TYPE_BLOCKCIM,
  goJsonStrings,
  PARENT_LAYER_CIM_PATHS_FLAG,
  type Mount,
} from '../../../services/mount.js';
import { isUnpackKey } from '../../../services/snapshots.js';
import { CimBaseSnapshotter, type CimBaseSnapshotterOptions } from '../cim-base.js';
import { KeyedMutex } from '../../../services/keyed-mutex.js';

export const LAYER_BLOCK_NAME = 'layer.vhd';
export const LAYER_CIM_NAME = 'layer.cim';
export const MERGED_BLOCK_NAME = 'merged.vhd';
export const MERGED_CIM_NAME = 'merged.cim';

/** A block CIM: the block file and the image name inside it. */
export interface BlockCimRef {
  blockPath: string;
  cimName: string;
}

export interface BlockCimOptions {
  integrity: boolean;
  vhdFooter: boolean;
}

/** Writing and merging single-file block CIMs. */
export interface BlockCimBackend {
  /** Merges layer CIMs (immediate parent first, base last) into `target`. */
  merge(sources: BlockCimRef[], target: BlockCimRef, opts: BlockCimOptions): Promise<void>;
}

export const MISSING_BLOCK_CIM_SPEC =
  'the single-file block CIM container format and the merged-CIM format are not publicly specified ' +
  '(hcsshim creates them only through cimfs.dll on Windows); winsnap does not invent a format';

/** The only backend there can be until the format is published. */
export const unpublishedBlockCimBackend: BlockCimBackend = {
  async merge(_sources, target) {
    throw notImplemented(`cannot create merged block CIM ${join(target.blockPath, target.cimName)}: ${MISSING_BLOCK_CIM_SPEC}`, {
      path: target.blockPath,
    });
  },
};

export interface BlockCimSnapshotterOptions extends CimBaseSnapshotterOptions {
  enableLayerIntegrity?: boolean;
  appendVhdFooter?: boolean;
  backend?: BlockCimBackend;
}

export class BlockCimSnapshotter extends CimBaseSnapshotter {
  private readonly integrity: boolean;
  private readonly vhdFooter: boolean;
  private readonly backend: BlockCimBackend;
  private readonly mergeLock = new KeyedMutex();

  constructor(root: string, opts: BlockCimSnapshotterOptions = {}) {
    super(root, opts);
    this.integrity = opts.enableLayerIntegrity ?? false;
    this.vhdFooter = opts.appendVhdFooter ?? false;
    this.backend = opts.backend ?? unpublishedBlockCimBackend;
  }

  layerBlockCim(id: string): BlockCimRef {
    return { blockPath: join(this.getSnapshotDir(id), LAYER_BLOCK_NAME), cimName: LAYER_CIM_NAME };
  }

  mergedBlockCim(parentId: string): BlockCimRef {
    return { blockPath: join(this.getSnapshotDir(parentId), MERGED_BLOCK_NAME), cimName: MERGED_CIM_NAME };
  }

  private isScratch(id: string): boolean {
    return existsSync(join(this.getSnapshotDir(id), 'sandbox.vhdx'));
  }

  protected mountsFor(sn: StoredSnapshot): Mount[] {
    const cimPath = (r: BlockCimRef) => join(r.blockPath, r.cimName);
    const options = [
      PARENT_LAYER_CIM_PATHS_FLAG + goJsonStrings(sn.parentIds.map((id) => cimPath(this.layerBlockCim(id)))),
      BLOCK_CIM_TYPE_FLAG + BLOCK_CIM_TYPE_FILE,
    ];
    if (this.integrity) options.push(ENABLE_LAYER_INTEGRITY_FLAG);
    if (this.vhdFooter) options.push(APPEND_VHD_FOOTER_FLAG);
    let source: string;
    if (this.isScratch(sn.id)) {
      if (sn.parentIds.length > 1) options.push(MERGED_CIM_PATH_FLAG + cimPath(this.mergedBlockCim(sn.parentIds[0]!)));
      source = this.getSnapshotDir(sn.id);
    } else {
      source = cimPath(this.layerBlockCim(sn.id));
    }
    return [{ type: MOUNT_TYPE_BLOCKCIM, source, options }];
  }

  /** A scratch on more than one layer needs the merged CIM of its parents (prepareMergedCIM). */
  protected override async afterCreate(sn: StoredSnapshot, key: string, parent: string): Promise<void> {
    if (isUnpackKey(key) || sn.parentIds.length < 2) return;
    try {
      await this.mergeLock.run(parent, () => this.prepareMergedCim(sn.parentIds));
    } catch (e) {
      // upstream leaves the snapshot behind; we remove it so a failed prepare leaves nothing
      await this.remove(key).catch((e2: unknown) => this.log.warn({ err: e2, key }, 'failed to remove snapshot after a failed merge'));
      throw isWinsnapError(e) ? e.wrap('failed to prepare merged CIM') : e;
    }
  }

  private async prepareMergedCim(parentIds: string[]): Promise<void> {
    if (parentIds.length < 2) throw invalidArgument('merging CIM requires at least 2 snapshots');
    const target = this.mergedBlockCim(parentIds[0]!);
    if (existsSync(target.blockPath)) return;
    await this.backend.merge(
      parentIds.map((id) => this.layerBlockCim(id)),
      target,
      { integrity: this.integrity, vhdFooter: this.vhdFooter },
    );
  }
}
