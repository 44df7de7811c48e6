/** A client of containerd.services.diff.v1.Diff (ours or containerd's). */
import * as grpc from '@grpc/grpc-js';
import { fromGrpc } from '../services/errdefs.js';
import type { Descriptor } from '../services/content/store.js';
import type { Mount } from '../services/mount.js';
import { DIFF_SERVICE, serviceClient, socketPath } from './proto.js';
import { descriptorFromPb, descriptorToPb, type PbDescriptor } from './diff-service.js';
import { mountToPb } from './snapshots-wire.js';

type Cb = (err: grpc.ServiceError | null, res: unknown) => void;

export class DiffClient {
  private readonly client: grpc.Client;

  constructor(address: string) {
    const Ctor = serviceClient(DIFF_SERVICE);
    this.client = new Ctor(address.startsWith('unix:') ? address : `unix://${socketPath(address)}`, grpc.credentials.createInsecure());
  }

  private call<T>(method: string, req: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as Record<string, (r: unknown, cb: Cb) => void>)[method]!(req, (err, res) =>
        err ? reject(fromGrpc(err.code, err.details)) : resolve(res as T),
      );
    });
  }

  async apply(desc: Descriptor, mounts: Mount[]): Promise<Descriptor> {
    const r = await this.call<{ applied: PbDescriptor }>('Apply', { diff: descriptorToPb(desc), mounts: mounts.map(mountToPb) });
    return descriptorFromPb(r.applied);
  }

  async diff(left: Mount[], right: Mount[], opts: { mediaType?: string; ref?: string; labels?: Record<string, string> } = {}): Promise<Descriptor> {
    const r = await this.call<{ diff: PbDescriptor }>('Diff', {
      left: left.map(mountToPb),
      right: right.map(mountToPb),
      media_type: opts.mediaType ?? '',
      ref: opts.ref ?? '',
      labels: opts.labels ?? {},
    });
    return descriptorFromPb(r.diff);
  }

  close(): void {
    this.client.close();
  }
}
