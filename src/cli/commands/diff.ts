/**
 * `winsnap diff apply KEY BLOB [--media-type T]`: applies a layer blob (a file) to an active
 * snapshot's mounts through the differ chain and prints the applied (uncompressed)
 * descriptor. The media type defaults to what the blob's first bytes say.
 */
import { Command, Option } from 'commander';
import { createReadStream, openSync, readSync, closeSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { MT, sniffCompression } from '../../services/compression/media-types.js';
import { Runtime } from '../../plugins/runtime.js';
import { defaultRoot } from '../defaults.js';
import { printJson } from '../format.js';

function sniffMediaType(path: string): string {
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(8);
  try {
    readSync(fd, head, 0, 8, 0);
  } finally {
    closeSync(fd);
  }
  const c = sniffCompression(head);
  return c === 'gzip' ? MT.ociLayerGzip : c === 'zstd' ? MT.ociLayerZstd : MT.ociLayer;
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export function register(program: Command): void {
  const diff = program.command('diff').description('apply layer blobs to snapshots (the differ)');
  diff
    .command('apply')
    .description('apply a layer blob to the mounts of an active snapshot')
    .argument('<key>', 'active snapshot key')
    .argument('<blob>', 'layer blob file (tar, tar+gzip, tar+zstd)')
    .addOption(new Option('--root <dir>', 'winsnap data root').default(defaultRoot()))
    .option('--snapshotter <name>', 'snapshotter', 'windows')
    .option('--media-type <type>', 'media type of the blob (default: from its first bytes)')
    .action(async (key: string, blob: string, opts: { root: string; snapshotter: string; mediaType?: string }) => {
      const rt = new Runtime(opts.root);
      try {
        const mounts = await rt.snapshotter(opts.snapshotter).mounts(key);
        const desc = { mediaType: opts.mediaType ?? sniffMediaType(blob), digest: await fileDigest(blob), size: statSync(blob).size };
        const applied = await rt.differ.applyStream(createReadStream(blob, { highWaterMark: 1 << 20 }), desc, mounts, { verify: true });
        printJson({ mediaType: applied.mediaType, digest: applied.digest, size: applied.size });
      } finally {
        await rt.close();
      }
    });
}
