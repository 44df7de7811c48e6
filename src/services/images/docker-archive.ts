/**
 * A `docker save` archive (a tar file) as a blob source. Docker 25+ writes an OCI image
 * layout inside the archive (`oci-layout`, `index.json`, `blobs/…`), which is used when
 * present; older archives have only `manifest.json` ([{Config, RepoTags, Layers}] with
 * uncompressed `<id>/layer.tar` files), from which an OCI manifest is synthesized: each
 * layer's digest is its diff ID (the digest of the uncompressed tar), so applying it still
 * verifies every byte. Entries are located once by scanning headers; blobs are then read
 * in place with ranged reads.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { invalidArgument, notFound } from '../errdefs.js';
import { MT, sniffCompression } from '../compression/media-types.js';
import { parseDigest, sha256Digest } from '../content/digest.js';
import { TarReader } from '../../formats/tar/reader.js';
import type { BlobSource } from './resolve.js';
import { ANNOTATION_REF_NAME, type OciDescriptor, type OciIndex, type OciManifest } from './types.js';

interface Member {
  offset: number;
  size: number;
}

interface LegacyManifest {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export class DockerArchive implements BlobSource {
  /** synthesized documents (legacy archives), by digest */
  private readonly synthetic = new Map<string, Buffer>();
  /** blob digest → archive member */
  private readonly blobs = new Map<string, Member>();
  index: OciIndex = { schemaVersion: 2, manifests: [] };

  private constructor(
    readonly path: string,
    private readonly members: Map<string, Member>,
  ) {}

  static async open(path: string): Promise<DockerArchive> {
    const members = new Map<string, Member>();
    const reader = new TarReader(createReadStream(path, { highWaterMark: 1 << 20 }));
    try {
      for await (const e of reader) {
        if (e.header.type === 'file') members.set(e.header.name.replace(/^\.\//, ''), { offset: e.dataOffset, size: e.header.size });
      }
    } finally {
      await reader.close();
    }
    const a = new DockerArchive(path, members);
    await a.load();
    return a;
  }

  private async member(name: string): Promise<Buffer> {
    const m = this.members.get(name);
    if (!m) throw notFound(`${name} is not in the archive ${this.path}`, { entry: name });
    if (m.size > 64 << 20) throw invalidArgument(`${name} in ${this.path} is too large for a JSON document`, { entry: name });
    return buffer(this.range(m));
  }

  private range(m: Member): Readable {
    if (m.size === 0) return Readable.from([]);
    return createReadStream(this.path, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
  }

  private async load(): Promise<void> {
    if (this.members.has('index.json') && this.members.has('oci-layout')) {
      this.index = JSON.parse((await this.member('index.json')).toString('utf8')) as OciIndex;
      for (const [name, m] of this.members) {
        const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(name);
        if (match) this.blobs.set(`${match[1]}:${match[2]}`, m);
      }
      return;
    }
    if (!this.members.has('manifest.json')) throw invalidArgument(`${this.path} is neither an OCI layout nor a docker save archive`, { path: this.path });
    const legacy = JSON.parse((await this.member('manifest.json')).toString('utf8')) as LegacyManifest[];
    if (!Array.isArray(legacy)) throw invalidArgument(`${this.path}: manifest.json is not a list`, { path: this.path });
    for (const img of legacy) {
      const configBytes = await this.member(img.Config);
      const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] }; os?: string; architecture?: string; 'os.version'?: string };
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== img.Layers.length) {
        throw invalidArgument(`${this.path}: ${img.Config} lists ${diffIds.length} diff IDs for ${img.Layers.length} layers`, { path: this.path });
      }
      const configDesc: OciDescriptor = { mediaType: MT.ociConfig, digest: sha256Digest(configBytes), size: configBytes.length };
      this.synthetic.set(configDesc.digest, configBytes);
      const layers: OciDescriptor[] = [];
      for (const [i, name] of img.Layers.entries()) {
        const m = this.members.get(name);
        if (!m) throw notFound(`layer ${name} is not in the archive ${this.path} (a foreign layer?)`, { entry: name });
        const head = await buffer(this.range({ offset: m.offset, size: Math.min(m.size, 8) }));
        const c = sniffCompression(head);
        parseDigest(diffIds[i]!);
        if (c === 'none') {
          this.blobs.set(diffIds[i]!, m);
          layers.push({ mediaType: MT.dockerLayer, digest: diffIds[i]!, size: m.size });
        } else {
          // a compressed layer file: its own digest is not recorded anywhere, so compute it
          const h = createHash('sha256');
          for await (const chunk of this.range(m)) h.update(chunk as Buffer);
          const digest = `sha256:${h.digest('hex')}`;
          this.blobs.set(digest, m);
          layers.push({ mediaType: c === 'gzip' ? MT.ociLayerGzip : MT.ociLayerZstd, digest, size: m.size });
        }
      }
      const manifest: OciManifest = { schemaVersion: 2, mediaType: MT.ociManifest, config: configDesc, layers };
      const mbytes = Buffer.from(JSON.stringify(manifest));
      const mdesc: OciDescriptor = {
        mediaType: MT.ociManifest,
        digest: sha256Digest(mbytes),
        size: mbytes.length,
        platform: { os: config.os ?? '', architecture: config.architecture ?? '', ...(config['os.version'] ? { 'os.version': config['os.version'] } : {}) },
      };
      this.synthetic.set(mdesc.digest, mbytes);
      for (const tag of img.RepoTags ?? [undefined]) {
        this.index.manifests.push(tag ? { ...mdesc, annotations: { [ANNOTATION_REF_NAME]: tag } } : mdesc);
      }
    }
  }

  async open(desc: OciDescriptor): Promise<Readable> {
    const syn = this.synthetic.get(desc.digest);
    if (syn) return Readable.from([syn]);
    const m = this.blobs.get(desc.digest);
    if (!m) throw notFound(`blob ${desc.digest} is not in the archive ${this.path}`, { digest: desc.digest });
    return this.range(m);
  }

  /** The image for a reference (a RepoTag / ref name), or the only one. */
  root(ref?: string): OciDescriptor {
    const ms = this.index.manifests;
    if (ref) {
      const hit = ms.find((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref || d.annotations?.['io.containerd.image.name'] === ref);
      if (!hit) throw notFound(`reference ${ref} not in ${this.path}`, { ref });
      return hit;
    }
    const unique = new Set(ms.map((d) => d.digest));
    if (unique.size !== 1) throw invalidArgument(`${this.path} holds ${unique.size} images; name one with ARCHIVE:REF`, { path: this.path });
    return ms[0]!;
  }
}
