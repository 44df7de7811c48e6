/**
 * containerd.services.diff.v1.Diff (Apply, Diff) over winsnap's diff chain and content
 * store, on the same socket as the snapshots service. Blobs for Apply must be in winsnap's
 * content store (e.g. added with `winsnap unpack` or `winsnap diff apply`).
 */
import type * as grpc from '@grpc/grpc-js';
import { toGrpc } from '../services/errdefs.js';
import type { Logger } from '../services/log.js';
import type { Descriptor } from '../services/content/store.js';
import type { Differ } from '../plugins/diff/types.js';
import { mountFromPb, mountToPb, type PbMount } from './snapshots-wire.js';

export interface PbDescriptor {
  media_type: string;
  digest: string;
  size: string | number;
  annotations?: Record<string, string>;
}

export function descriptorToPb(d: Descriptor): PbDescriptor {
  return { media_type: d.mediaType, digest: d.digest, size: String(d.size), annotations: d.annotations ?? {} };
}

export function descriptorFromPb(d: PbDescriptor | null | undefined): Descriptor {
  const out: Descriptor = { mediaType: d?.media_type ?? '', digest: d?.digest ?? '', size: Number(d?.size ?? 0) };
  if (d?.annotations && Object.keys(d.annotations).length > 0) out.annotations = { ...d.annotations };
  return out;
}

export function diffServiceImpl(differ: Differ, log: Logger): grpc.UntypedServiceImplementation {
  const fail = (cb: grpc.sendUnaryData<unknown>, e: unknown) => {
    const { code, message } = toGrpc(e);
    log.debug({ err: message }, 'diff request failed');
    cb({ code, details: message });
  };
  return {
    Apply(call: grpc.ServerUnaryCall<{ diff: PbDescriptor; mounts: PbMount[] }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      const req = call.request;
      differ.apply(descriptorFromPb(req.diff), (req.mounts ?? []).map(mountFromPb)).then(
        (applied) => cb(null, { applied: descriptorToPb(applied) }),
        (e) => fail(cb, e),
      );
    },
    Diff(
      call: grpc.ServerUnaryCall<{ left: PbMount[]; right: PbMount[]; media_type: string; ref: string; labels: Record<string, string> }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      const req = call.request;
      differ
        .compare((req.left ?? []).map(mountFromPb), (req.right ?? []).map(mountFromPb), {
          mediaType: req.media_type || undefined,
          reference: req.ref || undefined,
          labels: req.labels && Object.keys(req.labels).length > 0 ? req.labels : undefined,
        })
        .then(
          (diff) => cb(null, { diff: descriptorToPb(diff) }),
          (e) => fail(cb, e),
        );
    },
  };
}

export { mountToPb };
