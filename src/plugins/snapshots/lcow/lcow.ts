/**
 * The `lcow` snapshotter (containerd snapshots/lcow/lcow.go; DESIGN.md mount table and
 * labels): each layer is a directory `<root>/snapshots/<id>` that the lcow differ fills with
 * `layer.vhd` (ext4 + VHD footer).
 *
 * - mounts: one `lcow-layer` mount; an active or parentless snapshot mounts its own
 *   directory with `parentLayerPaths` = all parents; a view with parents mounts its
 *   immediate parent's directory with the remaining parents (upstream's "committed view");
 *   `ro` for views, `rw` otherwise; no parents = JSON `null`, as upstream marshals it;
 * - active snapshots whose key is not an unpack key get `sandbox.vhdx`: a copy of the cached
 *   scratch `<root>/scratch.vhdx` (or `scratch_<N>.vhdx` for the size-gb label N, under the
 *   location label's directory when given), created on first use — a dynamic VHDX holding
 *   an empty ext4 filesystem (plugins/lcow/scratch.ts);
 * - with the reuse-scratch label `true` and an owner key, the snapshot shares the owner's
 *   scratch: `sandbox.vhdx` is a symlink to the `sandbox.vhdx` of the first snapshot whose
 *   name contains the owner key (upstream's rule);
 * - commit records usage measured from disk; there is no conversion.
 *
 * Deviation: upstream ignores a malformed size-gb label (and uses the default size); we
 * reject it with InvalidArgument, as the windows snapshotter does (docs/lcow.md).
 */
import { copyFile, mkdir, stat, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { failedPrecondition, invalidArgument, isWinsnapError, notFound } from '../../../services/errdefs.js';
import {
  LABEL_LCOW_OWNER_KEY,
  LABEL_LCOW_REUSE_SCRATCH,
  LABEL_LCOW_ROOTFS_LOCATION,
  LABEL_ROOTFS_SIZE_GB,
  parseUint,
  validateLabels,
} from '../../../services/labels.js';
import type { StoredSnapshot } from '../../../services/metastore/metastore.js';
import { MOUNT_TYPE_LCOW_LAYER, accessOption, parentLayerPathsOption, type Mount } from '../../../services/mount.js';
import { isUnpackKey, type Kind, type SnapshotOptions } from '../../../services/snapshots.js';
import { BaseSnapshotter, type BaseSnapshotterOptions } from '../base.js';
import { LCOW_DEFAULT_SCRATCH_GB, createLcowScratch } from '../../lcow/scratch.js';

const GiB = 1024 * 1024 * 1024;

export interface LcowSnapshotterOptions extends BaseSnapshotterOptions {
  /** size of `scratch.vhdx` when no size label is given (default 20 GiB) */
  defaultScratchBytes?: number;
}

export class LcowSnapshotter extends BaseSnapshotter {
  private readonly defaultScratchBytes: number;
  /** one creation of each cached scratch at a time (creation is atomic by rename) */
  private readonly scratchCreations = new Map<string, Promise<void>>();

  constructor(root: string, opts: LcowSnapshotterOptions = {}) {
    super(root, opts);
    this.defaultScratchBytes = opts.defaultScratchBytes ?? LCOW_DEFAULT_SCRATCH_GB * GiB;
  }

  protected async createSnapshot(kind: Kind, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    const sn = await this.createStaged(kind, key, parent, opts, () =>
      kind === 'active' && !isUnpackKey(key) ? (staging) => this.stageScratch(staging, key, opts.labels ?? {}) : undefined,
    );
    return this.mountsFor(sn);
  }

  /** sandbox.vhdx for an active snapshot: shared with its owner, or copied from the cached scratch. */
  private async stageScratch(staging: string, key: string, labels: Record<string, string>): Promise<void> {
    const ownerKey = labels[LABEL_LCOW_OWNER_KEY] ?? '';
    if (labels[LABEL_LCOW_REUSE_SCRATCH] === 'true' && ownerKey !== '') {
      await this.shareScratch(ownerKey, join(staging, 'sandbox.vhdx'));
      return;
    }
    const cached = await this.cachedScratch(labels);
    try {
      await copyFile(cached, join(staging, 'sandbox.vhdx'));
    } catch (e) {
      throw failedPrecondition(`failed to copy cached ${cached} to sandbox.vhdx in snapshot: ${(e as Error).message}`, { key });
    }
  }

  /** The cached scratch for the labels, created on first use. */
  private async cachedScratch(labels: Record<string, string>): Promise<string> {
    let sizeGb = 0;
    const raw = labels[LABEL_ROOTFS_SIZE_GB];
    if (raw !== undefined) {
      const v = parseUint(raw, 32);
      if (v === undefined || v > 0x7fffffffn) {
        throw invalidArgument(`failed to parse label "${LABEL_ROOTFS_SIZE_GB}"="${raw}"`, { label: LABEL_ROOTFS_SIZE_GB });
      }
      sizeGb = Number(v);
    }
    const name = sizeGb > 0 ? `scratch_${sizeGb}.vhdx` : 'scratch.vhdx';
    const location = labels[LABEL_LCOW_ROOTFS_LOCATION];
    if (location !== undefined && location !== '' && !isAbsolute(location)) {
      throw invalidArgument(`label "${LABEL_LCOW_ROOTFS_LOCATION}" must be an absolute directory, got "${location}"`, {
        label: LABEL_LCOW_ROOTFS_LOCATION,
      });
    }
    const dir = location ? location : this.root;
    const path = join(dir, name);
    if (existsSync(path)) return path;
    let pending = this.scratchCreations.get(path);
    if (!pending) {
      const size = sizeGb > 0 ? sizeGb * GiB : this.defaultScratchBytes;
      pending = (async () => {
        await mkdir(dir, { recursive: true });
        if (!existsSync(path)) {
          this.log.debug({ path, size }, 'creating cached LCOW scratch');
          await createLcowScratch(path, size);
        }
      })().finally(() => this.scratchCreations.delete(path));
      this.scratchCreations.set(path, pending);
    }
    try {
      await pending;
    } catch (e) {
      throw isWinsnapError(e) ? e.wrap(`failed to create ${name}`) : e;
    }
    return path;
  }

  /** Links `link` to the sandbox of the snapshot whose name contains the owner key. */
  private async shareScratch(ownerKey: string, link: string): Promise<void> {
    const owner = this.ms.read((tx) => {
      let name: string | undefined;
      for (const info of tx.list([])) if (info.name.includes(ownerKey)) name = info.name;
      return name === undefined ? undefined : tx.getSnapshot(name);
    });
    if (!owner) throw notFound(`failed to get mounts for owner snapshot: no snapshot matches owner key "${ownerKey}"`, { key: ownerKey });
    const source = this.mountsFor(owner)[0]!.source;
    const sandbox = join(source, 'sandbox.vhdx');
    try {
      await stat(sandbox);
    } catch {
      throw notFound(`failed to find sandbox.vhdx in snapshot directory ${source}`, { key: ownerKey });
    }
    await symlink(sandbox, link);
  }

  protected mountsFor(sn: StoredSnapshot): Mount[] {
    let source: string;
    let parents: string[];
    if (sn.parentIds.length === 0 || sn.kind === 'active') {
      source = this.getSnapshotDir(sn.id);
      parents = this.parentIdsToPaths(sn.parentIds);
    } else {
      source = this.getSnapshotDir(sn.parentIds[0]!);
      parents = this.parentIdsToPaths(sn.parentIds.slice(1));
    }
    return [
      {
        type: MOUNT_TYPE_LCOW_LAYER,
        source,
        options: [accessOption(sn.kind === 'view'), parentLayerPathsOption(parents.length > 0 ? parents : null)],
      },
    ];
  }

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    validateLabels(opts.labels);
    const id = this.ms.read((tx) => {
      try {
        return tx.getInfo(key).id;
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap(`failed to get storage info for ${key}`) : e;
      }
    });
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
