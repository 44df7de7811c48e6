/**
 * What the `cimfs` and `blockcim` snapshotters share (containerd
 * plugins/snapshots/windows/cimfs.go and block_cimfs.go):
 *
 * - read-only layers are written by the differ (unpack keys get an empty directory);
 * - every other snapshot is a container scratch and needs parents ("scratch snapshot
 *   without any parents isn't supported"): `sandbox.vhdx` is a copy of the snapshotter's
 *   own `blank.vhdx` (a differencing child of `blank-base.vhdx`, 10 GiB, 1 MiB blocks,
 *   NTFS when mkntfs is installed), grown to the size label; with the UVM label also
 *   `vm/sandbox.vhdx` from the base layer's `UtilityVM/SystemTemplate.vhdx`. Unlike
 *   `windows`, the template is one per snapshotter: a CIM scratch is an empty volume;
 * - commit of a non-unpack snapshot is NotImplemented, as upstream ("committing a scratch
 *   snapshot to read-only cim layer isn't supported yet").
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { invalidArgument, isWinsnapError, notImplemented } from '../../services/errdefs.js';
import { LABEL_UVM_SCRATCH, requestedScratchSize, validateLabels } from '../../services/labels.js';
import type { StoredSnapshot } from '../../services/metastore/metastore.js';
import type { Mount } from '../../services/mount.js';
import { isUnpackKey, type Kind, type SnapshotOptions } from '../../services/snapshots.js';
import { copyDisk, createDifferencing } from '../../formats/vhdx/index.js';
import { createUvmScratch, growTo, makeTemplate } from '../windows/processing.js';
import { BaseSnapshotter, type BaseSnapshotterOptions } from './base.js';

export const CIM_SCRATCH_BASE = 'blank-base.vhdx';
export const CIM_SCRATCH_TEMPLATE = 'blank.vhdx';
export const CIM_DEFAULT_SCRATCH_BYTES = 10 * 1024 * 1024 * 1024;
export const CIM_SCRATCH_BLOCK_SIZE = 1024 * 1024;

export interface CimScratchConfig {
  /** virtual size of blank-base.vhdx (upstream: 10 GB) */
  templateSize: number;
  /** 'auto': NTFS when mkntfs is installed; 'never': unformatted */
  formatNtfs: 'auto' | 'never';
}

export const DEFAULT_CIM_SCRATCH_CONFIG: CimScratchConfig = {
  templateSize: Number(process.env.WINSNAP_CIM_SCRATCH_TEMPLATE_SIZE ?? CIM_DEFAULT_SCRATCH_BYTES),
  formatNtfs: process.env.WINSNAP_FORMAT_NTFS === '0' ? 'never' : 'auto',
};

export interface CimBaseSnapshotterOptions extends BaseSnapshotterOptions {
  scratch?: CimScratchConfig;
}

export abstract class CimBaseSnapshotter extends BaseSnapshotter {
  protected readonly scratchConfig: CimScratchConfig;
  private templates: Promise<void> | undefined;

  protected constructor(root: string, opts: CimBaseSnapshotterOptions = {}) {
    super(root, opts);
    this.scratchConfig = opts.scratch ?? DEFAULT_CIM_SCRATCH_CONFIG;
  }

  /** blank-base.vhdx and blank.vhdx at the snapshotter root, made once (createDifferencingScratchVHDs). */
  protected ensureScratchTemplates(): Promise<void> {
    this.templates ??= (async () => {
      const base = join(this.root, CIM_SCRATCH_BASE);
      const diff = join(this.root, CIM_SCRATCH_TEMPLATE);
      const baseExists = existsSync(base);
      if (baseExists && existsSync(diff)) return;
      try {
        if (!baseExists) {
          await rm(diff, { force: true }); // must be re-made against the new base
          await makeTemplate(base, this.scratchConfig.templateSize, 'Sandbox', 'winsnap-cim-scratch', this.scratchConfig, CIM_SCRATCH_BLOCK_SIZE);
        }
        await createDifferencing(diff, base, { overwrite: true, idSeed: 'winsnap-cim-scratch:blank', blockSize: CIM_SCRATCH_BLOCK_SIZE });
      } catch (e) {
        await rm(base, { force: true });
        await rm(diff, { force: true });
        throw e;
      }
    })().catch((e: unknown) => {
      this.templates = undefined;
      throw isWinsnapError(e) ? e.wrap('failed to init base scratch VHD') : e;
    });
    return this.templates;
  }

  /** sandbox.vhdx (and vm/sandbox.vhdx) for a scratch snapshot, into `dir`. */
  private async makeScratch(dir: string, parentLayerPaths: string[], opts: SnapshotOptions): Promise<void> {
    const sizeBytes = requestedScratchSize(opts.labels);
    if (opts.labels && LABEL_UVM_SCRATCH in opts.labels) {
      try {
        await createUvmScratch({ dir, parentLayerPaths, sizeBytes });
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap("failed to make UVM's scratch layer") : e;
      }
    }
    try {
      await this.ensureScratchTemplates();
      const dest = join(dir, 'sandbox.vhdx');
      await copyDisk(join(this.root, CIM_SCRATCH_TEMPLATE), dest);
      await growTo(dest, sizeBytes);
    } catch (e) {
      throw isWinsnapError(e) ? e.wrap('failed to create scratch layer') : e;
    }
  }

  protected async createSnapshot(kind: Kind, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]> {
    const sn = await this.createStaged(kind, key, parent, opts, (parentIds) => {
      if (isUnpackKey(key)) return undefined;
      if (parentIds.length === 0) {
        throw invalidArgument(`failed to create snapshot ${key}: scratch snapshot without any parents isn't supported`, { key });
      }
      return (staging) => this.makeScratch(staging, this.parentIdsToPaths(parentIds), opts);
    });
    await this.afterCreate(sn, key, parent);
    return this.mountsFor(sn, key);
  }

  /** Work after the snapshot exists (block CIM merges); a failure removes the snapshot again. */
  protected async afterCreate(_sn: StoredSnapshot, _key: string, _parent: string): Promise<void> {}

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    validateLabels(opts.labels);
    if (!isUnpackKey(key)) {
      throw notImplemented(`failed to commit ${key}: committing a scratch snapshot to read-only cim layer isn't supported yet`, { key });
    }
    const id = this.ms.read((tx) => {
      try {
        return tx.getInfo(key).id;
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to get usage during commit') : e;
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
