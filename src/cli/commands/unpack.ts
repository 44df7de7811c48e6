/**
 * `winsnap unpack SOURCE[:REF] --snapshotter S --platform P`: every layer of an image from an
 * OCI image layout directory or a `docker save` archive applied and committed under its
 * chain ID, as containerd's unpacker does; present layers are skipped.
 */
import { Command, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { DockerArchive } from '../../services/images/docker-archive.js';
import { OciLayout } from '../../services/images/oci-layout.js';
import type { BlobSource } from '../../services/images/resolve.js';
import type { OciDescriptor } from '../../services/images/types.js';
import { defaultWindowsMatcher, only, parse, type MatchComparer } from '../../services/platforms/index.js';
import { Runtime } from '../../plugins/runtime.js';
import { unpackImage, type LayerProgress } from '../../plugins/unpack.js';
import { defaultRoot } from '../defaults.js';
import { printJson } from '../format.js';
import { Progress, type Bar } from '../progress.js';
import { invalidArgument } from '../../services/errdefs.js';

/** `path` or `path:ref` (the path itself may contain ':' only if it exists as given). */
export function splitSourceRef(arg: string): { path: string; ref?: string } {
  if (existsSync(arg)) return { path: arg };
  // the reference may itself contain ':' (name:tag): the first prefix that exists is the path
  for (let i = arg.indexOf(':'); i > 0; i = arg.indexOf(':', i + 1)) {
    if (existsSync(arg.slice(0, i))) return { path: arg.slice(0, i), ref: arg.slice(i + 1) };
  }
  throw invalidArgument(`${arg}: no such OCI layout directory or docker save archive`, { path: arg });
}

export async function openImageSource(arg: string): Promise<{ source: BlobSource; root: OciDescriptor }> {
  const { path, ref } = splitSourceRef(arg);
  if (statSync(path).isDirectory()) {
    const layout = await OciLayout.open(path);
    return { source: layout, root: layout.root(ref) };
  }
  const archive = await DockerArchive.open(path);
  return { source: archive, root: archive.root(ref) };
}

export function register(program: Command): void {
  program
    .command('unpack')
    .description('apply and commit every layer of an image (OCI layout directory or docker save archive)')
    .argument('<source>', 'LAYOUT_DIR[:REF] or ARCHIVE.tar[:REF]')
    .addOption(new Option('--root <dir>', 'winsnap data root').default(defaultRoot()))
    .option('--snapshotter <name>', 'snapshotter to unpack into', 'windows')
    .option('--platform <platform>', 'platform to unpack (default: windows/amd64, then linux/amd64 as containerd on Windows)')
    .option('--json', 'print the result as JSON')
    .action(async (arg: string, opts: { root: string; snapshotter: string; platform?: string; json?: boolean }) => {
      const matcher: MatchComparer = opts.platform ? only(parse(opts.platform)) : defaultWindowsMatcher();
      const { source, root } = await openImageSource(arg);
      const rt = new Runtime(opts.root);
      const progress = new Progress();
      const bars = new Map<number, Bar>();
      try {
        const result = await unpackImage(source, root, matcher, rt.snapshotter(opts.snapshotter), rt.differ, {
          layerStart: (p: LayerProgress) => bars.set(p.index, progress.bar(`layer ${p.index + 1}/${p.count} ${p.digest.slice(7, 19)}`, p.size)),
          layerProgress: (p) => bars.get(p.index)?.update(p.done),
          layerEnd: (p) => {
            bars.get(p.index)?.update(p.size);
            bars.get(p.index)?.stop();
          },
        });
        progress.stop();
        if (opts.json) printJson(result);
        else {
          for (const l of result.layers) process.stdout.write(`${l.skipped ? 'present ' : 'unpacked'} ${l.digest} ${l.chainId}\n`);
          process.stdout.write(`${result.image.platform} ${result.image.digest} → ${result.chainId}\n`);
        }
      } finally {
        progress.stop();
        await rt.close();
      }
    });
}
