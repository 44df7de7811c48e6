/**
 * An OCI image layout directory as a blob source (image-spec image-layout.md): `oci-layout`
 * with imageLayoutVersion 1.0.0, `index.json`, `blobs/<alg>/<hex>`. `LAYOUT:REF` picks the
 * index entry annotated `org.opencontainers.image.ref.name` (or `io.containerd.image.name`)
 * equal to REF; without REF the layout must hold exactly one top-level entry.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { invalidArgument, notFound } from '../errdefs.js';
import { parseDigest } from '../content/digest.js';
import type { BlobSource } from './resolve.js';
import { ANNOTATION_CONTAINERD_IMAGE_NAME, ANNOTATION_REF_NAME, type OciDescriptor, type OciIndex } from './types.js';

export class OciLayout implements BlobSource {
  private constructor(
    readonly dir: string,
    readonly index: OciIndex,
  ) {}

  static async open(dir: string): Promise<OciLayout> {
    let marker: { imageLayoutVersion?: string };
    try {
      marker = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
    } catch (e) {
      throw invalidArgument(`${dir} is not an OCI image layout (no readable oci-layout file)`, { path: dir }, e);
    }
    if (marker.imageLayoutVersion !== '1.0.0') {
      throw invalidArgument(`${dir}: unsupported imageLayoutVersion ${String(marker.imageLayoutVersion)}`, { path: dir });
    }
    let index: OciIndex;
    try {
      index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as OciIndex;
    } catch (e) {
      throw invalidArgument(`${dir}: unreadable index.json`, { path: dir }, e);
    }
    if (!Array.isArray(index.manifests)) throw invalidArgument(`${dir}: index.json has no manifests`, { path: dir });
    return new OciLayout(dir, index);
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  async open(desc: OciDescriptor): Promise<Readable> {
    const p = this.blobPath(desc.digest);
    try {
      await stat(p);
    } catch {
      throw notFound(`blob ${desc.digest} not in layout ${this.dir}`, { digest: desc.digest });
    }
    return createReadStream(p, { highWaterMark: 1 << 20 });
  }

  /** The top-level descriptor for a reference (or the only one). */
  root(ref?: string): OciDescriptor {
    const ms = this.index.manifests;
    if (ref) {
      const hit = ms.find((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref || d.annotations?.[ANNOTATION_CONTAINERD_IMAGE_NAME] === ref);
      if (!hit) {
        const refs = ms.map((d) => d.annotations?.[ANNOTATION_REF_NAME] ?? d.annotations?.[ANNOTATION_CONTAINERD_IMAGE_NAME]).filter(Boolean);
        throw notFound(`reference ${ref} not in ${this.dir} (has: ${refs.join(', ') || 'no named references'})`, { ref });
      }
      return hit;
    }
    if (ms.length !== 1) throw invalidArgument(`${this.dir} holds ${ms.length} images; name one with LAYOUT:REF`, { path: this.dir });
    return ms[0]!;
  }
}
