/**
 * The `cimfs` snapshotter (containerd plugins/snapshots/windows/cimfs.go; DESIGN.md mount
 * table): read-only layers are CIM images kept together in `<root>/snapshots/cim-layers`
 * (`<id>.cim` + region and object-ID files, each forked from its parent's image), written
 * by the cimfs differ; the snapshot directory holds what the CIM layer writer keeps outside
 * the CIM (hives, BCD, the scratch templates of base layers).
 *
 * Mounts: one `CimFS` mount of the snapshot directory with `rw`/`ro`, `cimpath=<cim-layers>/<id>.cim`
 * (where an unpack writes its CIM; ignored for scratches), and with parents
 * `parentLayerPaths=<JSON>` and `parentCimPaths=<JSON>` (immediate parent first).
 * Usage of a committed snapshot adds its CIM files; removal destroys them.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isWinsnapError } from '../../../services/errdefs.js';
import type { StoredSnapshot } from '../../../services/metastore/metastore.js';
import {
  LAYER_CIM_PATH_FLAG,
  MOUNT_TYPE_CIMFS,
  accessOption,
  parentCimPathsOption,
  parentLayerPathsOption,
  type Mount,
} from '../../../services/mount.js';
import type { Usage } from '../../../services/snapshots.js';
import { SNAPSHOTS_DIR } from '../base.js';
import { CimBaseSnapshotter, type CimBaseSnapshotterOptions } from '../cim-base.js';
import { cimImageFiles, cimUsage, destroyCim } from '../../cim/image-files.js';

export const CIM_LAYERS_DIR = 'cim-layers';
const ORPHAN_GRACE_MS = 60 * 60 * 1000;

export class CimfsSnapshotter extends CimBaseSnapshotter {
  readonly cimDir: string;

  constructor(root: string, opts: CimBaseSnapshotterOptions = {}) {
    super(root, opts);
    this.cimDir = join(root, SNAPSHOTS_DIR, CIM_LAYERS_DIR);
    mkdirSync(this.cimDir, { recursive: true, mode: 0o755 });
  }

  protected override reservedNames(): ReadonlySet<string> {
    return new Set([CIM_LAYERS_DIR]);
  }

  layerCimPath(id: string): string {
    return join(this.cimDir, `${id}.cim`);
  }

  protected mountsFor(sn: StoredSnapshot): Mount[] {
    const options = [accessOption(sn.kind === 'view'), LAYER_CIM_PATH_FLAG + this.layerCimPath(sn.id)];
    if (sn.parentIds.length > 0) {
      options.push(parentLayerPathsOption(this.parentIdsToPaths(sn.parentIds)));
      options.push(parentCimPathsOption(sn.parentIds.map((id) => this.layerCimPath(id))));
    }
    return [{ type: MOUNT_TYPE_CIMFS, source: this.getSnapshotDir(sn.id), options }];
  }

  override async usage(key: string): Promise<Usage> {
    const base = await super.usage(key);
    const { id, info } = this.ms.read((tx) => tx.getInfo(key));
    if (info.kind !== 'committed') return base;
    const cim = await cimUsage(this.layerCimPath(id));
    return { size: base.size + cim.size, inodes: base.inodes };
  }

  override async remove(key: string): Promise<void> {
    const id = this.ms.read((tx) => {
      try {
        return tx.getInfo(key).id;
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to get snapshot info') : e;
      }
    });
    await super.remove(key);
    try {
      await destroyCim(this.layerCimPath(id));
    } catch (e) {
      this.log.warn({ err: e, id }, 'failed to clean up cim files; cleanup will retry');
    }
  }

  /**
   * Also destroys CIM images whose snapshot no longer exists, and region/object-ID files no
   * image owns once they are older than an hour (younger ones may belong to an image the
   * differ is still writing).
   */
  override async cleanup(): Promise<void> {
    await super.cleanup();
    const ids = this.ms.read((tx) => tx.idMap());
    const owned = new Set<string>();
    for (const name of readdirSync(this.cimDir)) {
      if (!name.endsWith('.cim')) continue;
      const path = join(this.cimDir, name);
      if (!ids.has(name.slice(0, -4))) {
        await destroyCim(path);
        continue;
      }
      try {
        for (const f of await cimImageFiles(path)) owned.add(f);
      } catch (e) {
        this.log.warn({ err: e, path }, 'unreadable CIM image kept by cleanup');
        return; // cannot tell which region files it owns: delete none
      }
    }
    for (const name of readdirSync(this.cimDir)) {
      const path = join(this.cimDir, name);
      if (name.endsWith('.cim') || owned.has(path)) continue;
      if (Date.now() - statSync(path).mtimeMs > ORPHAN_GRACE_MS) await rm(path, { force: true });
    }
  }
}
