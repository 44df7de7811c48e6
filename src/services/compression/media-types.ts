/**
 * OCI and Docker media types for image layers and how each is compressed (containerd
 * images.DiffCompression and archive/compression). Unknown layer types are NotImplemented,
 * so a differ chain can fall through to another differ.
 */
import { notImplemented } from '../errdefs.js';

export const MT = {
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociNondistLayer: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociNondistLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociNondistLayerZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

/** The compression of a layer media type; NotImplemented when it is not a known layer type. */
export function layerCompression(mediaType: string): Compression {
  switch (mediaType) {
    case MT.dockerLayerGzip:
    case MT.dockerForeignLayerGzip:
      return 'gzip';
    case MT.dockerLayer:
      return 'none';
  }
  const plus = mediaType.indexOf('+');
  const base = plus < 0 ? mediaType : mediaType.slice(0, plus);
  const suffix = plus < 0 ? undefined : mediaType.slice(plus + 1);
  if (base === MT.ociLayer || base === MT.ociNondistLayer) {
    if (suffix === undefined) return 'none';
    if (suffix === 'gzip') return 'gzip';
    if (suffix === 'zstd') return 'zstd';
  }
  throw notImplemented(`unsupported diff media type: ${mediaType}`, { mediaType });
}

export function isLayerMediaType(mediaType: string): boolean {
  try {
    layerCompression(mediaType);
    return true;
  } catch {
    return false;
  }
}

/** Compression found from the first bytes of a stream (gzip 1f 8b, zstd 28 b5 2f fd). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}
