/**
 * Resolving an image from a blob source (an OCI image layout, a docker-save archive, the
 * content store): index → manifest chosen by platform (best match by the matcher's
 * preference, as containerd's images.Manifest), then config and layers, checking that the
 * config's diff IDs pair with the layers. Every blob read is size- and digest-checked.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { failedPrecondition, invalidArgument, notFound } from '../errdefs.js';
import { MT } from '../compression/media-types.js';
import { format, type MatchComparer, type Platform } from '../platforms/index.js';
import { descriptorPlatform, type ImageConfig, type OciDescriptor, type OciIndex, type OciManifest, type ResolvedImage } from './types.js';

/** Where blobs come from. */
export interface BlobSource {
  /** A stream of the blob's bytes; NotFound when absent. */
  open(desc: OciDescriptor): Promise<Readable>;
}

const MAX_JSON_BLOB = 16 << 20;

/** Reads a small JSON blob, verifying its size and digest. */
export async function readJsonBlob<T>(src: BlobSource, desc: OciDescriptor): Promise<T> {
  if (desc.size > MAX_JSON_BLOB) throw invalidArgument(`blob ${desc.digest} is ${desc.size} bytes, too large for a JSON document`, { digest: desc.digest });
  const stream = await src.open(desc);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > desc.size) break;
    chunks.push(c as Buffer);
  }
  const buf = Buffer.concat(chunks);
  if (buf.length !== desc.size) throw failedPrecondition(`blob ${desc.digest}: size ${buf.length}, descriptor says ${desc.size}`, { digest: desc.digest });
  const [alg, hex] = desc.digest.split(':') as [string, string];
  if (createHash(alg).update(buf).digest('hex') !== hex) throw failedPrecondition(`blob ${desc.digest}: digest mismatch`, { digest: desc.digest });
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`blob ${desc.digest}: malformed JSON`, { digest: desc.digest }, e);
  }
}

const isIndex = (mt: string | undefined) => mt === MT.ociIndex || mt === MT.dockerManifestList;
const isManifest = (mt: string | undefined) => mt === MT.ociManifest || mt === MT.dockerManifest;

function sortByPreference(ds: OciDescriptor[], m: MatchComparer): OciDescriptor[] {
  // stable: the first listed wins among equals, as containerd's sort.SliceStable
  return ds
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const pa = descriptorPlatform(a.d);
      const pb = descriptorPlatform(b.d);
      if (pa && pb) {
        if (m.less(pa, pb)) return -1;
        if (m.less(pb, pa)) return 1;
      }
      return a.i - b.i;
    })
    .map((x) => x.d);
}

/** Picks the manifest for the platform matcher starting at an index or manifest descriptor. */
export async function resolveImage(src: BlobSource, root: OciDescriptor, matcher: MatchComparer): Promise<ResolvedImage> {
  let desc = root;
  for (let depth = 0; depth < 8; depth++) {
    if (isManifest(desc.mediaType)) break;
    if (!isIndex(desc.mediaType)) throw invalidArgument(`unsupported media type ${desc.mediaType} for ${desc.digest}`, { digest: desc.digest });
    const index = await readJsonBlob<OciIndex>(src, desc);
    const candidates = (index.manifests ?? []).filter((d) => {
      if (isIndex(d.mediaType)) return true;
      if (!isManifest(d.mediaType)) return false;
      const p = descriptorPlatform(d);
      return p === undefined || matcher.match(p);
    });
    if (candidates.length === 0) {
      const available = (index.manifests ?? []).map((d) => (descriptorPlatform(d) ? format(descriptorPlatform(d)!) : d.mediaType));
      throw notFound(`no manifest in ${desc.digest} matches the platform (available: ${available.join(', ') || 'none'})`, { digest: desc.digest });
    }
    desc = sortByPreference(candidates, matcher)[0]!;
  }
  if (!isManifest(desc.mediaType)) throw invalidArgument(`index nesting too deep at ${desc.digest}`, { digest: desc.digest });
  const manifest = await readJsonBlob<OciManifest>(src, desc);
  const config = await readJsonBlob<ImageConfig>(src, manifest.config);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(manifest.layers) || diffIds.length !== manifest.layers.length) {
    throw invalidArgument(`manifest ${desc.digest} has ${manifest.layers?.length ?? 0} layers but its config lists ${diffIds.length} diff IDs`, {
      digest: desc.digest,
    });
  }
  const platform: Platform = descriptorPlatform(desc) ?? {
    os: config.os ?? '',
    architecture: config.architecture ?? '',
    variant: config.variant,
    osVersion: config['os.version'],
  };
  if (!matcher.match(platform)) {
    throw notFound(`image ${desc.digest} is ${format(platform)}, which does not match the requested platform`, { digest: desc.digest });
  }
  return {
    manifestDescriptor: desc,
    manifest,
    config,
    platform,
    layers: manifest.layers.map((d, i) => ({ descriptor: d, diffId: diffIds[i]! })),
  };
}

/** chainID(L1) = diffID(L1); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}
