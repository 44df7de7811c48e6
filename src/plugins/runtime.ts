/**
 * Everything winsnap serves from one root: the snapshotters (`<root>/snapshotters/<name>`),
 * the content store (`<root>/content`) and the diff chain (windows first; a differ that
 * cannot handle the mounts passes them on).
 */
import { join } from 'node:path';
import { ContentStore } from '../services/content/store.js';
import type { Logger } from '../services/log.js';
import type { Snapshotter } from '../services/snapshots.js';
import { DiffChain } from './diff/chain.js';
import { WindowsDiffer } from './diff/windows/windows.js';
import { CimfsDiffer } from './diff/cimfs/cimfs.js';
import { LcowDiffer } from './diff/lcow/lcow.js';
import type { Differ } from './diff/types.js';
import { openSnapshotter, SNAPSHOTTER_NAMES } from './snapshots/registry.js';
import { DEFAULT_WINDOWS_LAYER_CONFIG, type WindowsLayerConfig } from './windows/processing.js';

export interface RuntimeOptions {
  logger?: Logger;
  windowsLayer?: WindowsLayerConfig;
}

/** Windows layer settings from the environment (for operators and tests). */
export function windowsLayerConfigFromEnv(env = process.env): WindowsLayerConfig {
  const num = (v: string | undefined, d: number) => (v && /^\d+$/.test(v) ? Number(v) : d);
  return {
    sandboxTemplateSize: num(env.WINSNAP_SCRATCH_TEMPLATE_SIZE, DEFAULT_WINDOWS_LAYER_CONFIG.sandboxTemplateSize),
    uvmTemplateSize: num(env.WINSNAP_UVM_TEMPLATE_SIZE, DEFAULT_WINDOWS_LAYER_CONFIG.uvmTemplateSize),
    formatNtfs: env.WINSNAP_FORMAT_NTFS === 'never' ? 'never' : 'auto',
  };
}

export class Runtime {
  private readonly snapshotters = new Map<string, Snapshotter>();
  private contentStore: ContentStore | undefined;
  private differChain: DiffChain | undefined;
  readonly windowsLayer: WindowsLayerConfig;

  constructor(
    readonly root: string,
    private readonly opts: RuntimeOptions = {},
  ) {
    this.windowsLayer = opts.windowsLayer ?? windowsLayerConfigFromEnv();
  }

  snapshotter(name: string): Snapshotter {
    let sn = this.snapshotters.get(name);
    if (!sn) {
      sn = openSnapshotter(name, this.root, { logger: this.opts.logger, windowsLayer: this.windowsLayer });
      this.snapshotters.set(name, sn);
    }
    return sn;
  }

  /** Every snapshotter, opened. */
  allSnapshotters(): Map<string, Snapshotter> {
    for (const n of SNAPSHOTTER_NAMES) this.snapshotter(n);
    return this.snapshotters;
  }

  get content(): ContentStore {
    if (!this.contentStore) this.contentStore = new ContentStore(join(this.root, 'content'));
    return this.contentStore;
  }

  get differ(): Differ {
    if (!this.differChain) this.differChain = new DiffChain([new WindowsDiffer(this.content, this.windowsLayer), new CimfsDiffer(this.content), new LcowDiffer(this.content)]);
    return this.differChain;
  }

  async close(): Promise<void> {
    for (const sn of this.snapshotters.values()) await sn.close();
    this.snapshotters.clear();
    this.contentStore?.close();
  }
}
