/**
 * Writes OCI image layouts (image-spec image-layout.md) and legacy `docker save` archives
 * for tests, from layer tars given as bytes or as streams of bytes.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import { TarWriter } from '../../src/formats/tar/writer.js';

export type LayerCompression = 'none' | 'gzip' | 'zstd';

const MEDIA: Record<LayerCompression, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(c: Buffer, _e: BufferEncoding, cb: (e: null, c: Buffer) => void): void {
    this.hash.update(c);
    this.size += c.length;
    cb(null, c);
  }
}

export interface BuiltLayer {
  descriptor: { mediaType: string; digest: string; size: number };
  diffId: string;
}

async function putBlob(layout: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = createHash('sha256').update(data).digest('hex');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'blobs', 'sha256', digest), data);
  return { digest: `sha256:${digest}`, size: data.length };
}

/** Streams a layer tar into the layout, compressed as asked; returns its descriptor and diff ID. */
export async function putLayer(layout: string, tar: Readable | Buffer, compression: LayerCompression): Promise<BuiltLayer> {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const tmp = join(layout, 'blobs', `tmp-${process.pid}-${Math.random()}`);
  const raw = new Hasher();
  const comp = new Hasher();
  const stages: NodeJS.ReadWriteStream[] = [raw];
  if (compression === 'gzip') stages.push(createGzip({ level: 1 }));
  if (compression === 'zstd') stages.push(new CompressStream() as unknown as NodeJS.ReadWriteStream);
  stages.push(comp);
  await pipeline(Buffer.isBuffer(tar) ? Readable.from([tar]) : tar, ...(stages as [Transform]), createWriteStream(tmp));
  const digest = comp.hash.digest('hex');
  renameSync(tmp, join(layout, 'blobs', 'sha256', digest));
  return { descriptor: { mediaType: MEDIA[compression], digest: `sha256:${digest}`, size: comp.size }, diffId: `sha256:${raw.hash.digest('hex')}` };
}

export interface ImageSpec {
  os: string;
  architecture: string;
  osVersion?: string;
  layers: BuiltLayer[];
}

/** Writes manifests, configs and an index (one entry per image, platform in the descriptor). */
export async function writeLayout(layout: string, images: ImageSpec[], refName?: string): Promise<void> {
  const manifests = [];
  for (const img of images) {
    const config = Buffer.from(
      JSON.stringify({
        architecture: img.architecture,
        os: img.os,
        ...(img.osVersion ? { 'os.version': img.osVersion } : {}),
        rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.diffId) },
      }),
    );
    const c = await putBlob(layout, config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
        layers: img.layers.map((l) => l.descriptor),
      }),
    );
    const m = await putBlob(layout, manifest);
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...m,
      platform: { os: img.os, architecture: img.architecture, ...(img.osVersion ? { 'os.version': img.osVersion } : {}) },
    });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const ix = await putBlob(layout, index);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...ix, ...(refName ? { annotations: { 'org.opencontainers.image.ref.name': refName } } : {}) }],
    }),
  );
}

/** A legacy `docker save` archive: manifest.json, <config>.json, <n>/layer.tar (uncompressed). */
export async function writeDockerArchive(path: string, layerTars: Buffer[], platform: { os: string; architecture: string }, tag: string): Promise<string[]> {
  const diffIds = layerTars.map((t) => `sha256:${createHash('sha256').update(t).digest('hex')}`);
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const w = new TarWriter();
  const done = pipeline(w.stream, createWriteStream(path));
  const layers = layerTars.map((_, i) => `layer${i}/layer.tar`);
  await w.writeEntry({ name: configName, size: config.length, mode: 0o644 }, config);
  for (const [i, t] of layerTars.entries()) {
    await w.writeEntry({ name: `layer${i}/`, type: 'dir', mode: 0o755 });
    await w.writeEntry({ name: layers[i]!, size: t.length, mode: 0o644 }, t);
  }
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: layers }]));
  await w.writeEntry({ name: 'manifest.json', size: manifest.length, mode: 0o644 }, manifest);
  await w.finish();
  await done;
  return diffIds;
}
