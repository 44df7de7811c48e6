/**
 * `winsnap layer ls|cat|stat KEY PATH`: look inside the union of a snapshot's layer chain
 * (the snapshot itself when it is a complete layer, then its parents), read-only, with
 * Windows name semantics.
 */
import { Command, Option } from 'commander';
import { pipeline } from 'node:stream/promises';
import { LayerIndex } from '../../formats/layerdir/index-db.js';
import { UnionView, type UnionEntry } from '../../formats/layerdir/union.js';
import { parentLayerPaths } from '../../services/mount.js';
import { invalidArgument } from '../../services/errdefs.js';
import { Runtime } from '../../plugins/runtime.js';
import type { Snapshotter } from '../../services/snapshots.js';
import { defaultRoot } from '../defaults.js';
import { printJson, tabwrite } from '../format.js';

interface Opts {
  root: string;
  snapshotter: string;
  json?: boolean;
}

/** The layer directories a snapshot stands for, topmost first. */
async function chainOf(sn: Snapshotter, key: string): Promise<{ layers: string[]; cleanup: () => Promise<void> }> {
  const info = await sn.stat(key);
  let viewKey: string | undefined;
  let mounts;
  if (info.kind === 'committed') {
    viewKey = `extract-winsnap-layer-view-${process.pid}-${Date.now()}`;
    mounts = await sn.view(viewKey, key);
  } else mounts = await sn.mounts(key);
  const m = mounts[0];
  if (!m) throw invalidArgument(`snapshot ${key} has no mounts`);
  const parents = parentLayerPaths(m);
  const own = viewKey ? [] : [m.source.replace(/\/Files$/, '')].filter((d) => LayerIndex.exists(d));
  return {
    layers: [...own, ...parents],
    cleanup: async () => {
      if (viewKey) await sn.remove(viewKey);
    },
  };
}

function row(e: UnionEntry): string[] {
  const attrs = `0x${e.windows.attributes.toString(16).padStart(8, '0')}`;
  return [e.kind, attrs, String(e.size), e.name + (e.windows.linkTarget && e.kind !== 'hardlink' ? ` -> ${e.windows.linkTarget}` : '')];
}

function jsonEntry(e: UnionEntry): Record<string, unknown> {
  return {
    name: e.name,
    kind: e.kind,
    size: e.size,
    layer: e.layer,
    attributes: e.windows.attributes,
    creationTime: e.windows.creationTime.toString(),
    lastWriteTime: e.windows.lastWriteTime.toString(),
    securityDescriptor: e.windows.securityDescriptor?.toString('base64'),
    eas: e.windows.eas.map((x) => ({ name: x.name, value: x.value.toString('base64') })),
    linkTarget: e.windows.linkTarget,
  };
}

export function register(program: Command): void {
  const layer = program
    .command('layer')
    .description("look inside a snapshot's Windows layer chain (read-only)")
    .addOption(new Option('--root <dir>', 'winsnap data root').default(defaultRoot()))
    .option('--snapshotter <name>', 'snapshotter', 'windows')
    .option('--json', 'print JSON');

  const withView = async (cmd: Command, key: string, fn: (u: UnionView, o: Opts) => Promise<void>) => {
    const o = cmd.optsWithGlobals() as Opts;
    const rt = new Runtime(o.root);
    try {
      const { layers, cleanup } = await chainOf(rt.snapshotter(o.snapshotter), key);
      const u = new UnionView(layers);
      try {
        await fn(u, o);
      } finally {
        u.close();
        await cleanup();
      }
    } finally {
      await rt.close();
    }
  };

  layer
    .command('ls')
    .description('list a directory')
    .argument('<key>')
    .argument('[path]', 'directory (Files/…, Hives/…, UtilityVM/…)', '')
    .action(async (key: string, path: string, _o: unknown, cmd: Command) => {
      await withView(cmd, key, async (u, o) => {
        const entries = u.list(path);
        if (o.json) printJson(entries.map(jsonEntry));
        else process.stdout.write(tabwrite(entries.map(row)));
      });
    });

  layer
    .command('stat')
    .description('show one entry with its Windows metadata')
    .argument('<key>')
    .argument('<path>')
    .action(async (key: string, path: string, _o: unknown, cmd: Command) => {
      await withView(cmd, key, async (u) => printJson(jsonEntry(u.stat(path))));
    });

  layer
    .command('cat')
    .description('write a file (or file:stream) to stdout')
    .argument('<key>')
    .argument('<path>')
    .action(async (key: string, path: string, _o: unknown, cmd: Command) => {
      await withView(cmd, key, async (u) => pipeline(u.read(path), process.stdout, { end: false }));
    });
}
