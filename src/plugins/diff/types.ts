/**
 * The differ contract (containerd diff.Applier / diff.Comparer): Apply unpacks a layer blob
 * onto mounts and returns the descriptor of the uncompressed layer; Compare writes the
 * difference between two mount sets to the content store. A differ that cannot handle the
 * mounts or media type fails with NotImplemented, so a chain can try the next one.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../../services/content/store.js';
import type { Mount } from '../../services/mount.js';

export interface CompareOptions {
  /** media type of the diff to create (default: gzip-compressed OCI layer) */
  mediaType?: string;
  /** content store ingest reference to use (reused and truncated when given) */
  reference?: string;
  /** labels for the committed content */
  labels?: Record<string, string>;
  /** clamp entry times to this moment (SOURCE_DATE_EPOCH) */
  sourceDateEpoch?: Date;
}

export interface ApplyStreamOptions {
  /** verify the compressed blob's digest and size against the descriptor while reading */
  verify?: boolean;
  /** progress: compressed bytes read so far */
  onProgress?: (bytes: number) => void;
}

export interface Differ {
  readonly name: string;
  apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor>;
  /** Apply, with the blob given as a stream instead of read from the content store. */
  applyStream(blob: Readable, desc: Descriptor, mounts: Mount[], opts?: ApplyStreamOptions): Promise<Descriptor>;
  compare(lower: Mount[], upper: Mount[], opts?: CompareOptions): Promise<Descriptor>;
}
