/**
 * Label rules and well-known label names (containerd labels/labels.go and the Windows
 * snapshotter/differ labels listed in DESIGN.md).
 */
import { invalidArgument } from './errdefs.js';

/** containerd labels.Validate: key and value together at most 4096 bytes. */
export const MAX_LABEL_SIZE = 4096;

export function validateLabels(labels: Record<string, string> | undefined): void {
  if (!labels) return;
  for (const [k, v] of Object.entries(labels)) {
    if (Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL_SIZE) {
      throw invalidArgument(`label key and value greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${k.slice(0, 10)}`, {
        label: k,
      });
    }
  }
}

export const LABEL_UNCOMPRESSED = 'containerd.io/uncompressed';
export const LABEL_ROOTFS_SIZE_BYTES = 'containerd.io/snapshot/windows/rootfs.sizebytes';
/** Deprecated GiB variant; the bytes label wins. */
export const LABEL_ROOTFS_SIZE_GB = 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb';
export const LABEL_UVM_SCRATCH = 'containerd.io/snapshot/io.microsoft.vm.storage.scratch';
export const LABEL_LCOW_ROOTFS_LOCATION = 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.location';
export const LABEL_LCOW_REUSE_SCRATCH = 'containerd.io/snapshot/io.microsoft.container.storage.reuse-scratch';
export const LABEL_LCOW_OWNER_KEY = 'containerd.io/snapshot/io.microsoft.owner.key';

const UINT_RE = /^[0-9]+$/;

/** strconv.ParseUint(s, 10, bits) as a bigint, or undefined when malformed/out of range. */
export function parseUint(s: string, bits: 32 | 64): bigint | undefined {
  if (!UINT_RE.test(s)) return undefined;
  const v = BigInt(s);
  return v < 1n << BigInt(bits) ? v : undefined;
}

/**
 * The scratch size a Windows snapshot asks for, from its labels (containerd
 * getRequestedScratchSize): the GiB label (uint32) first, the bytes label (uint64) wins.
 * 0 means "not requested". A malformed value is InvalidArgument.
 */
export function requestedScratchSize(labels: Record<string, string> | undefined): bigint {
  let size = 0n;
  const gb = labels?.[LABEL_ROOTFS_SIZE_GB];
  if (gb !== undefined) {
    const v = parseUint(gb, 32);
    if (v === undefined) throw invalidArgument(`failed to parse label "${LABEL_ROOTFS_SIZE_GB}"="${gb}"`, { label: LABEL_ROOTFS_SIZE_GB });
    size = v * 1024n * 1024n * 1024n;
  }
  const bytes = labels?.[LABEL_ROOTFS_SIZE_BYTES];
  if (bytes !== undefined) {
    const v = parseUint(bytes, 64);
    if (v === undefined) throw invalidArgument(`failed to parse label "${LABEL_ROOTFS_SIZE_BYTES}"="${bytes}"`, { label: LABEL_ROOTFS_SIZE_BYTES });
    size = v;
  }
  return size;
}
