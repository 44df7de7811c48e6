/**
 * Writing a diff into the content store, as every containerd differ's Compare does
 * (plugins/diff/windows/windows.go): gzip by default or an uncompressed tar (other media
 * types NotImplemented), under a given reference (truncated first) or a unique one (aborted
 * on failure), `containerd.io/uncompressed` set on compressed content — also when the
 * content already existed without it.
 */
import { randomBytes } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isAlreadyExists, notImplemented } from '../../services/errdefs.js';
import { LABEL_UNCOMPRESSED } from '../../services/labels.js';
import { MT } from '../../services/compression/media-types.js';
import { createParallelGzip } from '../../services/compression/pgzip.js';
import type { ContentStore, Descriptor } from '../../services/content/store.js';
import { VerifyingCounter } from './blob.js';
import type { CompareOptions } from './types.js';

/** A unique ingest reference, as containerd's uniqueRef. */
export function uniqueRef(): string {
  return `${Date.now() * 1e6}-${randomBytes(3).toString('base64url')}`;
}

/** The media type Compare will write; throws NotImplemented for unsupported ones. */
export function diffMediaType(opts: CompareOptions): string {
  const mediaType = opts.mediaType || MT.ociLayerGzip;
  if (mediaType !== MT.ociLayer && mediaType !== MT.ociLayerGzip) {
    throw notImplemented(`unsupported diff media type: ${mediaType}`, { mediaType });
  }
  return mediaType;
}

/** Streams the tar made by `makeTar` into the store and returns the committed descriptor. */
export async function writeDiff(store: ContentStore, makeTar: () => Readable, opts: CompareOptions = {}): Promise<Descriptor> {
  const mediaType = diffMediaType(opts);
  const compressed = mediaType === MT.ociLayerGzip;
  const newReference = !opts.reference;
  const ref = opts.reference || uniqueRef();
  const writer = await store.writer({ ref });
  try {
    if (!newReference) await writer.truncate(0);
    const tar = makeTar();
    const uncompressed = new VerifyingCounter('sha256');
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _e, cb) {
        writer.write(chunk).then(() => cb(), cb);
      },
    });
    if (compressed) await pipeline(tar, uncompressed, createParallelGzip(), sink);
    else await pipeline(tar, uncompressed, sink);
    const labels = { ...(opts.labels ?? {}) };
    if (compressed) labels[LABEL_UNCOMPRESSED] = uncompressed.digest();
    let dgst: string;
    try {
      dgst = await writer.commit(0, '', labels);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      dgst = writer.digest();
    }
    let info = await store.info(dgst);
    if (compressed && info.labels[LABEL_UNCOMPRESSED] === undefined) {
      info = await store.update({ digest: dgst, labels: { [LABEL_UNCOMPRESSED]: labels[LABEL_UNCOMPRESSED]! } }, [`labels.${LABEL_UNCOMPRESSED}`]);
    }
    return { mediaType, digest: info.digest, size: info.size };
  } catch (e) {
    await writer.close().catch(() => undefined);
    if (newReference) await store.abort(ref).catch(() => undefined);
    throw e;
  }
}
