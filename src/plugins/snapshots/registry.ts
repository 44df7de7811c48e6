/**
 * The snapshotters winsnap provides, by name, each rooted at `<root>/snapshotters/<name>`
 * (decision recorded in docs/layout.md).
 */
import { join } from 'node:path';
import { invalidArgument } from '../../services/errdefs.js';
import type { Logger } from '../../services/log.js';
import type { Snapshotter } from '../../services/snapshots.js';
import { WindowsSnapshotter } from './windows/windows.js';
import { LcowSnapshotter } from './lcow/lcow.js';
import { CimfsSnapshotter } from './cimfs/cimfs.js';
import { BlockCimSnapshotter } from './blockcim/blockcim.js';
import type { WindowsLayerConfig } from '../windows/processing.js';

export const SNAPSHOTTER_NAMES = ['windows', 'cimfs', 'blockcim', 'lcow'] as const;
export type SnapshotterName = (typeof SNAPSHOTTER_NAMES)[number];

export function snapshotterRoot(root: string, name: string): string {
  return join(root, 'snapshotters', name);
}

export function isSnapshotterName(name: string): name is SnapshotterName {
  return (SNAPSHOTTER_NAMES as readonly string[]).includes(name);
}

export interface OpenSnapshotterOptions {
  logger?: Logger;
  windowsLayer?: WindowsLayerConfig;
}

export function openSnapshotter(name: string, root: string, opts: OpenSnapshotterOptions = {}): Snapshotter {
  switch (name) {
    case 'windows':
      return new WindowsSnapshotter(snapshotterRoot(root, name), { logger: opts.logger, layerConfig: opts.windowsLayer });
    case 'cimfs':
      return new CimfsSnapshotter(snapshotterRoot(root, name), { logger: opts.logger });
    case 'blockcim':
      return new BlockCimSnapshotter(snapshotterRoot(root, name), { logger: opts.logger });
    case 'lcow':
      return new LcowSnapshotter(snapshotterRoot(root, name), { logger: opts.logger });
    default:
      throw invalidArgument(`unknown snapshotter "${name}" (available: ${SNAPSHOTTER_NAMES.join(', ')})`, { snapshotter: name });
  }
}
