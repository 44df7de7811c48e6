/**
 * Unpacking an image into a snapshotter, as containerd's unpacker does
 * (reference/containerd-semantics.md "Unpack"): for each layer, in order, its chain ID;
 * a layer whose chain ID is already committed is skipped; otherwise Prepare
 * `extract-<random> <chainID>` on the parent chain ID (label
 * `containerd.io/snapshot.ref=<chainID>`), apply the blob to its mounts (digest and size of
 * the blob verified while reading), check the result against the config's diff ID, and
 * Commit under the chain ID. A failure removes the extract snapshot: nothing half-applied
 * is left behind, and no layer is committed whose content does not match.
 */
import { randomBytes } from 'node:crypto';
import { failedPrecondition, isAlreadyExists, isNotFound, isWinsnapError } from '../services/errdefs.js';
import { chainIds, resolveImage, type BlobSource } from '../services/images/resolve.js';
import type { OciDescriptor, ResolvedImage } from '../services/images/types.js';
import type { MatchComparer } from '../services/platforms/index.js';
import { LABEL_SNAPSHOT_REF, type Snapshotter } from '../services/snapshots.js';
import type { Differ } from './diff/types.js';

export interface LayerProgress {
  index: number;
  count: number;
  digest: string;
  size: number;
  /** compressed bytes read so far */
  done: number;
}

export interface UnpackEvents {
  layerStart?(p: LayerProgress): void;
  layerProgress?(p: LayerProgress): void;
  layerEnd?(p: LayerProgress & { skipped: boolean }): void;
}

export interface UnpackedLayer {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  chainId: string;
  skipped: boolean;
}

export interface UnpackResult {
  image: { digest: string; mediaType: string; platform: string };
  chainId: string;
  layers: UnpackedLayer[];
}

export async function unpackImage(
  source: BlobSource,
  root: OciDescriptor,
  matcher: MatchComparer,
  sn: Snapshotter,
  differ: Differ,
  events: UnpackEvents = {},
): Promise<UnpackResult> {
  const img: ResolvedImage = await resolveImage(source, root, matcher);
  const chains = chainIds(img.layers.map((l) => l.diffId));
  const out: UnpackedLayer[] = [];
  let parent = '';
  for (const [i, layer] of img.layers.entries()) {
    const chainId = chains[i]!;
    const d = layer.descriptor;
    const progress: LayerProgress = { index: i, count: img.layers.length, digest: d.digest, size: d.size, done: 0 };
    events.layerStart?.(progress);
    let skipped = false;
    try {
      const info = await sn.stat(chainId);
      skipped = info.kind === 'committed';
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!skipped) skipped = await applyOne(source, d, layer.diffId, chainId, parent, sn, differ, (done) => {
      progress.done = done;
      events.layerProgress?.(progress);
    });
    events.layerEnd?.({ ...progress, done: d.size, skipped });
    out.push({ digest: d.digest, mediaType: d.mediaType, size: d.size, diffId: layer.diffId, chainId, skipped });
    parent = chainId;
  }
  return {
    image: {
      digest: img.manifestDescriptor.digest,
      mediaType: img.manifestDescriptor.mediaType,
      platform: [img.platform.os, img.platform.architecture, img.platform.variant].filter(Boolean).join('/'),
    },
    chainId: parent,
    layers: out,
  };
}

/** Applies one layer; returns true when another unpacker committed it first. */
async function applyOne(
  source: BlobSource,
  d: OciDescriptor,
  diffId: string,
  chainId: string,
  parent: string,
  sn: Snapshotter,
  differ: Differ,
  onProgress: (done: number) => void,
): Promise<boolean> {
  const key = `extract-${randomBytes(8).toString('hex')} ${chainId}`;
  let mounts;
  try {
    mounts = await sn.prepare(key, parent, { labels: { [LABEL_SNAPSHOT_REF]: chainId } });
  } catch (e) {
    if (isAlreadyExists(e)) return true;
    throw e;
  }
  try {
    const blob = await source.open(d);
    const applied = await differ.applyStream(blob, { mediaType: d.mediaType, digest: d.digest, size: d.size }, mounts, {
      verify: true,
      onProgress,
    });
    if (applied.digest !== diffId) {
      throw failedPrecondition(`layer ${d.digest}: applied content ${applied.digest} does not match the diff ID ${diffId} in the image config`, {
        digest: d.digest,
      });
    }
    try {
      await sn.commit(chainId, key);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      await sn.remove(key);
      return true;
    }
    return false;
  } catch (e) {
    await sn.remove(key).catch(() => undefined);
    throw isWinsnapError(e) ? e.wrap(`failed to unpack layer ${d.digest}`) : e;
  }
}
